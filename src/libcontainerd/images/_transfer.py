"""Pulling through containerd's Transfer service: the daemon fetches and unpacks the image.

containerd 2.x has the service, and its ``ctr images pull`` uses it. 1.6 has
none. 1.7 has an experimental one that does not read ``hosts_dir`` (a
registry that ``hosts.toml`` says is plain HTTP is asked in HTTPS), and its
``ctr`` pulls client-side by default: it is not used. So a daemon must say it
is 2.x or later, and then have the service: opening the first stream of the
Streaming service answers UNIMPLEMENTED on a daemon built without it. Either
miss is :class:`~libcontainerd.errors.NotImplemented`.

The daemon reads the same ``certs.d`` folder (``hosts_dir``) as the
client-side pull does. When a registry asks for credentials, the daemon asks
the client on an auth stream, and gets them from the same places (the
``auth`` argument, else Docker's ``config.json`` for the reference's
registry). Progress comes back on a second stream and reaches the caller's
callback in the client-side pull's terms (``download``, ``unpack``). The call
carries the pull's lease: what the daemon fetched is kept, and left for a
later pull, the same way.

A registry that stops answering would hold the call for ever (the daemon has
no deadline of its own). So a pull that hears nothing from the daemon for
``quiet`` seconds is cancelled as :class:`~libcontainerd.errors.DeadlineExceeded`.
While a blob moves or a layer is applied, the daemon reports every 0.3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import grpc
import grpc.aio
from google.protobuf import any_pb2, empty_pb2

from .. import _typeurl, errors
from .._api.containerd.api.services.streaming.v1 import streaming_pb2
from .._api.containerd.api.services.transfer.v1 import transfer_pb2
from .._api.containerd.api.types import platform_pb2
from .._api.containerd.api.types.transfer import imagestore_pb2, progress_pb2, registry_pb2
from .._session import Session
from ..errors import (
    DeadlineExceeded,
    ImageNotFound,
    LibcontainerdError,
    from_grpc,
)
from ._auth import Credentials
from ._content import Lease
from ._hosts import DEFAULT_HOSTS_DIR
from ._names import Platform
from ._registry import Reference
from ._types import Progress, ProgressCallback

__all__ = ["check_daemon", "pull_through_transfer"]

# The daemon's progress events, in the client-side pull's phases.
_PHASES: Final = {
    "waiting": "download",
    "downloading": "download",
    "complete": "download",
    "already exists": "download",
    "extracting": "unpack",
    "extracted": "unpack",
}

CredentialsFor = Callable[[], Awaitable[Credentials | None]]


class _Stream:
    """One stream of containerd's Streaming service, registered under its id."""

    def __init__(self, call: grpc.aio.StreamStreamCall[any_pb2.Any, any_pb2.Any], id_: str):
        self.call = call
        self.id = id_

    @classmethod
    async def open(cls, session: Session, purpose: str) -> _Stream:
        """A registered stream; NotImplemented on a daemon without the Streaming service."""
        stream_id = f"libcontainerd-{purpose}-{secrets.token_hex(8)}"
        call = session.methods.streaming.stream(metadata=session.connection.metadata)
        try:
            await call.write(_typeurl.pack(streaming_pb2.StreamInit(id=stream_id)))
            await call.read()  # the daemon's answer: the stream is registered
        except grpc.aio.AioRpcError as error:
            call.cancel()
            raise from_grpc(error, f"open a {purpose} stream to containerd") from error
        return cls(call, stream_id)

    async def read(self) -> any_pb2.Any | None:
        """The next message; None once the daemon closed the stream."""
        message = await self.call.read()
        if message is grpc.aio.EOF:
            return None
        assert isinstance(message, any_pb2.Any)
        return message

    def close(self) -> None:
        self.call.cancel()


async def check_daemon(session: Session) -> None:
    """NotImplemented unless the daemon is containerd 2.x or later (see the module docstring)."""
    reply = await session.call(session.methods.version.version, empty_pb2.Empty(), "version")
    major = reply.version.lstrip("v").split(".", 1)[0]
    if not major.isdigit() or int(major) < 2:
        raise errors.NotImplemented(
            f"containerd {reply.version} cannot pull through its Transfer service"
            " (containerd 2.0 or later can; 1.7's is experimental)"
        )


async def pull_through_transfer(
    session: Session,
    reference: Reference,
    *,
    platform: Platform,
    credentials: CredentialsFor,
    hosts_dir: str | os.PathLike[str] | None,
    progress: ProgressCallback | None,
    unpack: bool,
    snapshotter: str,
    lease: Lease,
    quiet: float,
) -> set[tuple[str, str]]:
    """Have the daemon pull ``reference`` under ``lease`` and name the image after it.

    Returns the (phase, digest) of the steps the daemon reported finished.
    It does not report them all: 2.1 reports no unpack, and a blob done
    within its last 0.3 s tick goes unreported. The caller reports the rest
    once the pull is done (it did them all).
    Raises NotImplemented when the daemon has no Transfer service,
    DeadlineExceeded when it was silent for ``quiet`` seconds, and the
    daemon's failure (by its gRPC code) otherwise.
    """
    streams: list[_Stream] = []
    try:
        progress_stream = await _Stream.open(session, "progress")
        streams.append(progress_stream)
        auth_stream = await _Stream.open(session, "auth")
        streams.append(auth_stream)
        request = _request(
            reference, platform, hosts_dir, unpack, snapshotter, auth_stream, progress_stream
        )
        heard = [time.monotonic()]
        finished: set[tuple[str, str]] = set()
        what = f"pull {reference.name} through containerd's Transfer service"
        call = session.methods.transfer.transfer(request, metadata=lease.metadata)
        helpers = [
            asyncio.create_task(_follow(progress_stream, progress, heard, finished)),
            asyncio.create_task(_answer(auth_stream, credentials)),
        ]
        try:
            await _until_done(call, helpers, heard, quiet, what)
        except grpc.aio.AioRpcError as error:
            raise _typed(error, what, reference) from error
        finally:
            call.cancel()
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await helper
        return finished
    finally:
        for stream in streams:
            stream.close()


