"""ImageService: the namespace's images, on the client's own connection (``client.images``).

Each method reads as the containerd calls it makes. Images live in
containerd's own stores (image records, content, snapshots), written with
the labels containerd's Go client writes, so ``ctr`` sees what this service
imports as complete, and this service runs what ``ctr`` imported.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import IO, TYPE_CHECKING, Final

from google.protobuf import field_mask_pb2

from .. import errors
from .._api.containerd.api.services.containers.v1 import containers_pb2
from .._api.containerd.api.services.content.v1 import content_pb2
from .._api.containerd.api.services.images.v1 import images_pb2
from .._api.containerd.api.services.snapshots.v1 import snapshots_pb2
from .._api.containerd.api.types import descriptor_pb2
from .._session import Session
from .._typeurl import to_datetime
from ..errors import (
    AlreadyExists,
    ImageNotFound,
    InvalidArgument,
    InvalidImage,
    LibcontainerdError,
    NotFound,
    NotImplemented,
    Unavailable,
)
from ._auth import Auth, Credentials, as_credentials, credentials_from_docker_config
from ._content import ContentStore, Lease
from ._names import Platform, host_platform, normalize_name, parse_platform
from ._types import Descriptor, DiskUsage, Image, ImageConfig, Progress, ProgressCallback
from ._unpack import Snapshots, unpack_layers
from ._walk import ImageWalker, Resolved

if TYPE_CHECKING:
    from ._import import Root
    from ._registry import Reference

__all__ = ["DEFAULT_SNAPSHOTTER", "ImageService"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class _PullOrder:
    """What a pull was asked for, as both ways of pulling (the daemon's, this client's) take it."""

    reference: Reference
    wanted: Platform
    platform: str | None  # as given (None: this machine's, chosen less strictly)
    credentials: Credentials | None
    hosts_dir: str | os.PathLike[str] | None
    progress: ProgressCallback | None
    unpack: bool
    snapshotter: str


DEFAULT_SNAPSHOTTER: Final = "overlayfs"
"""containerd's default snapshotter on Linux."""
_RESOLVED_KEPT: Final = 32  # targets whose manifest and config get() keeps


