"""containerd's content store, leases and GC labels, as the image room uses them.

Blobs are written with Content.Write, one bidirectional stream per blob: a
``STAT`` opens the ingest (``AlreadyExists`` when a blob of the expected
digest is there: nothing is sent), ``WRITE`` messages carry ~1 MiB chunks at
their offset (the first, at 0, truncates what an interrupted writer left
under the same ref), and ``COMMIT`` has containerd check size and digest and
apply the blob's labels. The digest is also computed here while streaming, so
a mismatch is a :class:`DigestMismatch` before containerd is asked to commit.

Everything an import or an unpack writes is made under a :class:`Lease`
(the ``containerd-lease`` header), which keeps it from garbage collection
until the image's records and labels root it; the lease expires on its own
(``containerd.io/gc.expire``), so a client that dies leaves nothing for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import grpc
import grpc.aio
from google.protobuf import field_mask_pb2

from .._api.containerd.api.services.content.v1 import content_pb2
from .._api.containerd.api.services.leases.v1 import leases_pb2
from .._session import Session
from ..errors import (
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    InvalidImage,
    LibcontainerdError,
    NotFound,
    Unavailable,
    from_grpc,
)
from ._media import MAX_DOCUMENT, digest_of
from ._types import Descriptor

__all__ = [
    "GC_EXPIRE",
    "GC_REF_CONFIG",
    "GC_REF_LAYER",
    "GC_REF_MANIFEST",
    "GC_REF_SNAPSHOT",
    "UNCOMPRESSED",
    "ContentStore",
    "Lease",
    "Reader",
    "reader_of",
]

log = logging.getLogger(__name__)

# containerd's garbage-collection labels (its images/mediatypes.go and gc).
GC_EXPIRE: Final = "containerd.io/gc.expire"
GC_REF_MANIFEST: Final = "containerd.io/gc.ref.content.m.{}"
GC_REF_CONFIG: Final = "containerd.io/gc.ref.content.config"
GC_REF_LAYER: Final = "containerd.io/gc.ref.content.l.{}"
GC_REF_SNAPSHOT: Final = "containerd.io/gc.ref.snapshot.{}"
UNCOMPRESSED: Final = "containerd.io/uncompressed"

CHUNK: Final = 1 << 20
# WRITE messages sent ahead of their answers (containerd answers each in order).
_WINDOW: Final = 8
# A ref locked by another writer (Unavailable) is retried this long.
_LOCKED_FOR: Final = 60.0

LEASE_EXPIRY: Final = timedelta(hours=24)

Reader = Callable[[int], Awaitable[bytes]]
"""Reads up to n bytes of a blob being written; b"" at its end."""


def reader_of(data: bytes) -> Reader:
    """A Reader over bytes held in memory (a document written by this library)."""
    view = memoryview(data)
    position = 0

    async def read(size: int) -> bytes:
        nonlocal position
        chunk = bytes(view[position : position + size])
        position += len(chunk)
        return chunk

    return read


class Lease:
    """A containerd lease: what is made under it is kept until it ends or expires."""

    def __init__(self, session: Session, lease_id: str) -> None:
        self._session = session
        self.id = lease_id
        self.metadata = session.connection.lease_metadata(lease_id)

    @classmethod
    async def create(
        cls, session: Session, purpose: str, expiry: timedelta = LEASE_EXPIRY
    ) -> Lease:
        """A new lease named after ``purpose``, expiring after ``expiry`` (Leases.Create)."""
        lease_id = f"libcontainerd-{purpose}-{time.time_ns():x}-{secrets.token_hex(4)}"
        expires = (datetime.now(UTC) + expiry).strftime("%Y-%m-%dT%H:%M:%SZ")
        await session.call(
            session.methods.leases.create,
            leases_pb2.CreateRequest(id=lease_id, labels={GC_EXPIRE: expires}),
            f"create lease {lease_id!r}",
        )
        return cls(session, lease_id)

    async def delete(self, *, sync: bool = False) -> None:
        """End the lease (Leases.Delete); with ``sync`` containerd collects what it held first."""
        with contextlib.suppress(NotFound):
            await self._session.call(
                self._session.methods.leases.delete,
                leases_pb2.DeleteRequest(id=self.id, sync=sync),
                f"delete lease {self.id!r}",
            )

    async def release(self, *, failed: bool) -> bool:
        """End the lease after the work done under it; whether it ended (never raises: logged).

        After a failure containerd collects at once what the lease held, so
        nothing half made outlives the call.
        """
        try:
            await self.delete(sync=failed)
        except LibcontainerdError as error:
            log.warning("could not delete lease %s (it expires on its own): %s", self.id, error)
            return False
        return True


class ContentStore:
    """Blobs in the namespace's content store (calls made under a lease when given one)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def info(self, digest: str) -> content_pb2.Info | None:
        """The blob's record (Content.Info), or None when it is not in the store."""
        session = self._session
        try:
            reply = await session.call(
                session.methods.content.info,
                content_pb2.InfoRequest(digest=digest),
                f"look up blob {digest}",
            )
        except NotFound:
            return None
        return reply.info

    async def read(self, descriptor: Descriptor, what: str, limit: int = MAX_DOCUMENT) -> bytes:
        """A whole (small) blob, checked against its descriptor's size and digest.

        Raises InvalidImage for a blob over ``limit`` bytes or missing from the
        store, DigestMismatch when what containerd holds is not the blob.
        """
        if descriptor.size > limit:
            raise InvalidImage(
                f"{what} is {descriptor.size} bytes, over the {limit >> 20} MiB this library"
                " reads for an image document"
            )
        session = self._session
        parts: list[bytes] = []
        received = 0
        try:
            async for answer in session.connection.stream(
                session.methods.content.read,
                content_pb2.ReadContentRequest(digest=descriptor.digest),
                f"read {what} ({descriptor.digest})",
            ):
                received += len(answer.data)
                if received > limit:
                    raise InvalidImage(f"{what} is over {limit >> 20} MiB")
                parts.append(answer.data)
        except NotFound:
            raise InvalidImage(
                f"{what} ({descriptor.digest}) is not in the content store: the image is incomplete"
            ) from None
        data = b"".join(parts)
        if len(data) != descriptor.size or digest_of(data) != descriptor.digest:
            raise DigestMismatch(
                f"{what}: the content store's {descriptor.digest} holds {len(data)} bytes"
                f" of digest {digest_of(data)}, not the {descriptor.size} described"
            )
        return data

    async def read_json(self, descriptor: Descriptor, what: str) -> dict[str, Any]:
        """A blob that is a JSON object (an index, a manifest, a config)."""
        data = await self.read(descriptor, what)
        try:
            document = json.loads(data)
        except ValueError as error:
            raise InvalidImage(f"{what} is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise InvalidImage(f"{what} is not a JSON object")
        return document

    async def set_labels(
        self, digest: str, labels: Mapping[str, str], *, metadata: grpc.aio.Metadata | None = None
    ) -> None:
        """Set these labels on a blob, leaving its others (Content.Update with a mask)."""
        if not labels:
            return
        session = self._session
        await session.connection.call(
            session.methods.content.update,
            content_pb2.UpdateRequest(
                info=content_pb2.Info(digest=digest, labels=dict(labels)),
                update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{key}" for key in labels]),
            ),
            f"label blob {digest}",
            metadata=metadata,
        )

    async def write(
        self,
        ref: str,
        read: Reader,
        *,
        total: int,
        expected: str = "",
        labels: Mapping[str, str] | None = None,
        metadata: grpc.aio.Metadata,
        what: str,
        on_bytes: Callable[[int], None] | None = None,
        resume: Callable[[int], Awaitable[Reader]] | None = None,
    ) -> tuple[str, bool]:
        """Stream one blob of ``total`` bytes from ``read`` into the store under ``ref``.

        With ``expected`` (its digest, when known beforehand) a blob already in
        the store is not sent again and ``read`` is not called. Returns the
        blob's digest and whether it was written (False: it was there).
        Raises DigestMismatch (the bytes are not ``expected``), InvalidImage
        (fewer or more bytes than ``total``); the ingest is aborted then.

        With ``resume`` (and ``expected``) the write is resumable: when the
        ingest already holds the first N bytes (an earlier writer stopped),
        ``resume(N)`` gives a reader of the rest and containerd checks the
        whole blob's digest at commit; a write that fails for another reason
        than its content (a dropped connection, a cancellation) leaves the
        ingest for the next attempt instead of aborting it.
        """
        deadline = time.monotonic() + _LOCKED_FOR
        delay = 0.05
        while True:
            try:
                return await self._write_once(
                    ref, read, total, expected, labels, metadata, what, on_bytes, resume
                )
            except _Locked:
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"write {what}: the content store's ingest {ref!r} stayed locked by"
                        f" another writer for {_LOCKED_FOR:.0f} s"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _write_once(
        self,
        ref: str,
        read: Reader,
        total: int,
        expected: str,
        labels: Mapping[str, str] | None,
        metadata: grpc.aio.Metadata,
        what: str,
        on_bytes: Callable[[int], None] | None,
        resume: Callable[[int], Awaitable[Reader]] | None = None,
    ) -> tuple[str, bool]:
        session = self._session
        call = session.methods.content.write(metadata=metadata)
        Action = content_pb2.WriteAction
        pending = 0
        hasher = hashlib.sha256()
        offset = 0
        sent = False
        resumed = False
        try:
            await _send(
                call,
                content_pb2.WriteContentRequest(
                    action=Action.STAT, ref=ref, total=total, expected=expected
                ),
            )
            status = await _answer(call)
            if resume is not None and expected and 0 < status.offset < total:
                offset = status.offset  # what an earlier writer left: fetch only the rest
                read = await resume(offset)
                resumed = True
            while True:
                try:
                    data = await read(CHUNK)
                except Exception:
                    # The source broke off (a dropped download): what was sent is what
                    # a resumed write skips, so let containerd take it before the stream goes.
                    with contextlib.suppress(Exception):
                        for _ in range(pending):
                            await _answer(call)
                    raise
                if not data:
                    break
                hasher.update(data)
                await _send(
                    call,
                    content_pb2.WriteContentRequest(
                        action=Action.WRITE, ref=ref, offset=offset, data=data
                    ),
                )
                sent = True
                offset += len(data)
                pending += 1
                if on_bytes is not None:
                    on_bytes(offset)
                if pending >= _WINDOW:
                    await _answer(call)
                    pending -= 1
            digest = expected if resumed else "sha256:" + hasher.hexdigest()
            if offset != total:
                raise InvalidImage(
                    f"{what} has {offset} bytes, not the {total} its descriptor announces"
                    " (truncated?)"
                )
            if expected and digest != expected:
                raise DigestMismatch(f"{what} is not {expected}: its content's digest is {digest}")
            await _send(
                call,
                content_pb2.WriteContentRequest(
                    action=Action.COMMIT,
                    ref=ref,
                    total=total,
                    offset=offset,
                    expected=digest,
                    labels=dict(labels or {}),
                ),
            )
            pending += 1
            try:
                while pending:
                    await _answer(call)
                    pending -= 1
            except (InvalidArgument, FailedPrecondition) as refused:
                if not resumed:
                    raise
                # Only containerd saw the first part: its digest check is the one that counts.
                raise DigestMismatch(
                    f"{what} is not {expected}: containerd refused the resumed blob at commit"
                    f" ({refused.details})"
                ) from None
            await call.done_writing()
            return digest, True
        except _Exists:
            # At STAT (a blob of the expected digest is stored), or at COMMIT (another
            # writer stored the same bytes first): either way it is there.
            return expected or "sha256:" + hasher.hexdigest(), False
        except BaseException as error:
            call.cancel()
            keep = resume is not None and not isinstance(error, InvalidImage)
            if (sent or resumed) and not keep and not isinstance(error, _Locked):
                await self._abort(ref)
            raise
        finally:
            call.cancel()

    async def _abort(self, ref: str) -> None:
        session = self._session
        with contextlib.suppress(LibcontainerdError):
            await session.call(
                session.methods.content.abort,
                content_pb2.AbortRequest(ref=ref),
                f"abort ingest {ref!r}",
            )


class _Exists(Exception):
    """The blob is in the store already (Write answered AlreadyExists)."""


class _Locked(Exception):
    """Another writer holds the ingest's ref (Write answered Unavailable)."""


async def _send(call: Any, request: content_pb2.WriteContentRequest) -> None:
    """Write one request on the stream; a stream that has ended (containerd died or
    answered an error) raises its status as our error, not grpc's InvalidStateError."""
    try:
        await call.write(request)
    except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
        code, details = await call.code(), await call.details()
        error = grpc.aio.AioRpcError(
            code, grpc.aio.Metadata(), grpc.aio.Metadata(), details or "the stream ended"
        )
        if code == grpc.StatusCode.ALREADY_EXISTS:
            raise _Exists from None
        raise from_grpc(error, "write a blob into the content store") from None


async def _answer(call: Any) -> content_pb2.WriteContentResponse:
    """The next answer of a Write stream; its failure as _Exists, _Locked or our error."""
    try:
        answer = await call.read()
        if answer is grpc.aio.EOF:  # ended without an answer: its status says why
            code, details = await call.code(), await call.details()
            raise grpc.aio.AioRpcError(
                code, grpc.aio.Metadata(), grpc.aio.Metadata(), details or "ended early"
            )
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code == grpc.StatusCode.ALREADY_EXISTS:
            raise _Exists from None
        if code == grpc.StatusCode.UNAVAILABLE and "locked" in (error.details() or ""):
            raise _Locked from None
        raise from_grpc(error, "write a blob into the content store") from error
    return answer  # type: ignore[no-any-return]
