"""AsyncClient: the contract over containerd's gRPC API.

Each method reads as the containerd calls it makes, and makes as few as the
contract allows: the client keeps no copy of containerd's state beyond what
saves a round trip on the hot path (a container's terminal flag), so a second
client, or a restarted one, sees the same truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from . import _typeurl, errors, oci
from ._api.containerd.api.services.containers.v1 import containers_pb2
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.services.version.v1 import version_pb2
from ._api.containerd.api.types.task import task_pb2
from ._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from ._identifiers import check_identifier
from ._signals import parse_signal
from .errors import (
    Cancelled,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
    Unavailable,
    from_grpc,
)
from .events import EventDispatcher, EventStream
from .types import (
    INIT_PROCESS_ID,
    Backend,
    ContainerInfo,
    EventInfo,
    EventType,
    ProcessSummary,
    Status,
    Version,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_NAMESPACE",
    "RUNC_RUNTIME",
    "AsyncClient",
    "Event",
    "EventSubscription",
]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS: Final = "/run/libcontainerd/containerd.sock"
"""The socket of the embedded containerd (``lcd daemon start`` or a default Supervisor)."""

DEFAULT_NAMESPACE: Final = "libcontainerd"
RUNC_RUNTIME: Final = "io.containerd.runc.v2"

# containerd's limit, so a large spec or a long pid list is never cut short.
_MAX_MESSAGE = 16 * 1024 * 1024
_NAMESPACE_HEADER = "containerd-namespace"

_STATUS_BY_WIRE: Final = {
    task_pb2.UNKNOWN: Status.UNKNOWN,
    task_pb2.CREATED: Status.CREATED,
    task_pb2.RUNNING: Status.RUNNING,
    task_pb2.STOPPED: Status.STOPPED,
    task_pb2.PAUSED: Status.PAUSED,
    task_pb2.PAUSING: Status.PAUSING,
}

_RUNC_OPTION_FIELDS: Final = frozenset(field.name for field in runc_pb2.Options.DESCRIPTOR.fields)

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


@dataclass(frozen=True, slots=True)
class _Method(Generic[Request, Response]):
    """One RPC, resolved once per channel so a call costs no lookups."""

    call: grpc.aio.UnaryUnaryMultiCallable[Request, Response]


def _method(
    channel: grpc.aio.Channel,
    path: str,
    request: type[Request],
    response: type[Response],
) -> _Method[Request, Response]:
    return _Method(
        channel.unary_unary(
            path,
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )
    )


class _Methods:
    """The containerd RPCs this client makes."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        tasks = "/containerd.services.tasks.v1.Tasks/"
        containers = "/containerd.services.containers.v1.Containers/"
        self.version = _method(
            channel,
            "/containerd.services.version.v1.Version/Version",
            empty_pb2.Empty,
            version_pb2.VersionResponse,
        )
        self.container_create = _method(
            channel,
            containers + "Create",
            containers_pb2.CreateContainerRequest,
            containers_pb2.CreateContainerResponse,
        )
        self.container_get = _method(
            channel,
            containers + "Get",
            containers_pb2.GetContainerRequest,
            containers_pb2.GetContainerResponse,
        )
        self.container_delete = _method(
            channel, containers + "Delete", containers_pb2.DeleteContainerRequest, empty_pb2.Empty
        )
        self.task_create = _method(
            channel, tasks + "Create", tasks_pb2.CreateTaskRequest, tasks_pb2.CreateTaskResponse
        )
        self.task_start = _method(
            channel, tasks + "Start", tasks_pb2.StartRequest, tasks_pb2.StartResponse
        )
        self.task_delete = _method(
            channel, tasks + "Delete", tasks_pb2.DeleteTaskRequest, tasks_pb2.DeleteResponse
        )
        self.task_get = _method(channel, tasks + "Get", tasks_pb2.GetRequest, tasks_pb2.GetResponse)
        self.task_kill = _method(channel, tasks + "Kill", tasks_pb2.KillRequest, empty_pb2.Empty)
        self.task_pause = _method(
            channel, tasks + "Pause", tasks_pb2.PauseTaskRequest, empty_pb2.Empty
        )
        self.task_resume = _method(
            channel, tasks + "Resume", tasks_pb2.ResumeTaskRequest, empty_pb2.Empty
        )
        self.task_list_pids = _method(
            channel, tasks + "ListPids", tasks_pb2.ListPidsRequest, tasks_pb2.ListPidsResponse
        )
        self.task_update = _method(
            channel, tasks + "Update", tasks_pb2.UpdateTaskRequest, empty_pb2.Empty
        )
        self.task_delete_process = _method(
            channel,
            tasks + "DeleteProcess",
            tasks_pb2.DeleteProcessRequest,
            tasks_pb2.DeleteResponse,
        )
        self.task_wait = _method(
            channel, tasks + "Wait", tasks_pb2.WaitRequest, tasks_pb2.WaitResponse
        )
        self.container_list = _method(
            channel,
            containers + "List",
            containers_pb2.ListContainersRequest,
            containers_pb2.ListContainersResponse,
        )
        self.task_list = _method(
            channel, tasks + "List", tasks_pb2.ListTasksRequest, tasks_pb2.ListTasksResponse
        )


