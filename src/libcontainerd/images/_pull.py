"""Pulling and pushing: between a registry (:mod:`._registry`) and containerd's content store.

Pull: the reference is resolved to its manifest or index (mirrors first);
an index is narrowed to the platform's manifest (nested indexes followed,
other platforms and attestation entries skipped) and its config fetched;
then the layers are streamed into the content store concurrently (a bounded
number at a time) while the service unpacks each one as soon as it and the
layers below it are in. Each blob goes in under containerd's own ingest ref for it
(``layer-sha256:...``, shared with the daemon's pull), hashed on the way and committed
with its expected digest and size (a mismatch is :class:`DigestMismatch`
and nothing is committed). Blobs already in the store are not fetched. A
blob whose connection drops is fetched again (up to the registry's attempts).

Push: the image's platform manifest goes up after its config and layers;
each blob the registry already has (HEAD) is skipped, the others are
streamed from the content store (one PUT, or PATCHes for large ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, Final

import httpx

from .._api.containerd.api.services.content.v1 import content_pb2
from .._session import Session
from ..errors import (
    AuthenticationFailed,
    DeadlineExceeded,
    DigestMismatch,
    InvalidImage,
    LibcontainerdError,
    NotFound,
    RegistryError,
    Unavailable,
)
from . import _media
from ._content import ContentStore, Lease, Reader, reader_of
from ._media import Kind
from ._names import Platform
from ._registry import Repository
from ._types import Descriptor, Image, Progress, ProgressCallback
from ._walk import descriptor_of

log = logging.getLogger(__name__)

__all__ = ["DISTRIBUTION_SOURCE", "Fetcher", "all_or_none", "interrupted", "push_image"]

DISTRIBUTION_SOURCE: Final = "containerd.io/distribution.source.{}"
CONCURRENCY: Final = int(os.environ.get("LIBCONTAINERD_PULL_CONCURRENCY", "3"))
# Blobs over this go up in chunks (PATCH); smaller ones in one PUT.
UPLOAD_CHUNK = int(os.environ.get("LIBCONTAINERD_PUSH_CHUNK", str(64 << 20)))
_BLOB_ATTEMPTS: Final = 3


class Fetcher:
    """One pull's downloads: first the documents (:meth:`documents`), then :meth:`layers`."""

    def __init__(
        self,
        repository: Repository,
        store: ContentStore,
        lease: Lease,
        platform: Platform,
        progress: ProgressCallback | None,
    ) -> None:
        self.repository = repository
        self.endpoint = repository.endpoints[-1]
        self.store = store
        self.lease = lease
        self.platform = platform
        self.progress = progress
        self.limit = asyncio.Semaphore(max(CONCURRENCY, 1))
        self.labels = {_source_label(repository.registry): repository.reference.repository}

    async def documents(self) -> Descriptor:
        """Resolve the reference and fetch its index, platform manifest and config; the target."""
        self.endpoint, target, data = await self.repository.resolve()
        what = f"image {self.repository.reference.name}"
        await self.document(target, data, f"{what}'s {target.media_type.rsplit('.', 1)[-1]}")
        await self.children(target, data, what)
        return target

    async def layers(
        self, layers: list[Descriptor], arrived: list[asyncio.Event], *, bottom_first: bool
    ) -> None:
        """Fetch the layers concurrently (bounded); ``arrived[i]`` is set once layer i is in.

        With ``bottom_first`` (an unpack takes them in order), the bottom layer
        comes alone first: with the whole bandwidth it is in sooner, and so is
        the unpack's start; the others download while it is applied.
        """

        async def one(index: int, layer: Descriptor) -> None:
            await self.blob(layer, f"layer {index} ({layer.digest[:19]})")
            arrived[index].set()

        numbered = list(enumerate(layers))
        if bottom_first and numbered:
            await one(*numbered.pop(0))
        await all_or_none([one(index, layer) for index, layer in numbered])

    async def document(self, descriptor: Descriptor, data: bytes, what: str) -> None:
        await self.store.write(
            _media.ingest_ref(descriptor.media_type, descriptor.digest),
            reader_of(data),
            total=len(data),
            expected=descriptor.digest,
            labels=self.labels,
            metadata=self.lease.metadata,
            what=what,
        )

    async def children(self, target: Descriptor, data: bytes, what: str, depth: int = 0) -> None:
        """Fetch what the walker will need under ``target`` (already stored)."""
        document = _document(data, what)
        media_type = target.media_type or _media.sniff_document(document, what)
        kind = _media.kind_of(media_type, what)
        if kind is Kind.INDEX:
            if depth >= 4:
                raise InvalidImage(f"{what} nests indexes more than 4 deep")
            child = self._choose(document, what)
            child_what = f"{what} -> manifest {child.digest[:19]}"
            _, child_data = await self.repository.manifest(
                self.endpoint, child.digest, child.digest, child.media_type
            )
            if len(child_data) != child.size:
                raise DigestMismatch(f"{child_what}: {len(child_data)} bytes, not {child.size}")
            await self.document(child, child_data, child_what)
            await self.children(child, child_data, child_what, depth + 1)
        elif kind is Kind.MANIFEST:
            config = descriptor_of(document.get("config"), f"{what}'s config")
            _media.check_config_type(config.media_type, what)
            layers = document.get("layers")
            if not isinstance(layers, list):
                raise InvalidImage(f"{what} has no list of layers")
            await self.blob(config, f"{what}'s config")  # the layers come later (layers())
        else:
            raise InvalidImage(f"{what} is a {kind.value}, not an index or a manifest")

    def _choose(self, index: dict[str, Any], what: str) -> Descriptor:
        entries = index.get("manifests")
        if not isinstance(entries, list):
            raise InvalidImage(f"{what} has no list of manifests")
        for position, entry in enumerate(entries):
            child = descriptor_of(entry, f"{what}'s manifests[{position}]")
            platform = Platform.of(entry.get("platform") or {})
            if platform is None or platform.matches(self.platform):
                return child
        raise NotFound(
            f"{what} has no manifest for platform {self.platform}"
            f" (registry {self.repository.registry})"
        )

    async def blob(self, descriptor: Descriptor, what: str) -> None:
        async with self.limit:
            if await self.store.info(descriptor.digest) is not None:
                self._report(descriptor, descriptor.size)
                return
            for attempt in range(_BLOB_ATTEMPTS):
                try:
                    await self._blob_once(descriptor, what)
                    return
                except _Dropped as dropped:
                    if attempt + 1 == _BLOB_ATTEMPTS:
                        raise self._failed(descriptor, dropped.cause) from None
                    await asyncio.sleep(0.2 * 2**attempt)

    def _failed(self, descriptor: Descriptor, cause: httpx.TransportError) -> LibcontainerdError:
        """The error for a blob whose answer broke off (or stalled) on every attempt."""
        repository = self.repository
        request = f"GET {repository.url(self.endpoint, 'blobs', descriptor.digest)}"
        if isinstance(cause, httpx.TimeoutException):
            return repository._hung(request)
        return RegistryError(
            f"registry {repository.registry}: {request} broke off {_BLOB_ATTEMPTS} times:"
            f" {type(cause).__name__}: {cause}",
            registry=repository.registry,
            request=request,
        )

    def _report(self, descriptor: Descriptor, done: int) -> None:
        if self.progress is not None:
            self.progress(Progress("download", descriptor.digest, done, descriptor.size))

    async def _blob_once(self, descriptor: Descriptor, what: str) -> None:
        """One attempt at a blob: from where an earlier one left its ingest, if it did."""
        async with contextlib.AsyncExitStack() as stack:

            async def open_at(offset: int) -> Reader:
                response = await self._foreign(stack, descriptor, offset)
                if response is None:
                    response = await stack.enter_async_context(
                        self.repository.blob(self.endpoint, descriptor.digest, offset)
                    )
                skip = 0
                if offset:
                    ranged = response.headers.get("Content-Range", "")
                    if response.status_code != 206:
                        skip = offset  # the whole blob came: drop what the store has
                    elif not ranged.startswith(f"bytes {offset}-"):
                        raise _Dropped(httpx.RemoteProtocolError(f"answered {ranged!r}"))
                return _reader(response, descriptor.size - offset, skip)

            started: Reader | None = None

            async def read(size: int) -> bytes:
                nonlocal started
                if started is None:
                    started = await open_at(0)
                return await started(size)

            self._report(descriptor, 0)
            await self.store.write(
                _media.ingest_ref(descriptor.media_type, descriptor.digest),
                read,
                total=descriptor.size,
                expected=descriptor.digest,
                labels=self.labels,
                metadata=self.lease.metadata,
                what=f"{what} from registry {self.repository.registry}",
                on_bytes=lambda done: self._report(descriptor, done),
                resume=open_at,
            )

    async def _foreign(
        self, stack: contextlib.AsyncExitStack, descriptor: Descriptor, offset: int
    ) -> httpx.Response | None:
        """A foreign layer's answer from one of its own URLs (None: take it from the registry).

        As Docker does for non-distributable layers: the URLs the manifest
        gives are tried in order, without the registry's credentials; the
        digest check on the way in is the same.
        """
        if not _media.is_foreign(descriptor.media_type):
            return None
        for url in descriptor.urls:
            if not url.startswith(("http://", "https://")):
                continue
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                response = await stack.enter_async_context(self.repository.foreign(url, headers))
            except httpx.HTTPError as error:
                log.info("foreign layer %s: %s failed (%s)", descriptor.digest, url, error)
                continue
            if response.status_code in (200, 206):
                return response
            log.info(
                "foreign layer %s: %s answered %s", descriptor.digest, url, response.status_code
            )
        return None