def _typed(error: grpc.aio.AioRpcError, what: str, reference: Reference) -> LibcontainerdError:
    """The daemon's failure as ours: a reference it could not resolve is ImageNotFound."""
    details = error.details() or ""
    if error.code() == grpc.StatusCode.NOT_FOUND and "failed to resolve" in details:
        return ImageNotFound(
            f"{what}: registry {reference.registry} has no {reference.object!r} in"
            f" {reference.repository} ({details})"
        )
    return from_grpc(error, what)


def _request(
    reference: Reference,
    platform: Platform,
    hosts_dir: str | os.PathLike[str] | None,
    unpack: bool,
    snapshotter: str,
    auth_stream: _Stream,
    progress_stream: _Stream,
) -> transfer_pb2.TransferRequest:
    if hosts_dir is None and os.path.isdir(DEFAULT_HOSTS_DIR):
        hosts_dir = DEFAULT_HOSTS_DIR
    resolver = registry_pb2.RegistryResolver(
        auth_stream=auth_stream.id,
        host_dir=os.path.abspath(hosts_dir) if hosts_dir is not None else "",
    )
    wire_platform = platform_pb2.Platform(
        os=platform.os, architecture=platform.architecture, variant=platform.variant
    )
    store = imagestore_pb2.ImageStore(name=reference.name, platforms=[wire_platform])
    if unpack:
        store.unpacks.append(
            imagestore_pb2.UnpackConfiguration(platform=wire_platform, snapshotter=snapshotter)
        )
    return transfer_pb2.TransferRequest(
        source=_typeurl.pack(registry_pb2.OCIRegistry(reference=reference.name, resolver=resolver)),
        destination=_typeurl.pack(store),
        options=transfer_pb2.TransferOptions(progress_stream=progress_stream.id),
    )


async def _until_done(
    call: grpc.aio.UnaryUnaryCall[transfer_pb2.TransferRequest, empty_pb2.Empty],
    helpers: list[asyncio.Task[None]],
    heard: list[float],
    quiet: float,
    what: str,
) -> None:
    """Wait for the call; DeadlineExceeded once the daemon has been silent for ``quiet`` s.

    A helper that fails (the caller's progress callback raised, say) fails the pull.
    """
    waiting: asyncio.Future[empty_pb2.Empty] = asyncio.ensure_future(call)
    watched: set[asyncio.Future[Any]] = {waiting, *helpers}
    try:
        while True:
            left = heard[0] + quiet - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(
                    f"{what}: no progress from containerd for {quiet:g} s (a registry that"
                    " stopped answering?); cancelled"
                )
            done, _ = await asyncio.wait(watched, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                finished.result()  # the call's answer, or a helper's end: raises a failure
                if finished is waiting:
                    return
                watched.discard(finished)
    finally:
        waiting.cancel()


async def _follow(
    stream: _Stream,
    progress: ProgressCallback | None,
    heard: list[float],
    finished: set[tuple[str, str]],
) -> None:
    """Read the daemon's progress: each message keeps the pull alive; steps go to ``progress``."""
    while (message := await stream.read()) is not None:
        heard[0] = time.monotonic()
        event = _typeurl.unpack(message, progress_pb2.Progress)
        if progress is None or event is None or not event.HasField("desc"):
            continue
        phase = _PHASES.get(event.event)
        if phase is not None:
            total = event.total or event.desc.size or None
            progress(Progress(phase, event.desc.digest, event.progress, total))
            if total is not None and event.progress >= total:
                finished.add((phase, event.desc.digest))


async def _answer(stream: _Stream, credentials: CredentialsFor) -> None:
    """Answer each of the daemon's requests for credentials (anonymous when there are none)."""
    while (message := await stream.read()) is not None:
        if _typeurl.unpack(message, registry_pb2.AuthRequest) is None:
            continue
        await stream.call.write(_typeurl.pack(_auth_response(await credentials())))


def _auth_response(credentials: Credentials | None) -> registry_pb2.AuthResponse:
    if credentials is None:
        return registry_pb2.AuthResponse(authType=registry_pb2.NONE)
    if credentials.registry_token:
        return registry_pb2.AuthResponse(
            authType=registry_pb2.HEADER, secret=f"Bearer {credentials.registry_token}"
        )
    if credentials.identity_token:
        return registry_pb2.AuthResponse(
            authType=registry_pb2.REFRESH, secret=credentials.identity_token
        )
    return registry_pb2.AuthResponse(
        authType=registry_pb2.CREDENTIALS,
        username=credentials.username,
        secret=credentials.password,
    )