def resolve_address(address: str | os.PathLike[str] | None) -> str:
    """The socket path to use: the argument, then ``$CONTAINERD_ADDRESS``, then the embedded one."""
    chosen = os.fspath(address) if address is not None else ""
    chosen = chosen or os.environ.get("CONTAINERD_ADDRESS", "") or DEFAULT_ADDRESS
    for prefix in ("unix://", "unix:"):
        if chosen.startswith(prefix):
            chosen = chosen[len(prefix) :]
            break
    if not os.path.isabs(chosen):
        raise InvalidArgument(f"containerd address must be an absolute socket path, got {chosen!r}")
    return chosen


def _runc_options(runtime_options: Mapping[str, Any] | None, runc_root: str) -> runc_pb2.Options:
    """runc v2 shim options; ``root`` defaults to this daemon's own runc state directory."""
    values = dict(runtime_options or {})
    unknown = sorted(set(values) - _RUNC_OPTION_FIELDS)
    if unknown:
        raise InvalidArgument(
            f"unknown runtime option(s) {', '.join(unknown)}; known: "
            + ", ".join(sorted(_RUNC_OPTION_FIELDS))
        )
    values.setdefault("root", runc_root)
    try:
        return runc_pb2.Options(**values)
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"invalid runtime options: {error}") from None


Event = tuple[str, EventType, EventInfo]