def _reader(response: httpx.Response, remaining: int, skip: int) -> Reader:
    """The answer's body as a Reader of up to ``size`` bytes a call, at most ``remaining`` + 1
    bytes in all (more is refused by the write as too long), the first ``skip`` bytes dropped.

    The network's chunks (tens of KiB) are gathered into one WRITE message of
    up to ``size``: containerd's per-message cost, not the bytes, was what
    bounded a pull's download rate.
    """
    stream = response.aiter_bytes()
    received = 0
    broken: httpx.TransportError | None = None

    async def read(size: int) -> bytes:
        nonlocal received, skip, broken
        if broken is not None:
            raise _Dropped(broken) from broken
        parts: list[bytes] = []
        gathered = 0
        while gathered < size and received <= remaining:
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                break
            except httpx.TransportError as error:
                if not parts:
                    raise _Dropped(error) from error
                broken = error  # what came is written first: a resumed pull skips it
                break
            if skip:
                dropped = min(skip, len(chunk))
                chunk, skip = chunk[dropped:], skip - dropped
            if chunk:
                received += len(chunk)
                gathered += len(chunk)
                parts.append(chunk)
        return b"".join(parts)

    return read


def interrupted(error: BaseException) -> bool:
    """Whether a pull stopped for a reason a retry may not meet (a cancellation, a dropped or
    hung connection, a registry's 5xx), so that what it wrote is worth keeping."""
    if not isinstance(error, Exception):
        return True  # cancelled, interrupted
    if isinstance(error, AuthenticationFailed):
        return False
    if isinstance(error, RegistryError):
        return error.status is None or error.status >= 500
    return isinstance(error, DeadlineExceeded | Unavailable)


