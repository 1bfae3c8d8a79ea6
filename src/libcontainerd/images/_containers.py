"""A container's root filesystem from an image: a writable snapshot beside the container.

:class:`ImageRoots` is the image room's :class:`ContainerHook`. With
``create(..., image=...)``, before Containers.Create it prepares an active
snapshot keyed by the container id on the image's top layer (unpacking the
image first when that layer is not there), under a short lease until the
container record, which names the snapshot, keeps it; it resolves a user
given by name from the image's own files; and it records image, snapshotter
and snapshot key on the container, with the image's stop signal as the label
containerd uses. Before Tasks.Create the snapshot's mounts become the task's
root filesystem; before Containers.Delete the snapshot is removed. A spec
with user namespace maps gets its snapshot on the image's remapped one
(:mod:`._remap`), made on first use.

It remembers the snapshot of each container this client created (its mounts
too), so a task's creation and a container's deletion cost no look-up; for
other containers it reads the container's record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from .._api.containerd.api.services.containers.v1 import containers_pb2
from .._api.containerd.api.services.tasks.v1 import tasks_pb2
from .._api.containerd.api.types import mount_pb2
from .._session import Session
from .._tasks import ContainerHook, NewContainer
from .._userns import IdMap, id_maps
from ..errors import AlreadyExists, InvalidArgument, InvalidImage, LibcontainerdError, NotFound
from ._content import Lease
from ._remap import remapped_parent
from ._service import ImageService
from ._types import Image
from ._unpack import Snapshots
from ._users import ResolvedUser, mounted_read_only, read_in_root, resolve_user

__all__ = ["STOP_SIGNAL_LABEL", "ImageRoots"]

log = logging.getLogger(__name__)

STOP_SIGNAL_LABEL: Final = "io.containerd.image.config.stop-signal"
# Long enough for an unpack on a slow disk; a client that dies leaves it to expire.
_CREATE_LEASE: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class _Root:
    snapshotter: str
    key: str
    mounts: tuple[mount_pb2.Mount, ...]


class ImageRoots(ContainerHook):
    """See the module docstring."""

    def __init__(self, session: Session, images: ImageService) -> None:
        self._session = session
        self._images = images
        # Containers this client created: their snapshot, or None (a root directory).
        self._roots: dict[str, _Root | None] = {}
        # Creates in flight: their lease, and the snapshot prepared for them.
        self._leases: dict[str, Lease] = {}
        self._prepared: dict[str, _Root] = {}

    def sizes(self) -> dict[str, int]:
        return {
            "container roots": len(self._roots),
            "create leases": len(self._leases),
            "prepared snapshots": len(self._prepared),
        }

    # -- create -----------------------------------------------------------------------

    async def before_create(self, container: NewContainer) -> None:
        username = _username(container.spec)
        if container.image_source is None:
            if username:
                directory = str(container.spec["root"]["path"])
                user = await asyncio.to_thread(_user_in_directory, username, directory)
                _set_user(container.spec, user)
            self._roots[container.id] = None
            return
        image = await self._images.resolve(_image_argument(container.image_source))
        if not image.complete:
            raise InvalidImage(
                f"cannot create container {container.id!r}: image {image.name} is incomplete"
                " (its manifest or config for this platform is missing)"
            )
        snapshotter = container.snapshotter or self._images.snapshotter
        lease = await Lease.create(self._session, "container", _CREATE_LEASE)
        self._leases[container.id] = lease
        maps = id_maps(container.spec)
        root = await self._prepare(container.id, image, snapshotter, lease, maps)
        if username:
            user = await asyncio.to_thread(_user_in_snapshot, username, root.mounts, image.name)
            _set_user(container.spec, user)
        container.image = image.name
        container.snapshotter = snapshotter
        container.snapshot_key = root.key
        if image.config.stop_signal:
            container.labels.setdefault(STOP_SIGNAL_LABEL, image.config.stop_signal)

    async def _prepare(
        self,
        key: str,
        image: Image,
        snapshotter: str,
        lease: Lease,
        maps: tuple[IdMap, IdMap] | None,
    ) -> _Root:
        """The container's active snapshot on the image's top layer, unpacked first if missing.

        With a user namespace's maps, on the image's snapshot remapped to them (see _remap).
        """
        snapshots = Snapshots(self._session, snapshotter)

        async def parent() -> str:
            if maps is None:
                return image.chain_id
            return await remapped_parent(self._images._store, snapshots, image, lease, *maps)

        try:
            try:
                mounts = await snapshots.prepare(key, await parent(), lease)
            except NotFound:
                await self._images._unpack_under_lease(image, snapshotter, lease)
                mounts = await snapshots.prepare(key, await parent(), lease)
        except AlreadyExists:
            raise AlreadyExists(
                f"cannot create container {key!r}: snapshotter {snapshotter!r} already has a"
                f" snapshot {key!r} (another container's, or one left behind: remove it"
                f" with 'ctr snapshots --snapshotter {snapshotter} rm {key}')"
            ) from None
        root = _Root(snapshotter, key, tuple(mounts))
        self._prepared[key] = root
        return root

    async def after_create(self, container: NewContainer) -> None:
        # The container's record keeps its snapshot now.
        root = self._prepared.pop(container.id, None)
        if container.image_source is not None:
            self._roots[container.id] = root
        lease = self._leases.pop(container.id, None)
        if lease is not None:
            await lease.release(failed=False)

    async def undo_create(self, container: NewContainer) -> None:
        root = self._prepared.pop(container.id, None)
        self._roots.pop(container.id, None)
        if root is not None:
            with contextlib.suppress(LibcontainerdError):
                await Snapshots(self._session, root.snapshotter).remove(root.key)
        lease = self._leases.pop(container.id, None)
        if lease is not None:
            await lease.release(failed=True)

    # -- task -------------------------------------------------------------------------

    async def before_task_create(
        self, container_id: str, request: tasks_pb2.CreateTaskRequest
    ) -> None:
        if request.rootfs:
            return
        if container_id in self._roots:
            root = self._roots[container_id]
            if root is not None:
                request.rootfs.extend(root.mounts)
            return
        record = await self._session.container(container_id, "start")
        if record.snapshot_key:
            snapshots = Snapshots(self._session, record.snapshotter)
            request.rootfs.extend(await snapshots.mounts(record.snapshot_key))

    # -- delete -----------------------------------------------------------------------

    def needs_record(self, container_id: str) -> bool:
        return container_id not in self._roots

    async def before_delete(self, container: containers_pb2.Container) -> None:
        root = self._roots.get(container.id)
        snapshotter, key = container.snapshotter, container.snapshot_key
        if root is not None:
            snapshotter, key = root.snapshotter, root.key
        if key and snapshotter:
            await Snapshots(self._session, snapshotter).remove(key)

    async def after_delete(self, container_id: str) -> None:
        self._roots.pop(container_id, None)


def _image_argument(value: object) -> str | Image:
    if isinstance(value, str | Image):
        return value
    raise InvalidArgument(f"image must be an image name or an Image, not {type(value).__name__}")


def _username(spec: dict[str, Any]) -> str:
    user = (spec.get("process") or {}).get("user") or {}
    name = user.get("username") if isinstance(user, dict) else None
    return name if isinstance(name, str) else ""


def _set_user(spec: dict[str, Any], user: ResolvedUser) -> None:
    # A copy: the caller's spec dict is not changed behind its back.
    process = spec["process"] = dict(spec["process"])
    entry = process["user"] = dict(process["user"])
    entry.pop("username", None)
    entry["uid"] = user.uid
    entry["gid"] = user.gid
    if user.additional_gids:
        entry["additionalGids"] = list(user.additional_gids)
    else:
        entry.pop("additionalGids", None)


def _user_in_directory(username: str, root: str) -> ResolvedUser:
    return resolve_user(
        username,
        read_in_root(root, "/etc/passwd"),
        read_in_root(root, "/etc/group"),
        f"the root filesystem {root}",
    )


def _user_in_snapshot(
    username: str, mounts: tuple[mount_pb2.Mount, ...], image_name: str
) -> ResolvedUser:
    with mounted_read_only(mounts) as root:
        return resolve_user(
            username,
            read_in_root(root, "/etc/passwd"),
            read_in_root(root, "/etc/group"),
            f"image {image_name}",
        )