class ImageService:
    """The images of the client's namespace (async; the blocking Client has a twin).

    ``snapshotter`` is where images are unpacked and containers' root
    filesystems are prepared unless a call names another.
    """

    def __init__(self, session: Session, snapshotter: str = DEFAULT_SNAPSHOTTER) -> None:
        self._session = session
        self._store = ContentStore(session)
        self.snapshotter = snapshotter
        # Leases of this client's pulls that were cut off (kept so that the next
        # pull resumes their blobs), by image name: ended once a pull of it completes.
        self._kept_pulls: dict[str, builtins.list[Lease]] = {}
        # Why the daemon's Transfer service is not used ("": it is; None: not asked yet).
        self._transfer_missing: str | None = None
        # Leases of imports and unpacks that containerd's death left unended (see _end).
        self._unended: builtins.list[Lease] = []
        # What get() read of the latest targets: a digest's manifest and config never
        # change, so a container made from an image again costs one call, not three.
        self._resolved: OrderedDict[tuple[str, Platform, bool], Resolved] = OrderedDict()

    # -- reading ----------------------------------------------------------------------

    async def list(self) -> builtins.list[Image]:
        """Every image of the namespace, by name, resolved for this machine's platform.

        An image whose content for the platform is missing is listed with an
        empty ``platform`` and config. Raises Unavailable.
        """
        session = self._session
        reply = await session.call(
            session.methods.images.list, images_pb2.ListImagesRequest(), "list images"
        )
        platform = host_platform()
        records = sorted(reply.images, key=lambda record: record.name)
        return list(await asyncio.gather(*(self._lenient(r, platform) for r in records)))

    async def get(self, name: str, *, platform: str | None = None) -> Image:
        """The image by that name (normalised: ``busybox`` is ``docker.io/library/busybox:latest``).

        Raises ImageNotFound, InvalidImage (its content is missing or broken),
        NotFound (it has no manifest for the platform), Unavailable.
        """
        record = await self._record(normalize_name(name))
        wanted = parse_platform(platform) if platform is not None else host_platform()
        key = (record.target.digest, wanted, platform is not None)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = await self._walker(wanted, platform is not None).resolve(
                _descriptor(record.target), f"image {record.name}"
            )
            self._resolved[key] = resolved
            if len(self._resolved) > _RESOLVED_KEPT:
                self._resolved.popitem(last=False)
        else:
            self._resolved.move_to_end(key)
        return _image(record, resolved)

    async def resolve(self, image: str | Image) -> Image:
        """An Image as given, or the image by that name (see :meth:`get`)."""
        if isinstance(image, Image):
            return image
        return await self.get(image)

    async def _record(self, name: str) -> images_pb2.Image:
        session = self._session
        try:
            reply = await session.call(
                session.methods.images.get,
                images_pb2.GetImageRequest(name=name),
                f"look up image {name!r}",
            )
        except NotFound:
            raise ImageNotFound(f"no image {name!r} in namespace {session.namespace!r}") from None
        return reply.image

    async def _lenient(self, record: images_pb2.Image, platform: Platform) -> Image:
        try:
            resolved = await self._walker(platform).resolve(
                _descriptor(record.target), f"image {record.name}"
            )
        except (InvalidImage, NotFound):
            return _image(record, None)
        return _image(record, resolved)

    def _walker(self, platform: Platform, explicit: bool = False) -> ImageWalker:
        return ImageWalker(self._store, platform, explicit)

    # -- names ------------------------------------------------------------------------

    async def tag(self, name: str, new_name: str) -> Image:
        """Give the image ``name`` a second name (replacing what ``new_name`` named before).

        Raises ImageNotFound, InvalidArgument (a name that is not a reference).
        """
        source = normalize_name(name)
        target_name = normalize_name(new_name, "new image name")
        record = await self._record(source)
        await self._put(target_name, record.target, dict(record.labels))
        return await self.get(target_name)

    async def _put(
        self, name: str, target: descriptor_pb2.Descriptor, labels: dict[str, str] | None = None
    ) -> images_pb2.Image:
        """Create the image record, or point an existing one of that name at ``target``."""
        session = self._session
        image = images_pb2.Image(name=name, target=target, labels=labels or {})
        try:
            reply = await session.call(
                session.methods.images.create,
                images_pb2.CreateImageRequest(image=image),
                f"create image {name!r}",
            )
            return reply.image
        except AlreadyExists:
            paths = ["target", *(f"labels.{key}" for key in labels or {})]
            updated = await session.call(
                session.methods.images.update,
                images_pb2.UpdateImageRequest(
                    image=image, update_mask=field_mask_pb2.FieldMask(paths=paths)
                ),
                f"update image {name!r}",
            )
            return updated.image

    async def remove(self, name: str) -> None:
        """Remove the image; containerd then collects what no image or container still uses.

        Returns once collected (Images.Delete with ``sync``): content and
        snapshots only this image used are gone; a container made from it
        keeps its own snapshot (and the layers below it) until it is deleted.
        Raises ImageNotFound.
        """
        await self._delete(normalize_name(name), sync=True)

    async def _delete(self, name: str, *, sync: bool) -> None:
        session = self._session
        try:
            await session.call(
                session.methods.images.delete,
                images_pb2.DeleteImageRequest(name=name, sync=sync),
                f"remove image {name!r}",
            )
        except NotFound:
            raise ImageNotFound(f"no image {name!r} in namespace {session.namespace!r}") from None

    async def prune(self) -> builtins.list[str]:
        """Remove every image that no container of the namespace was made from; their names.

        Collected as :meth:`remove` is, once, after the last removal.
        """
        session = self._session
        images, containers = await asyncio.gather(
            session.call(
                session.methods.images.list, images_pb2.ListImagesRequest(), "list images"
            ),
            session.call(
                session.methods.containers.list,
                containers_pb2.ListContainersRequest(),
                "list containers",
            ),
        )
        used = {container.image for container in containers.containers}
        unused = sorted(image.name for image in images.images if image.name not in used)
        for position, name in enumerate(unused):
            with contextlib.suppress(ImageNotFound):  # removed by someone else meanwhile
                await self._delete(name, sync=position == len(unused) - 1)
        return unused

    async def usage(self) -> DiskUsage:
        """Bytes the namespace's content store and its snapshots (this snapshotter) take."""
        session = self._session
        content = 0
        async for answer in session.connection.stream(
            session.methods.content.list, content_pb2.ListContentRequest(), "list content"
        ):
            content += sum(info.size for info in answer.info)
        keys: builtins.list[str] = []
        async for listed in session.connection.stream(
            session.methods.snapshots.list,
            snapshots_pb2.ListSnapshotsRequest(snapshotter=self.snapshotter),
            f"list snapshots of {self.snapshotter}",
        ):
            keys.extend(info.name for info in listed.info)

        async def size_of(key: str) -> int:
            try:
                reply = await session.call(
                    session.methods.snapshots.usage,
                    snapshots_pb2.UsageRequest(snapshotter=self.snapshotter, key=key),
                    f"read the disk usage of snapshot {key!r}",
                )
            except NotFound:
                return 0  # removed meanwhile
            return reply.size

        sizes = await asyncio.gather(*(size_of(key) for key in keys))
        return DiskUsage(content=content, snapshots=sum(sizes))

    # -- import and unpack ------------------------------------------------------------

    async def import_archive(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        name: str | None = None,
        platform: str | None = None,
        progress: ProgressCallback | None = None,
        unpack: bool = True,
    ) -> builtins.list[Image]:
        """Import the images of an archive; returns them, one per name.

        ``source`` is a path or a binary file object (read once, front to back,
        never whole into memory) of an OCI image layout archive (``index.json``,
        e.g. ``skopeo copy ... oci-archive:``) or a ``docker save`` archive
        (``manifest.json``), plain or gzip/bzip2/xz-compressed. Images are named
        as the archive names them, or ``name`` for an archive of one image;
        ``platform`` (default: this machine's) picks the manifest of an index;
        ``progress`` is called per chunk of each blob and per layer; ``unpack``
        (default) unpacks each image into the service's snapshotter. Only a
        complete, consistent image is registered: on any failure no image is
        created and what was written is collected.

        Raises UnsafeArchive (an entry or link escapes the archive),
        DigestMismatch (a blob or layer is not what its digest or diff ID
        says), UnsupportedMediaType (unknown, schema 1, encrypted, not an
        image), InvalidImage (not an image archive, truncated, incomplete,
        a document over 4 MiB), InvalidArgument (a bad name, an archive that
        does not name an image and no ``name``), NotFound (no manifest for the
        platform), OSError (the path cannot be read).
        """
        # Loaded on first use: tarfile and its compressors cost a client's start-up.
        from ._import import name_roots, read_archive, roots_of

        if name is not None:
            normalize_name(name)
        wanted = parse_platform(platform) if platform is not None else host_platform()
        session = self._session
        lease = await Lease.create(session, "import")
        failed = True
        try:
            contents = await read_archive(source, self._store, lease, progress)
            roots = name_roots(await roots_of(contents, self._store, lease), name, wanted)
            known = contents.digests

            async def present(digest: str) -> bool:
                return digest in known or await self._store.info(digest) is not None

            walker = ImageWalker(self._store, wanted, platform is not None, present)
            resolved: dict[str, Resolved] = {}
            for root in roots:
                if root.target.digest not in resolved:
                    resolved[root.target.digest] = await walker.resolve(root.target, root.what)
            for digest, labels in walker.labels.items():
                await self._store.set_labels(digest, labels, metadata=lease.metadata)
            if unpack:
                snapshots = Snapshots(session, self.snapshotter)
                for root in _distinct(roots, resolved):
                    await self._unpack(
                        resolved[root.target.digest], snapshots, lease, root.what, progress
                    )
            images = []
            for root in roots:
                found = resolved[root.target.digest]
                assert found.target is not None
                for image_name in root.names:
                    record = await self._put(image_name, _wire(found.target))
                    images.append(_image(record, found))
            failed = False
            return images
        finally:
            await self._end(lease, failed=failed)

    async def pull(
        self,
        reference: str,
        *,
        platform: str | None = None,
        auth: Auth | None = None,
        hosts_dir: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
        unpack: bool = True,
        snapshotter: str | None = None,
        transfer: bool | None = None,
    ) -> Image:
        """Pull the image from its registry into containerd's stores; the image.

        ``reference`` as Docker users write it (``busybox``, ``host:5000/a/b:1``,
        ``...@sha256:...``); ``platform`` (default: this machine's) picks the
        manifest of an index; ``auth`` is a ``(username, password)`` pair or
        :class:`~libcontainerd.images.Credentials` (default: Docker's
        ``config.json``); ``hosts_dir`` is a folder in containerd's ``certs.d``
        layout (default ``/etc/containerd/certs.d`` when present: plain HTTP,
        CAs, mirrors); ``progress`` gets ``download`` and ``unpack`` steps.
        Every blob is checked against its digest while it streams in; on any
        failure no image is created and what was written is collected.

        ``transfer`` picks who talks to the registry. False: this client
        (every containerd version). True: the daemon, through containerd's
        Transfer service (2.0 and later; NotImplemented without it). None
        (the default): the daemon when that helps: it has the service, the
        image is not here yet and is to be unpacked, and the pull is
        anonymous (no ``auth``, nothing for the registry in ``config.json``).
        Should the daemon's pull fail, this client's pull takes over
        (resuming what the daemon left), so the errors are this client's
        typed ones.

        Raises ImageNotFound (no such tag or digest), AuthenticationFailed,
        DigestMismatch, UnsupportedMediaType, InvalidImage, NotFound (no
        manifest for the platform), RegistryError (the registry failed or
        could not be reached, after retries), DeadlineExceeded (a request
        hung), InvalidArgument (a bad reference or hosts.toml).
        """
        from ._registry import Reference

        parsed = Reference.parse(reference)
        credentials = as_credentials(auth)
        wanted = parse_platform(platform) if platform is not None else host_platform()
        order = _PullOrder(
            parsed,
            wanted,
            platform,
            credentials,
            hosts_dir,
            progress,
            unpack,
            snapshotter or self.snapshotter,
        )
        if transfer is None:
            helps, order = await self._transfer_helps(order)
            if helps:
                handed = await Lease.create(self._session, "pull")
                try:
                    return await self._pull_through_transfer(order, handed, handing_over=True)
                except LibcontainerdError as error:
                    log.info("containerd's pull of %s failed, pulling here: %s", parsed.name, error)
                return await self._pull_here(order, handed)
        elif transfer:
            if credentials is not None and credentials.registry_token:
                raise InvalidArgument(
                    "a registry token cannot be given to containerd's Transfer service"
                    " (pull with transfer=False)"
                )
            await self._check_transfer()
            lease = await Lease.create(self._session, "pull")
            return await self._pull_through_transfer(order, lease, handing_over=False)
        return await self._pull_here(order, None)

    async def _transfer_helps(self, order: _PullOrder) -> tuple[bool, _PullOrder]:
        """Whether the daemon should pull, and the order (with what config.json gave).

        The daemon pulls when it can, and there are layers to fetch and
        unpack. Not for an image already here (this client checks it with one
        manifest request, faster), nor with credentials: the daemon follows a
        redirect to another port of the registry's host with the registry's
        Authorization header, which this client never does.
        """
        if not order.unpack or order.credentials is not None:
            return False, order
        try:
            await self._check_transfer()
        except NotImplemented:
            return False, order
        try:
            await self._record(order.reference.name)
        except ImageNotFound:
            pass
        else:
            return False, order
        registry = order.reference.registry
        found = await asyncio.to_thread(credentials_from_docker_config, registry)
        return found is None, dataclasses.replace(order, credentials=found)

    async def _check_transfer(self) -> None:
        """NotImplemented when the daemon has no Transfer service this library uses (cached)."""
        from ._transfer import check_daemon

        if self._transfer_missing is None:
            try:
                await check_daemon(self._session)
            except NotImplemented as missing:
                self._transfer_missing = str(missing)
                raise
            self._transfer_missing = ""
        elif self._transfer_missing:
            raise errors.NotImplemented(self._transfer_missing)

    async def _pull_through_transfer(
        self, order: _PullOrder, lease: Lease, *, handing_over: bool
    ) -> Image:
        """The daemon's pull (see :mod:`._transfer`), under ``lease``, kept as the client's is.

        ``handing_over``: on the daemon's failure this client's pull follows
        and takes the lease over (it resumes what the daemon left, then ends it).
        """
        from ._pull import interrupted
        from ._registry import TIMEOUT
        from ._transfer import pull_through_transfer

        name = order.reference.name

        async def credentials_for() -> Credentials | None:
            if order.credentials is not None:
                return order.credentials
            registry = order.reference.registry
            return await asyncio.to_thread(credentials_from_docker_config, registry)

        ending: Lease | None = lease
        failed = True
        try:
            reported = await pull_through_transfer(
                self._session,
                order.reference,
                platform=order.wanted,
                credentials=credentials_for,
                hosts_dir=order.hosts_dir,
                progress=order.progress,
                unpack=order.unpack,
                snapshotter=order.snapshotter,
                lease=lease,
                quiet=TIMEOUT.read or 30.0,
            )
            image = await self.get(name, platform=order.platform)
            if order.progress is not None:  # the steps the daemon did not report finished
                phases = ("download", "unpack") if order.unpack else ("download",)
                for phase in phases:
                    for layer in image.layers:
                        if (phase, layer.digest) not in reported:
                            if phase == "unpack":  # as this client's: once at 0, once done
                                order.progress(Progress(phase, layer.digest, 0, layer.size))
                            order.progress(Progress(phase, layer.digest, layer.size, layer.size))
            failed = False
            await self._end_kept_pulls(name)
            return image
        except BaseException as error:
            if isinstance(error, NotImplemented):  # built without it: not asked again
                self._transfer_missing = str(error)
            if handing_over and isinstance(error, LibcontainerdError):
                ending = None  # this client's pull takes it over
            elif interrupted(error):
                # Kept (it expires on its own): a later pull, the daemon's or this
                # client's, resumes what it left; the pull that completes ends it.
                self._kept_pulls.setdefault(name, []).append(lease)
                ending = None
            raise
        finally:
            if ending is not None:
                await ending.release(failed=failed)

    async def _end_kept_pulls(self, name: str) -> None:
        """End the leases of earlier cut-off pulls of ``name``: the image's records now hold
        what they held."""
        for kept in self._kept_pulls.pop(name, []):
            await kept.release(failed=False)

    async def _pull_here(self, order: _PullOrder, handed: Lease | None) -> Image:
        """This client's pull: it talks to the registry, containerd stores and unpacks.

        ``handed``: the lease of the daemon's pull that failed before this one;
        it ends with this pull's own lease, or is kept with it.
        """
        from ._pull import Fetcher, all_or_none, interrupted
        from ._registry import Repository

        name = order.reference.name
        what = f"image {name}"
        session = self._session
        ending = [] if handed is None else [handed]
        failed = True
        downloading = False
        try:
            lease = await Lease.create(session, "pull")
            ending.insert(0, lease)
            async with Repository(
                order.reference, credentials=order.credentials, hosts_dir=order.hosts_dir
            ) as repository:
                fetcher = Fetcher(repository, self._store, lease, order.wanted, order.progress)
                target = await fetcher.documents()  # the index, manifest and config
                walker = ImageWalker(self._store, order.wanted, order.platform is not None)
                resolved = await walker.resolve(target, what)
                for digest, labels in walker.labels.items():
                    await self._store.set_labels(digest, labels, metadata=lease.metadata)
                arrived = [asyncio.Event() for _ in resolved.layers]
                work = [fetcher.layers(resolved.layers, arrived, bottom_first=order.unpack)]
                if order.unpack:  # each layer as soon as it and those below it are in
                    snapshots = Snapshots(session, order.snapshotter)
                    work.append(
                        self._unpack(
                            resolved,
                            snapshots,
                            lease,
                            what,
                            order.progress,
                            lambda index: arrived[index].wait(),
                        )
                    )
                downloading = True
                await all_or_none(work)
            record = await self._put(name, _wire(target))
            failed = False
            await self._end_kept_pulls(name)
            return _image(record, resolved)
        except BaseException as error:
            if interrupted(error):
                # Kept (they expire on their own): the next pull resumes the partial
                # blobs. This one's once it was downloading; the daemon's then too, or
                # when containerd (not the registry) cut this one short.
                cut_here = not isinstance(error, Exception) or isinstance(error, Unavailable)
                keeping = [kept for kept in ending if downloading or (kept is handed and cut_here)]
                self._kept_pulls.setdefault(name, []).extend(keeping)
                ending = [ended for ended in ending if ended not in keeping]
            raise
        finally:
            for ended in ending:
                await ended.release(failed=failed)

    async def push(
        self,
        name: str,
        reference: str | None = None,
        *,
        auth: Auth | None = None,
        hosts_dir: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
        platform: str | None = None,
    ) -> str:
        """Push the image ``name`` to ``reference`` (default: its own name); the manifest digest.

        The image goes up as its manifest for ``platform`` (default: this
        machine's): blobs first (those the registry has are skipped), the
        manifest last, under the reference's tag. ``auth``, ``hosts_dir``
        as for :meth:`pull`; ``progress`` gets ``upload`` steps.
        Raises ImageNotFound, InvalidImage (content missing),
        AuthenticationFailed, RegistryError, DeadlineExceeded, InvalidArgument.
        """
        from ._pull import push_image
        from ._registry import Reference, Repository

        image = await self.get(name, platform=platform)
        parsed = Reference.parse(reference or image.name)
        async with Repository(
            parsed, credentials=as_credentials(auth), hosts_dir=hosts_dir, push=True
        ) as repository:
            return await push_image(self._session, self._store, repository, image, progress)

    async def export(
        self,
        destination: str | os.PathLike[str] | IO[bytes],
        names: str | Iterable[str],
        *,
        platform: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Write the named images to an archive: an OCI image layout with ``manifest.json``.

        ``docker load``, ``ctr images import``, ``skopeo`` and :meth:`import_archive`
        read it. Each image goes in as its manifest for ``platform`` (default:
        this machine's); blobs are streamed from the content store and checked
        against their digests. A path is written beside it and renamed into
        place once complete; a binary file object is written to directly.
        Raises ImageNotFound, InvalidImage (content missing), DigestMismatch
        (the store's blob is not what its digest says), OSError.
        """
        from ._export import write_archive

        wanted = [names] if isinstance(names, str) else list(names)
        if not wanted:
            raise InvalidArgument("export needs at least one image name")
        resolved = [await self.get(name, platform=platform) for name in wanted]
        await write_archive(self._session, destination, resolved, progress)

    async def unpack(
        self,
        image: str | Image,
        *,
        snapshotter: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Unpack the image's layers into snapshots (those already there are reused).

        Raises ImageNotFound, InvalidImage (content missing), DigestMismatch.
        """
        resolved = await self.resolve(image)
        lease = await Lease.create(self._session, "unpack")
        failed = True
        try:
            await self._unpack_under_lease(
                resolved, snapshotter or self.snapshotter, lease, progress
            )
            failed = False
        finally:
            await self._end(lease, failed=failed)

    async def _end(self, lease: Lease, *, failed: bool) -> None:
        """End an import's or unpack's lease, and after a success those that could not be ended.

        A lease containerd could not be asked to end (it had died during the
        work) is kept until this service's next success: meanwhile what it
        holds (committed layers, written blobs) is reused; then what no image
        holds is collected at once.
        """
        if not await lease.release(failed=failed):
            self._unended.append(lease)
        elif not failed:
            for left in list(self._unended):
                if await left.release(failed=True):
                    self._unended.remove(left)

    async def _unpack_under_lease(
        self,
        image: Image,
        snapshotter: str,
        lease: Lease,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Unpack under the caller's lease; the top chain ID."""
        if image.config_descriptor is None:
            raise InvalidImage(
                f"image {image.name} is incomplete: its manifest or config for this platform"
                " is missing from the content store"
            )
        return await unpack_layers(
            self._session,
            self._store,
            Snapshots(self._session, snapshotter),
            lease,
            layers=image.layers,
            diff_ids=image.diff_ids,
            config=image.config_descriptor,
            what=f"image {image.name}",
            progress=progress,
        )

    async def _unpack(
        self,
        resolved: Resolved,
        snapshots: Snapshots,
        lease: Lease,
        what: str,
        progress: ProgressCallback | None,
        ready: Callable[[int], Awaitable[object]] | None = None,
    ) -> None:
        await unpack_layers(
            self._session,
            self._store,
            snapshots,
            lease,
            layers=resolved.layers,
            diff_ids=resolved.diff_ids,
            config=resolved.config,
            what=what,
            progress=progress,
            ready=ready,
        )


def _distinct(roots: Iterable[Root], resolved: dict[str, Resolved]) -> list[Root]:
    """One root per platform manifest (two names of one image unpack once)."""
    seen: set[str] = set()
    chosen = []
    for root in roots:
        manifest = resolved[root.target.digest].manifest.digest
        if manifest not in seen:
            seen.add(manifest)
            chosen.append(root)
    return chosen


def _descriptor(wire: descriptor_pb2.Descriptor) -> Descriptor:
    return Descriptor(wire.media_type, wire.digest, wire.size)


def _wire(descriptor: Descriptor) -> descriptor_pb2.Descriptor:
    return descriptor_pb2.Descriptor(
        media_type=descriptor.media_type, digest=descriptor.digest, size=descriptor.size
    )


def _image(record: images_pb2.Image, resolved: Resolved | None) -> Image:
    """The Image of a record, with what its platform's manifest says (when found)."""
    return Image(
        name=record.name,
        digest=record.target.digest,
        media_type=record.target.media_type,
        platform=str(resolved.platform or "") if resolved else "",
        size=resolved.size if resolved else 0,
        created=to_datetime(record.created_at),
        updated=to_datetime(record.updated_at),
        labels=dict(record.labels),
        diff_ids=tuple(resolved.diff_ids) if resolved else (),
        config=resolved.image_config() if resolved else ImageConfig(),
        manifest=resolved.manifest if resolved else None,
        config_descriptor=resolved.config if resolved else None,
        layers=tuple(resolved.layers) if resolved else (),
    )