def _source_label(registry: str) -> str:
    """containerd's label naming where a blob was pulled from (the host without its port)."""
    host, _, port = registry.rpartition(":")
    return DISTRIBUTION_SOURCE.format(host if port.isdigit() else registry)


async def _source_repository(store: ContentStore, digest: str, repository: Repository) -> str:
    """Another repository of this registry the blob was pulled from ("" if none): a mount."""
    info = await store.info(digest)
    if info is None:
        return ""
    source = info.labels.get(_source_label(repository.registry), "")
    others = [
        name for name in source.split(",") if name and name != repository.reference.repository
    ]
    return others[0] if others else ""


async def all_or_none(work: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run concurrently; the first failure cancels the rest and is raised as it is."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in work]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class _Dropped(Exception):
    """The connection dropped (or stalled) in the middle of a blob."""

    def __init__(self, cause: httpx.TransportError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _document(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError:
        raise InvalidImage(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidImage(f"{what} is not a JSON object")
    return document


async def push_image(
    session: Session,
    store: ContentStore,
    repository: Repository,
    image: Image,
    progress: ProgressCallback | None,
) -> str:
    """Push the image's platform manifest, config and layers; the manifest's digest."""
    if image.manifest is None or image.config_descriptor is None:
        raise InvalidImage(f"image {image.name} is incomplete: nothing to push for this platform")
    endpoint = repository.endpoints[-1]
    limit = asyncio.Semaphore(max(CONCURRENCY, 1))

    def report(descriptor: Descriptor, done: int) -> None:
        if progress is not None:
            progress(Progress("upload", descriptor.digest, done, descriptor.size))

    async def push_blob(descriptor: Descriptor) -> None:
        async with limit:
            if await repository.blob_exists(endpoint, descriptor.digest):
                report(descriptor, descriptor.size)
                return
            report(descriptor, 0)
            mount_from = await _source_repository(store, descriptor.digest, repository)

            async def chunks(offset: int, size: int) -> AsyncIterator[bytes]:
                done = offset
                async for answer in session.connection.stream(
                    session.methods.content.read,
                    content_pb2.ReadContentRequest(
                        digest=descriptor.digest, offset=offset, size=size
                    ),
                    f"read blob {descriptor.digest} to push it",
                ):
                    done += len(answer.data)
                    report(descriptor, done)
                    yield answer.data

            await repository.upload(endpoint, descriptor, chunks, UPLOAD_CHUNK, mount_from)

    await all_or_none([push_blob(blob) for blob in (image.config_descriptor, *image.layers)])
    manifest = await store.read(image.manifest, f"image {image.name}'s manifest")
    reference = repository.reference
    await repository.put_manifest(
        endpoint, reference.tag or image.manifest.digest, image.manifest.media_type, manifest
    )
    return image.manifest.digest
