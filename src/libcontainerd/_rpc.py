"""The wire: one gRPC channel per client, one method table, one place where errors become ours.

Every containerd RPC the library makes is listed once, as a typed attribute
of a :class:`Service` subclass below. Its path, its kind (unary or streaming)
and its (de)serialisers are read from the service descriptors of the modules
generated from our .proto files, and the attribute's declared message types
are checked against those descriptors when the table is first built, so a
wrong name or type fails at once, not on the first call. The client, the
event stream and the supervisor all use this table.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, TypeVar, get_args, get_origin, get_type_hints

import grpc
import grpc.aio
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from . import _paths
from ._api.containerd.api.services.containers.v1 import containers_pb2
from ._api.containerd.api.services.content.v1 import content_pb2
from ._api.containerd.api.services.diff.v1 import diff_pb2
from ._api.containerd.api.services.events.v1 import events_pb2
from ._api.containerd.api.services.images.v1 import images_pb2
from ._api.containerd.api.services.leases.v1 import leases_pb2
from ._api.containerd.api.services.snapshots.v1 import snapshots_pb2
from ._api.containerd.api.services.streaming.v1 import streaming_pb2
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.services.transfer.v1 import transfer_pb2
from ._api.containerd.api.services.version.v1 import version_pb2
from .errors import InvalidArgument, from_grpc

__all__ = [
    "LEASE_HEADER",
    "MAX_MESSAGE",
    "NAMESPACE_HEADER",
    "Bidi",
    "Connection",
    "Containers",
    "Content",
    "Diff",
    "Events",
    "Images",
    "Leases",
    "Methods",
    "Snapshots",
    "Stream",
    "Streaming",
    "Tasks",
    "TransferService",
    "Unary",
    "VersionService",
    "answers",
    "build_method_tables",
    "channel_options",
    "resolve_address",
]

# containerd's limit, so a large spec or a long pid list is never cut short.
MAX_MESSAGE: Final = 16 * 1024 * 1024
NAMESPACE_HEADER: Final = "containerd-namespace"
# Resources made by a call carrying it belong to that lease (kept from GC while it lives).
LEASE_HEADER: Final = "containerd-lease"

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


class Unary(Generic[Request, Response]):
    """A unary RPC declared in a :class:`Service`; the built table holds grpc's multicallable."""

    def __call__(
        self,
        request: Request,
        *,
        metadata: grpc.aio.Metadata | Sequence[tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> grpc.aio.UnaryUnaryCall[Request, Response]:
        raise NotImplementedError  # only the type: instances are grpc's


class Stream(Generic[Request, Response]):
    """A server-streaming RPC declared in a :class:`Service`."""

    def __call__(
        self,
        request: Request,
        *,
        metadata: grpc.aio.Metadata | Sequence[tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> grpc.aio.UnaryStreamCall[Request, Response]:
        raise NotImplementedError  # only the type: instances are grpc's


class Bidi(Generic[Request, Response]):
    """A bidirectional-streaming RPC declared in a :class:`Service` (e.g. Content.Write)."""

    def __call__(
        self,
        *,
        metadata: grpc.aio.Metadata | Sequence[tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> grpc.aio.StreamStreamCall[Request, Response]:
        raise NotImplementedError  # only the type: instances are grpc's


_KINDS: Final = {
    Unary: (False, False),
    Stream: (False, True),
    Bidi: (True, True),
}


def snake_case(name: str) -> str:
    """A method's Python name: ``CloseIO`` -> ``close_io``, ``ListPids`` -> ``list_pids``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class Service:
    """The methods of one containerd service, bound to a channel.

    A subclass names its service descriptor in ``descriptor`` and declares each
    method it uses as ``snake_name: Unary[Request, Response]`` (or ``Stream``,
    ``Bidi``); the attribute then holds the channel's multicallable for it.
    """

    descriptor: ClassVar[ServiceDescriptor]

    def __init__(self, channel: grpc.aio.Channel) -> None:
        makers = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, True): channel.stream_stream,
        }
        for entry in _entries(type(self)):
            make: Any = makers[(entry.client_streaming, entry.streaming)]
            setattr(
                self,
                entry.name,
                make(
                    entry.path,
                    request_serializer=entry.request.SerializeToString,
                    response_deserializer=entry.response.FromString,
                ),
            )


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    path: str
    streaming: bool  # the server streams its answers
    request: type[Message]
    response: type[Message]
    client_streaming: bool = False


_TABLES: dict[type[Service], list[_Entry]] = {}


def _entries(service: type[Service]) -> list[_Entry]:
    """The service's declared methods, checked against its descriptor (once per class)."""
    table = _TABLES.get(service)
    if table is not None:
        return table
    table = []
    by_name = {snake_case(method.name): method for method in service.descriptor.methods}
    for name, hint in get_type_hints(service).items():
        kind = get_origin(hint)
        if kind not in _KINDS:
            continue
        method = by_name.get(name)
        if method is None:
            raise TypeError(f"{service.descriptor.full_name} has no method for {name!r}")
        request, response = get_args(hint)
        expected = (method.input_type.full_name, method.output_type.full_name)
        given = (request.DESCRIPTOR.full_name, response.DESCRIPTOR.full_name)
        streaming = (method.client_streaming, method.server_streaming)
        if given != expected or streaming != _KINDS[kind]:
            raise TypeError(
                f"{service.__name__}.{name} is declared {kind.__name__}{given},"
                f" not {expected} streaming {streaming}"
            )
        path = f"/{service.descriptor.full_name}/{method.name}"
        table.append(_Entry(name, path, streaming[1], request, response, streaming[0]))
    _TABLES[service] = table
    return table


# The services and methods this library uses. grpc.aio's multicallables are
# typed by what the attributes hold at run time; the declarations give mypy
# the message types.


class VersionService(Service):
    descriptor = version_pb2.DESCRIPTOR.services_by_name["Version"]
    version: Unary[empty_pb2.Empty, version_pb2.VersionResponse]


class Containers(Service):
    descriptor = containers_pb2.DESCRIPTOR.services_by_name["Containers"]
    get: Unary[containers_pb2.GetContainerRequest, containers_pb2.GetContainerResponse]
    list: Unary[containers_pb2.ListContainersRequest, containers_pb2.ListContainersResponse]
    create: Unary[containers_pb2.CreateContainerRequest, containers_pb2.CreateContainerResponse]
    update: Unary[containers_pb2.UpdateContainerRequest, containers_pb2.UpdateContainerResponse]
    delete: Unary[containers_pb2.DeleteContainerRequest, empty_pb2.Empty]


class Tasks(Service):
    descriptor = tasks_pb2.DESCRIPTOR.services_by_name["Tasks"]
    create: Unary[tasks_pb2.CreateTaskRequest, tasks_pb2.CreateTaskResponse]
    start: Unary[tasks_pb2.StartRequest, tasks_pb2.StartResponse]
    delete: Unary[tasks_pb2.DeleteTaskRequest, tasks_pb2.DeleteResponse]
    delete_process: Unary[tasks_pb2.DeleteProcessRequest, tasks_pb2.DeleteResponse]
    get: Unary[tasks_pb2.GetRequest, tasks_pb2.GetResponse]
    list: Unary[tasks_pb2.ListTasksRequest, tasks_pb2.ListTasksResponse]
    kill: Unary[tasks_pb2.KillRequest, empty_pb2.Empty]
    exec: Unary[tasks_pb2.ExecProcessRequest, empty_pb2.Empty]
    resize_pty: Unary[tasks_pb2.ResizePtyRequest, empty_pb2.Empty]
    close_io: Unary[tasks_pb2.CloseIORequest, empty_pb2.Empty]
    pause: Unary[tasks_pb2.PauseTaskRequest, empty_pb2.Empty]
    resume: Unary[tasks_pb2.ResumeTaskRequest, empty_pb2.Empty]
    list_pids: Unary[tasks_pb2.ListPidsRequest, tasks_pb2.ListPidsResponse]
    checkpoint: Unary[tasks_pb2.CheckpointTaskRequest, tasks_pb2.CheckpointTaskResponse]
    update: Unary[tasks_pb2.UpdateTaskRequest, empty_pb2.Empty]
    metrics: Unary[tasks_pb2.MetricsRequest, tasks_pb2.MetricsResponse]
    wait: Unary[tasks_pb2.WaitRequest, tasks_pb2.WaitResponse]


class Events(Service):
    descriptor = events_pb2.DESCRIPTOR.services_by_name["Events"]
    publish: Unary[events_pb2.PublishRequest, empty_pb2.Empty]
    subscribe: Stream[events_pb2.SubscribeRequest, events_pb2.Envelope]


class Content(Service):
    descriptor = content_pb2.DESCRIPTOR.services_by_name["Content"]
    info: Unary[content_pb2.InfoRequest, content_pb2.InfoResponse]
    update: Unary[content_pb2.UpdateRequest, content_pb2.UpdateResponse]
    list: Stream[content_pb2.ListContentRequest, content_pb2.ListContentResponse]
    delete: Unary[content_pb2.DeleteContentRequest, empty_pb2.Empty]
    read: Stream[content_pb2.ReadContentRequest, content_pb2.ReadContentResponse]
    status: Unary[content_pb2.StatusRequest, content_pb2.StatusResponse]
    list_statuses: Unary[content_pb2.ListStatusesRequest, content_pb2.ListStatusesResponse]
    write: Bidi[content_pb2.WriteContentRequest, content_pb2.WriteContentResponse]
    abort: Unary[content_pb2.AbortRequest, empty_pb2.Empty]


class Images(Service):
    descriptor = images_pb2.DESCRIPTOR.services_by_name["Images"]
    get: Unary[images_pb2.GetImageRequest, images_pb2.GetImageResponse]
    list: Unary[images_pb2.ListImagesRequest, images_pb2.ListImagesResponse]
    create: Unary[images_pb2.CreateImageRequest, images_pb2.CreateImageResponse]
    update: Unary[images_pb2.UpdateImageRequest, images_pb2.UpdateImageResponse]
    delete: Unary[images_pb2.DeleteImageRequest, empty_pb2.Empty]


class Leases(Service):
    descriptor = leases_pb2.DESCRIPTOR.services_by_name["Leases"]
    create: Unary[leases_pb2.CreateRequest, leases_pb2.CreateResponse]
    delete: Unary[leases_pb2.DeleteRequest, empty_pb2.Empty]
    list: Unary[leases_pb2.ListRequest, leases_pb2.ListResponse]


class Snapshots(Service):
    descriptor = snapshots_pb2.DESCRIPTOR.services_by_name["Snapshots"]
    prepare: Unary[snapshots_pb2.PrepareSnapshotRequest, snapshots_pb2.PrepareSnapshotResponse]
    view: Unary[snapshots_pb2.ViewSnapshotRequest, snapshots_pb2.ViewSnapshotResponse]
    mounts: Unary[snapshots_pb2.MountsRequest, snapshots_pb2.MountsResponse]
    commit: Unary[snapshots_pb2.CommitSnapshotRequest, empty_pb2.Empty]
    remove: Unary[snapshots_pb2.RemoveSnapshotRequest, empty_pb2.Empty]
    stat: Unary[snapshots_pb2.StatSnapshotRequest, snapshots_pb2.StatSnapshotResponse]
    list: Stream[snapshots_pb2.ListSnapshotsRequest, snapshots_pb2.ListSnapshotsResponse]
    usage: Unary[snapshots_pb2.UsageRequest, snapshots_pb2.UsageResponse]


class Diff(Service):
    descriptor = diff_pb2.DESCRIPTOR.services_by_name["Diff"]
    apply: Unary[diff_pb2.ApplyRequest, diff_pb2.ApplyResponse]


class Streaming(Service):  # containerd 1.7 and later
    descriptor = streaming_pb2.DESCRIPTOR.services_by_name["Streaming"]
    stream: Bidi[any_pb2.Any, any_pb2.Any]


class TransferService(Service):  # containerd 1.7 and later
    descriptor = transfer_pb2.DESCRIPTOR.services_by_name["Transfer"]
    transfer: Unary[transfer_pb2.TransferRequest, empty_pb2.Empty]


def build_method_tables() -> None:
    """Check and build every service's method table now, not at the first channel.

    For a process that forks short-lived clients (lcd's command helper): its
    children then skip the type-hint walk (~5 ms per process).
    """
    for service in Service.__subclasses__():
        _entries(service)


class Methods:
    """Every service this library calls, bound to one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.version = VersionService(channel)
        self.containers = Containers(channel)
        self.tasks = Tasks(channel)
        self.events = Events(channel)
        self.content = Content(channel)
        self.images = Images(channel)
        self.leases = Leases(channel)
        self.snapshots = Snapshots(channel)
        self.diff = Diff(channel)
        self.streaming = Streaming(channel)
        self.transfer = TransferService(channel)


def resolve_address(address: str | os.PathLike[str] | None) -> str:
    """The socket path to use: the argument, then ``$CONTAINERD_ADDRESS``, then the embedded one."""
    chosen = os.fspath(address) if address is not None else ""
    chosen = chosen or os.environ.get("CONTAINERD_ADDRESS", "") or _paths.DEFAULT_ADDRESS
    for prefix in ("unix://", "unix:"):
        if chosen.startswith(prefix):
            chosen = chosen[len(prefix) :]
            break
    if not os.path.isabs(chosen):
        raise InvalidArgument(f"containerd address must be an absolute socket path, got {chosen!r}")
    return chosen


def channel_options() -> list[tuple[str, int]]:
    """The options of a long-lived client channel."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        # gRPC's own reconnect back-off grows to 120 s; containerd restarts in well
        # under a second, and the event stream must notice it coming back.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        # A private subchannel, so one client's failed attempt does not make
        # every other client on the same socket wait out its back-off.
        ("grpc.use_local_subchannel_pool", 1),
    ]


class Connection:
    """One channel to containerd's socket, speaking for one namespace.

    :meth:`call` is the one place where a ``grpc.aio.AioRpcError`` becomes an
    error of :mod:`libcontainerd.errors`, with what was being done as context.
    """

    def __init__(self, address: str, namespace: str, timeout: float | None) -> None:
        self.address = address
        self.namespace = namespace
        self.timeout = timeout
        # Built once: grpc.aio converts a tuple into Metadata on every call (~3.6 us).
        self.metadata = grpc.aio.Metadata((NAMESPACE_HEADER, namespace))
        self.channel: grpc.aio.Channel | None = None
        self.methods: Methods | None = None

    def open(self) -> Methods:
        if self.methods is None:
            self.channel = grpc.aio.insecure_channel(
                f"unix://{self.address}", options=channel_options()
            )
            self.methods = Methods(self.channel)
        return self.methods

    async def close(self) -> None:
        channel, self.channel, self.methods = self.channel, None, None
        if channel is not None:
            await channel.close()

    def lease_metadata(self, lease: str) -> grpc.aio.Metadata:
        """This namespace's header plus a lease's: what a call made under the lease sends."""
        return grpc.aio.Metadata((NAMESPACE_HEADER, self.namespace), (LEASE_HEADER, lease))

    async def call(
        self,
        method: Unary[Request, Response],
        request: Request,
        context: str,
        *,
        metadata: grpc.aio.Metadata | None = None,
    ) -> Response:
        """Make a unary call in this namespace; raises the library's error for a failed one.

        ``metadata`` replaces the namespace header (e.g. :meth:`lease_metadata`).
        """
        try:
            if metadata is None:
                metadata = self.metadata
            return await method(request, metadata=metadata, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error, context) from error

    async def stream(
        self,
        method: Stream[Request, Response],
        request: Request,
        context: str,
        *,
        metadata: grpc.aio.Metadata | None = None,
    ) -> AsyncIterator[Response]:
        """The answers of a server-streaming call, each as it comes; errors as :meth:`call`.

        No deadline: a stream (a blob being read) lasts as long as it needs.
        """
        call = method(request, metadata=self.metadata if metadata is None else metadata)
        try:
            async for answer in call:
                yield answer
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error, context) from error
        finally:
            call.cancel()  # a no-op once it has ended; stops it when the reader gave up


async def answers(address: str, timeout: float) -> bool:  # noqa: ASYNC109 - gRPC's deadline
    """True if containerd's Version service replies on ``address`` within ``timeout``.

    A fresh channel per probe avoids gRPC's own reconnect back-off while a
    daemon starts.
    """
    async with grpc.aio.insecure_channel(f"unix://{address}") as channel:
        try:
            await VersionService(channel).version(empty_pb2.Empty(), timeout=timeout)
        except grpc.RpcError:
            return False
    return True