class EventSubscription:
    """An async iterator over this client's task events, from the moment it was made.

    Yields ``(container_id, EventType, EventInfo)`` in stream order; ends when
    the client closes or :meth:`close` is called. Use it as ``async with``/
    ``async for``, or both.
    """

    def __init__(self, listeners: set[asyncio.Queue[Event | None]]) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._listeners = listeners
        listeners.add(self._queue)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if item is None:
            self.close()
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """Stop receiving events; what is already queued is still yielded."""
        self._listeners.discard(self._queue)

    def end(self) -> None:
        """Stop receiving events and end the iteration, waking a pending ``__anext__``."""
        self.close()
        self._queue.put_nowait(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient:
    """A connection to one containerd namespace, running the libcontainerd contract.

    ``address`` is containerd's socket; without one, ``$CONTAINERD_ADDRESS`` and
    then the embedded daemon's socket (:data:`DEFAULT_ADDRESS`) are tried, and
    :class:`Unavailable` says how to start one when none answers. Use it as an
    async context manager (or ``await open()`` / ``await close()``).

    Opening subscribes to the namespace's task events; ``backend.process_event``
    then receives each one (see :mod:`libcontainerd.events` for the ordering and
    exactly-once guarantees), and :meth:`events` yields them too. After an
    ``oom`` event, every later event of that container carries
    ``oom_killed=True`` until its task is deleted.
    """

    def __init__(
        self,
        address: str | os.PathLike[str] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        backend: Backend | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self.namespace = check_identifier(namespace, "namespace")
        self.address = resolve_address(address)
        self.backend = backend
        self.timeout = timeout
        self.runc_root = os.path.join(os.path.dirname(self.address), "runc")
        self._explicit_address = address is not None or "CONTAINERD_ADDRESS" in os.environ
        self._metadata = ((_NAMESPACE_HEADER, self.namespace),)
        self._channel: grpc.aio.Channel | None = None
        self._rpc: _Methods | None = None
        # Saves a Containers.Get on start(): the only spec fact a task needs.
        self._terminal: dict[str, bool] = {}
        self._stream: EventStream | None = None
        self._dispatcher: EventDispatcher | None = None
        self._listeners: set[asyncio.Queue[Event | None]] = set()
        # Exec exits seen on the stream, so wait() still answers once the exec
        # process has been released; dropped when the container's task is deleted.
        self._exec_exits: dict[tuple[str, str], tuple[int, datetime | None]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- connection -----------------------------------------------------------------

    async def open(self) -> Self:
        """Connect and check that containerd answers; raises Unavailable if it does not."""
        if self._channel is not None:
            return self
        self._channel = grpc.aio.insecure_channel(
            f"unix://{self.address}",
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
            ],
        )
        self._rpc = _Methods(self._channel)
        try:
            await self.version()
        except Unavailable as error:
            await self.close()
            raise Unavailable(self._unreachable_message(error.details)) from None
        if self.backend is not None:
            self._dispatcher = EventDispatcher(self.backend.process_event, self._after_delivery)
        self._stream = EventStream(self._channel, self.namespace, self._on_event)
        try:
            await self._stream.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Stop the event stream, let queued events reach the backend, and close; idempotent."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            await dispatcher.close()
        if self._background:
            await asyncio.wait(list(self._background), timeout=10)
        for listener in list(self._listeners):
            listener.put_nowait(None)
        channel, self._channel, self._rpc = self._channel, None, None
        if channel is not None:
            await channel.close()

    # -- events -----------------------------------------------------------------------

    def events(self) -> EventSubscription:
        """An async iterator of ``(container_id, EventType, EventInfo)`` from now on."""
        return EventSubscription(self._listeners)

    def _on_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        """Called by the stream, in order, for every event to report."""
        if event is EventType.EXIT and info.process_id != container_id:
            self._exec_exits[(container_id, info.process_id)] = (info.exit_code, info.exited_at)
        for listener in self._listeners:
            listener.put_nowait((container_id, event, info))
        if self._dispatcher is not None:
            self._dispatcher.dispatch(container_id, event, info)
        else:
            self._after_delivery(container_id, event, info)

    def _after_delivery(self, container_id: str, event: EventType, info: EventInfo) -> None:
        """An exec that has exited and been reported is released (Docker's order)."""
        if event is EventType.EXIT and info.process_id != container_id:
            self._spawn(self._release_exec(container_id, info.process_id))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run background work that close() waits for (briefly)."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release_exec(self, container_id: str, exec_id: str) -> None:
        """Delete an exited exec process; best effort, bounded, never raises."""
        request = tasks_pb2.DeleteProcessRequest(container_id=container_id, exec_id=exec_id)
        try:
            rpc = self._methods
            await rpc.task_delete_process.call(request, metadata=self._metadata, timeout=45)
        except (grpc.aio.AioRpcError, LibcontainerdError) as error:
            log.info("releasing exec %s of container %s failed: %s", exec_id, container_id, error)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _unreachable_message(self, details: str) -> str:
        if self._explicit_address:
            return f"containerd at {self.address} does not answer ({details})"
        return (
            f"no containerd answers at {self.address} (the embedded daemon's socket;"
            " $CONTAINERD_ADDRESS is not set): start one with 'lcd daemon start',"
            " run a libcontainerd.Supervisor in your program, or pass address="
        )

    @property
    def _methods(self) -> _Methods:
        if self._rpc is None:
            raise FailedPrecondition(
                "the client is not open: use 'async with AsyncClient(...)' or 'await client.open()'"
            )
        return self._rpc

    async def _call(
        self, method: _Method[Request, Response], request: Request, context: str
    ) -> Response:
        try:
            return await method.call(request, metadata=self._metadata, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error, context) from error

    # -- the contract ---------------------------------------------------------------

    async def version(self) -> Version:
        """containerd's version; raises Unavailable when it cannot be reached."""
        reply = await self._call(self._methods.version, empty_pb2.Empty(), "version")
        return Version(version=reply.version, revision=reply.revision)

    async def create(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        runtime_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Create a container from an OCI runtime spec (a JSON-shaped dict, see :mod:`oci`).

        ``runtime_options`` are runc v2 shim options by field name (``binary_name``,
        ``systemd_cgroup``, ``criu_path``, ...). The spec's cgroups path defaults to
        ``/<namespace>/<container_id>``. Raises InvalidArgument (bad id, spec or
        option, before anything is sent), AlreadyExists, Unavailable.
        """
        check_identifier(container_id)
        oci.validate_spec(spec)
        options = _runc_options(runtime_options, self.runc_root)
        document = copy.deepcopy(dict(spec))
        linux = document.setdefault("linux", {})
        if not linux.get("cgroupsPath"):
            linux["cgroupsPath"] = f"/{self.namespace}/{container_id}"
        container = containers_pb2.Container(
            id=container_id,
            spec=_typeurl.pack_json(_typeurl.OCI_SPEC, document),
            runtime=containers_pb2.Container.Runtime(
                name=RUNC_RUNTIME, options=_typeurl.pack(options)
            ),
        )
        await self._call(
            self._methods.container_create,
            containers_pb2.CreateContainerRequest(container=container),
            f"create container {container_id!r}",
        )
        self._terminal[container_id] = bool(document.get("process", {}).get("terminal", False))

    async def start(
        self,
        container_id: str,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        with_stdin: bool = False,
        attach_stdio: object | None = None,
    ) -> int:
        """Create and start the container's task; returns the init process's pid.

        If the task is created but cannot start, it is killed and deleted, so no
        shim is left behind and the container can be started again. Raises
        NotFound, AlreadyExists (a task exists), InvalidArgument (the runtime
        refused the spec, e.g. a missing executable), Unavailable.
        """
        check_identifier(container_id)
        if checkpoint_dir is not None:
            raise errors.NotImplemented("start from a checkpoint is not supported yet")
        if with_stdin or attach_stdio is not None:
            raise errors.NotImplemented("attached stdio is not supported yet; output is discarded")
        terminal = await self._terminal_of(container_id)
        if terminal:
            raise InvalidArgument(
                f"container {container_id!r} asks for a terminal (process.terminal=true),"
                " which needs attached stdio"
            )
        rpc = self._methods
        await self._call(
            rpc.task_create,
            tasks_pb2.CreateTaskRequest(container_id=container_id, terminal=terminal),
            f"create the task of container {container_id!r}",
        )
        try:
            started = await self._call(
                rpc.task_start,
                tasks_pb2.StartRequest(container_id=container_id),
                f"start container {container_id!r}",
            )
        except BaseException:
            await self._discard_task(container_id)
            raise
        if self._stream is not None:
            self._stream.track(container_id, container_id, started.pid)
        return started.pid

    async def _terminal_of(self, container_id: str) -> bool:
        known = self._terminal.get(container_id)
        if known is not None:
            return known
        reply = await self._call(
            self._methods.container_get,
            containers_pb2.GetContainerRequest(id=container_id),
            f"look up container {container_id!r}",
        )
        try:
            spec = _typeurl.unpack_json(reply.container.spec)
        except ValueError:
            spec = {}
        terminal = bool(spec.get("process", {}).get("terminal", False))
        self._terminal[container_id] = terminal
        return terminal

    async def _discard_task(self, container_id: str) -> None:
        """Kill and delete a task that failed to start; best effort, never raises."""
        rpc = self._methods
        kill = tasks_pb2.KillRequest(container_id=container_id, signal=9, all=True)
        with contextlib.suppress(LibcontainerdError):
            await self._call(rpc.task_kill, kill, "kill the task that failed to start")
        with contextlib.suppress(LibcontainerdError):
            await self._call(
                rpc.task_delete,
                tasks_pb2.DeleteTaskRequest(container_id=container_id),
                "delete the task that failed to start",
            )

    async def signal_process(self, container_id: str, process_id: str, signal: int | str) -> None:
        """Send ``signal`` (a number, or a name like ``"SIGTERM"``) to a process.

        ``process_id`` is :data:`INIT_PROCESS_ID` for the container's main process.
        Raises InvalidArgument (bad id or signal), NotFound (no such container,
        task or process, or it has already exited), Unavailable.
        """
        check_identifier(container_id)
        exec_id = self._exec_id(process_id)
        number = parse_signal(signal)
        await self._call(
            self._methods.task_kill,
            tasks_pb2.KillRequest(container_id=container_id, exec_id=exec_id, signal=number),
            f"signal process {process_id!r} of container {container_id!r}",
        )

    @staticmethod
    def _exec_id(process_id: str) -> str:
        if process_id == INIT_PROCESS_ID:
            return ""
        return check_identifier(process_id, "process id")

    async def status(self, container_id: str) -> Status:
        """The state of the container's task. Raises NotFound when there is no task."""
        check_identifier(container_id)
        reply = await self._task_get(container_id, "get the status of")
        return _STATUS_BY_WIRE.get(reply.process.status, Status.UNKNOWN)

    async def _task_get(self, container_id: str, doing: str) -> tasks_pb2.GetResponse:
        try:
            return await self._call(
                self._methods.task_get,
                tasks_pb2.GetRequest(container_id=container_id),
                f"{doing} container {container_id!r}",
            )
        except NotFound:
            raise await self._no_task(container_id, doing) from None

    async def _no_task(self, container_id: str, doing: str) -> NotFound:
        """Say whether the container or only its task is missing (costs a call on failure only)."""
        try:
            await self._call(
                self._methods.container_get,
                containers_pb2.GetContainerRequest(id=container_id),
                f"look up container {container_id!r}",
            )
        except NotFound:
            return NotFound(f"cannot {doing} container {container_id!r}: no such container")
        return NotFound(
            f"cannot {doing} container {container_id!r}: it has no task"
            " (not started yet, or its task was deleted)"
        )

    async def _task_call(
        self, method: _Method[Request, Response], request: Request, container_id: str, doing: str
    ) -> Response:
        try:
            return await self._call(method, request, f"{doing} container {container_id!r}")
        except NotFound:
            raise await self._no_task(container_id, doing) from None

    async def list_pids(self, container_id: str) -> list[int]:
        """The host pids of every process in the container. Raises NotFound."""
        check_identifier(container_id)
        reply = await self._task_call(
            self._methods.task_list_pids,
            tasks_pb2.ListPidsRequest(container_id=container_id),
            container_id,
            "list the processes of",
        )
        return [process.pid for process in reply.processes]

    async def summary(self, container_id: str) -> list[ProcessSummary]:
        """One entry per process: its pid and what containerd reports (e.g. ``exec_id``)."""
        check_identifier(container_id)
        reply = await self._task_call(
            self._methods.task_list_pids,
            tasks_pb2.ListPidsRequest(container_id=container_id),
            container_id,
            "summarise the processes of",
        )
        summaries = []
        for process in reply.processes:
            info: dict[str, Any] = {}
            if process.HasField("info"):
                details = _typeurl.unpack(process.info, runc_pb2.ProcessDetails)
                if details is not None and details.exec_id:
                    info["exec_id"] = details.exec_id
            summaries.append(ProcessSummary(pid=process.pid, info=info))
        return summaries

    async def pause(self, container_id: str) -> None:
        """Freeze every process of the container. Raises NotFound, FailedPrecondition."""
        check_identifier(container_id)
        await self._task_call(
            self._methods.task_pause,
            tasks_pb2.PauseTaskRequest(container_id=container_id),
            container_id,
            "pause",
        )

    async def resume(self, container_id: str) -> None:
        """Thaw a paused container. Raises NotFound, FailedPrecondition."""
        check_identifier(container_id)
        await self._task_call(
            self._methods.task_resume,
            tasks_pb2.ResumeTaskRequest(container_id=container_id),
            container_id,
            "resume",
        )

    async def wait(
        self, container_id: str, process_id: str = INIT_PROCESS_ID
    ) -> tuple[int, datetime | None]:
        """Block until the process exits; returns its exit code and time.

        Returns at once for a process that has already exited. Raises NotFound.
        """
        check_identifier(container_id)
        exec_id = self._exec_id(process_id)
        try:
            reply = await self._task_call(
                self._methods.task_wait,
                tasks_pb2.WaitRequest(container_id=container_id, exec_id=exec_id),
                container_id,
                "wait for",
            )
        except NotFound:
            # An exec is released once its exit is reported; its result is kept.
            known = self._exec_exits.get((container_id, exec_id))
            if known is None:
                raise
            return known
        return reply.exit_status, _typeurl.to_datetime(reply.exited_at)

    async def delete_task(self, container_id: str) -> tuple[int, datetime | None]:
        """Delete the container's stopped task; returns its exit code and exit time.

        Unlike Docker's, this never reports a made-up 255: a task that is still
        running or paused raises FailedPrecondition (kill it first), and a
        missing one raises NotFound.
        """
        check_identifier(container_id)
        try:
            reply = await self._task_call(
                self._methods.task_delete,
                tasks_pb2.DeleteTaskRequest(container_id=container_id),
                container_id,
                "delete the task of",
            )
        except (NotFound, Cancelled, Unavailable):
            raise
        except LibcontainerdError as error:
            state = await self.status(container_id)
            if state in (Status.RUNNING, Status.PAUSED, Status.PAUSING):
                raise FailedPrecondition(
                    f"cannot delete the task of container {container_id!r}: it is {state}"
                    " (signal it and wait for its exit first)"
                ) from None
            raise error
        self._forget_task(container_id)
        return reply.exit_status, _typeurl.to_datetime(reply.exited_at)

    def _forget_task(self, container_id: str) -> None:
        """Drop what the client keeps about a deleted task."""
        for key in [key for key in self._exec_exits if key[0] == container_id]:
            del self._exec_exits[key]

    async def delete(self, container_id: str) -> None:
        """Delete the container and everything this client created for it.

        Raises FailedPrecondition while the container still has a task (delete
        the task first), NotFound, Unavailable.
        """
        check_identifier(container_id)
        rpc = self._methods
        try:
            reply = await self._call(
                rpc.task_get,
                tasks_pb2.GetRequest(container_id=container_id),
                f"look up the task of container {container_id!r}",
            )
        except NotFound:
            pass
        else:
            state = _STATUS_BY_WIRE.get(reply.process.status, Status.UNKNOWN)
            raise FailedPrecondition(
                f"cannot delete container {container_id!r}: it still has a task ({state});"
                " call delete_task() first"
            )
        try:
            await self._call(
                rpc.container_delete,
                containers_pb2.DeleteContainerRequest(id=container_id),
                f"delete container {container_id!r}",
            )
        except NotFound:
            raise NotFound(f"cannot delete container {container_id!r}: no such container") from None
        finally:
            self._terminal.pop(container_id, None)

    async def update_resources(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Change the task's OCI ``linux.resources`` (memory, cpu, pids, blkio, ...).

        Raises InvalidArgument (checked before sending), NotFound.
        """
        check_identifier(container_id)
        oci.validate_resources(resources)
        await self._task_call(
            self._methods.task_update,
            tasks_pb2.UpdateTaskRequest(
                container_id=container_id,
                resources=_typeurl.pack_json(_typeurl.OCI_LINUX_RESOURCES, dict(resources)),
            ),
            container_id,
            "update the resources of",
        )

    async def list_containers(self) -> list[ContainerInfo]:
        """Every container of the namespace with its task's state, in containerd's order (by id).

        Two requests, sent together: Containers.List and Tasks.List. A task
        whose container disappears between them is left out. Raises Unavailable.
        """
        rpc = self._methods
        containers, tasks = await asyncio.gather(
            self._call(
                rpc.container_list, containers_pb2.ListContainersRequest(), "list containers"
            ),
            self._call(rpc.task_list, tasks_pb2.ListTasksRequest(), "list tasks"),
        )
        # containerd 1.x names a listed task by ``id`` (= its container's id) and
        # leaves ``container_id`` empty; later versions may fill in either.
        by_container = {task.container_id or task.id: task for task in tasks.tasks}
        listing = []
        for container in containers.containers:
            task = by_container.get(container.id)
            created_at = _typeurl.to_datetime(container.created_at)
            if task is None:
                listing.append(
                    ContainerInfo(
                        id=container.id, created_at=created_at, labels=dict(container.labels)
                    )
                )
                continue
            status = _STATUS_BY_WIRE.get(task.status, Status.UNKNOWN)
            stopped = status is Status.STOPPED
            listing.append(
                ContainerInfo(
                    id=container.id,
                    status=status,
                    pid=task.pid,
                    exit_code=task.exit_status if stopped else None,
                    exited_at=_typeurl.to_datetime(task.exited_at) if stopped else None,
                    created_at=created_at,
                    labels=dict(container.labels),
                )
            )
        return listing
