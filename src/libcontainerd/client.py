"""AsyncClient: the contract over containerd's gRPC API.

Each method reads as the containerd calls it makes, and makes as few as the
contract allows: the client keeps no copy of containerd's state beyond what
saves a round trip on the hot path (a container's terminal flag), so a second
client, or a restarted one, sees the same truth. What it owns locally is the
stdio of the processes it started or restored (see :mod:`libcontainerd.stdio`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import os
from collections.abc import AsyncGenerator, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Generic, NamedTuple, Self, TypeAlias, TypeVar

import grpc
import grpc.aio
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from . import _typeurl, checkpoint, errors, metrics, oci
from ._api.containerd.api.services.containers.v1 import containers_pb2
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.services.version.v1 import version_pb2
from ._api.containerd.api.types.task import task_pb2
from ._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from ._identifiers import check_identifier
from ._signals import parse_signal
from .errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
    Unavailable,
    from_grpc,
)
from .events import NO_PID, EventDispatcher, EventStream
from .stdio import (
    STDERR,
    STDIN,
    STDOUT,
    FifoSet,
    LogFile,
    StdioCallback,
    container_fifo_dir,
    make_private_dirs,
    remove_fifo_dir,
    remove_process_fifos,
)
from .types import (
    INIT_PROCESS_ID,
    Backend,
    ContainerInfo,
    EventInfo,
    EventType,
    ProcessSummary,
    Stats,
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

# Clean-up calls made on the side (deleting a failed or exited exec, pending
# CloseIO at close) get their own limit: the caller's may be gone, and an old
# shim could hang (moby#38383).
_CLEANUP_TIMEOUT = 15.0
_MAX_TERMINAL_SIZE = 65535

AttachStdio: TypeAlias = StdioCallback | LogFile
"""Where a process's stdio goes: a callback that receives its FIFOs, or a log file."""


class _Stdio(NamedTuple):
    """The stdio fields of a create or exec request (``""`` = none)."""

    stdin: str = ""
    stdout: str = ""
    stderr: str = ""


_NULL_STDIO: Final = _Stdio()
# A call whose answer was lost: it may or may not have taken effect in containerd.
_CUT: Final = (Unavailable, DeadlineExceeded)

_STATUS_BY_WIRE: Final = {
    task_pb2.UNKNOWN: Status.UNKNOWN,
    task_pb2.CREATED: Status.CREATED,
    task_pb2.RUNNING: Status.RUNNING,
    task_pb2.STOPPED: Status.STOPPED,
    task_pb2.PAUSED: Status.PAUSED,
    task_pb2.PAUSING: Status.PAUSING,
}

_RUNC_OPTION_FIELDS: Final = frozenset(field.name for field in runc_pb2.Options.DESCRIPTOR.fields)
_RUNC_BOOL_OPTIONS: Final = frozenset(
    field.name for field in runc_pb2.Options.DESCRIPTOR.fields if field.type == field.TYPE_BOOL
)

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
        self.task_wait = _method(
            channel, tasks + "Wait", tasks_pb2.WaitRequest, tasks_pb2.WaitResponse
        )
        self.task_metrics = _method(
            channel, tasks + "Metrics", tasks_pb2.MetricsRequest, tasks_pb2.MetricsResponse
        )
        self.task_checkpoint = _method(
            channel,
            tasks + "Checkpoint",
            tasks_pb2.CheckpointTaskRequest,
            tasks_pb2.CheckpointTaskResponse,
        )
        self.task_exec = _method(
            channel, tasks + "Exec", tasks_pb2.ExecProcessRequest, empty_pb2.Empty
        )
        self.task_delete_process = _method(
            channel,
            tasks + "DeleteProcess",
            tasks_pb2.DeleteProcessRequest,
            tasks_pb2.DeleteResponse,
        )
        self.task_resize_pty = _method(
            channel, tasks + "ResizePty", tasks_pb2.ResizePtyRequest, empty_pb2.Empty
        )
        self.task_close_io = _method(
            channel, tasks + "CloseIO", tasks_pb2.CloseIORequest, empty_pb2.Empty
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


def _exec_id_of(process: task_pb2.ProcessInfo) -> str:
    """The exec id runc's shim reports for a process of ListPids ("" for others)."""
    if not process.HasField("info"):
        return ""
    details = _typeurl.unpack(process.info, runc_pb2.ProcessDetails)
    return details.exec_id if details is not None else ""


def _exec_id_taken(doing: str, process: task_pb2.Process) -> AlreadyExists:
    """AlreadyExists saying whether the exec holding the id runs or waits to be deleted.

    An exited exec keeps its id until its owner deletes it: another client,
    or this program before it restarted (restore adopts live execs only:
    containerd lists no exited ones). Which of the two it is tells the caller
    whether to wait or to pick another id.
    """
    if process.status == task_pb2.STOPPED:
        return AlreadyExists(
            f"cannot {doing}: an exec by that id has exited but is not deleted yet; it"
            " belongs to another client (or to this program before it restarted), which"
            " deletes it when it takes its exit; the id is free again then, or once the"
            " task is deleted"
        )
    return AlreadyExists(f"cannot {doing}: an exec by that id is running (pid {process.pid})")


def _runc_options(runtime_options: Mapping[str, Any] | None, runc_root: str) -> runc_pb2.Options:
    """runc v2 shim options; ``root`` defaults to this daemon's own runc state directory."""
    if runtime_options is not None and not isinstance(runtime_options, Mapping):
        raise InvalidArgument(
            "runtime options must be a dict of runc option names,"
            f" not {type(runtime_options).__name__}"
        )
    values = dict(runtime_options or {})
    unknown = sorted(map(repr, set(values) - _RUNC_OPTION_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"unknown runtime option(s) {', '.join(unknown)}; known: "
            + ", ".join(sorted(_RUNC_OPTION_FIELDS))
        )
    for name in sorted(_RUNC_BOOL_OPTIONS & set(values)):
        if not isinstance(values[name], bool):
            raise InvalidArgument(
                f"runtime option {name!r} must be True or False, not {values[name]!r}"
            )
    values.setdefault("root", runc_root)
    try:
        return runc_pb2.Options(**values)
    except (TypeError, ValueError, OverflowError) as error:
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

    ``fifo_dir`` holds the FIFOs of attached processes, laid out
    ``<fifo_dir>/<namespace>/<container_id>/<process_id>-stdin|-stdout|-stderr``,
    every folder 0700; it defaults to ``fifo`` beside the socket (and
    :attr:`runc_root`), so a client restarted on the same daemon finds them.
    """

    def __init__(
        self,
        address: str | os.PathLike[str] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        backend: Backend | None = None,
        *,
        timeout: float | None = None,
        fifo_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.namespace = check_identifier(namespace, "namespace")
        self.address = resolve_address(address)
        self.backend = backend
        self.timeout = timeout
        self.runc_root = os.path.join(os.path.dirname(self.address), "runc")
        self.fifo_dir = os.path.join(os.path.dirname(self.address), "fifo")
        if fifo_dir is not None:
            self.fifo_dir = os.fspath(fifo_dir)
            if not os.path.isabs(self.fifo_dir):
                raise InvalidArgument(f"fifo_dir must be an absolute path, got {fifo_dir!r}")
        self._explicit_address = address is not None or "CONTAINERD_ADDRESS" in os.environ
        # Built once: grpc.aio converts a tuple into Metadata on every call (~3.6 us).
        self._metadata = grpc.aio.Metadata((_NAMESPACE_HEADER, self.namespace))
        self._channel: grpc.aio.Channel | None = None
        self._rpc: _Methods | None = None
        # Saves a Containers.Get on start(): the only spec fact a task needs.
        self._terminal: dict[str, bool] = {}
        # Containers whose task this client deleted, with the event stream's subscription
        # count then: while no task has been created since, delete() skips its Tasks.Get.
        self._deleted_tasks: dict[str, int] = {}
        self._stream: EventStream | None = None
        self._dispatcher: EventDispatcher | None = None
        self._listeners: set[asyncio.Queue[Event | None]] = set()
        # Exec exits seen on the stream, so wait() still answers once the exec
        # process has been released; dropped when the container's task is deleted.
        self._exec_exits: dict[tuple[str, str], tuple[int, datetime | None]] = {}
        # The execs this client made, (container id, exec id) -> pid (0 until Start
        # answers), until it releases them.
        self._own_execs: dict[tuple[str, str], int] = {}
        # Releases on their way, so an exec that reuses the id waits for its own.
        self._releases: dict[tuple[str, str], asyncio.Task[None]] = {}
        # (container id, exec id, pid) of execs released before their exit event came
        # (their id was reused): that event must not release the newer exec.
        self._superseded: set[tuple[str, str, int]] = set()
        # The FIFOs of the processes this client attached, by container and process id;
        # _fifo_sets also holds released ones whose readers have not reached EOF yet.
        self._fifos: dict[str, dict[str, FifoSet]] = {}
        self._fifo_sets: set[FifoSet] = set()
        self._background: set[asyncio.Task[None]] = set()
        # Starts whose answer was lost (containerd died, or the deadline passed, during
        # Tasks.Start): container id -> the pid of the task created for it. The next
        # start() of the container finds out what became of it, and never runs it twice.
        self._cut_starts: dict[str, int] = {}
        # Containers whose Tasks.Create was cut: a task may exist that was never started.
        self._cut_creates: set[str] = set()

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
                # gRPC's own reconnect back-off grows to 120 s; containerd restarts in well
                # under a second, and the event stream must notice it coming back.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 2000),
                # A private subchannel, so one client's failed attempt does not make
                # every other client on the same socket wait out its back-off.
                ("grpc.use_local_subchannel_pool", 1),
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
        """Stop the event stream, let queued events reach the backend, and close; idempotent.

        Every FIFO end this client holds is closed; the FIFO files of live
        processes stay, so a restarted client can :meth:`restore` them.
        """
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            await dispatcher.close()
        for fifos in self._fifo_sets:
            fifos.close()  # may queue a pending stdin close, awaited just below
        self._fifo_sets.clear()
        self._fifos.clear()
        if self._background:
            _, pending = await asyncio.wait(self._background, timeout=_CLEANUP_TIMEOUT)
            for task in pending:
                task.cancel()
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
        if event is EventType.CREATE:
            self._deleted_tasks.pop(container_id, None)  # a task again, maybe another client's
        if event is EventType.EXIT and info.process_id != container_id:
            self._exec_exits[(container_id, info.process_id)] = (info.exit_code, info.exited_at)
        for listener in self._listeners:
            listener.put_nowait((container_id, event, info))
        if self._dispatcher is not None:
            self._dispatcher.dispatch(container_id, event, info)
        else:
            self._after_delivery(container_id, event, info)

    def _track(self, container_id: str, process_id: str, pid: int) -> bool:
        """Tell the event stream a process is alive, so its exit is found even if missed.

        False when the stream has reported its exit already.
        """
        return self._stream is None or self._stream.track(container_id, process_id, pid)

    def _after_delivery(self, container_id: str, event: EventType, info: EventInfo) -> None:
        """An exec of ours that has exited and been reported is released (Docker's order).

        Another client's execs are its own to release: deleting one under it
        would race with its wait and its clean-up.
        """
        if event is not EventType.EXIT or info.process_id == container_id:
            return
        key = (container_id, info.process_id)
        if (*key, info.pid) in self._superseded:
            self._superseded.discard((*key, info.pid))
            return  # an earlier exec of that id, released already
        pid = self._own_execs.get(key)
        if pid is None or (pid and info.pid and pid != info.pid):
            return  # another client's exec, or an earlier one with the same id
        del self._own_execs[key]
        self._release_in_background(key)

    def _release_in_background(self, key: tuple[str, str]) -> None:
        release = asyncio.get_running_loop().create_task(self._release_exec(*key))
        self._background.add(release)
        self._releases[key] = release

        def done(task: asyncio.Task[None]) -> None:
            self._background.discard(task)
            if self._releases.get(key) is task:
                del self._releases[key]

        release.add_done_callback(done)

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
        ``systemd_cgroup``, ``criu_path``, ...); without ``criu_path``, the first
        working CRIU found as :mod:`checkpoint` describes is recorded there. The
        spec's cgroups path defaults to ``/<namespace>/<container_id>``. Raises
        InvalidArgument (bad id, spec or option, before anything is sent),
        AlreadyExists, Unavailable.
        """
        check_identifier(container_id)
        oci.validate_spec(spec)
        options = _runc_options(runtime_options, self.runc_root)
        if "criu_path" not in (runtime_options or {}):
            # runc's CRIU is fixed when a task is created: record a working one now.
            options.criu_path = await checkpoint.usable_criu()
        # Only linux.cgroupsPath may change: copy the two levels on its way, not the spec.
        document = dict(spec)
        linux = document["linux"] = dict(document.get("linux") or {})
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
        attach_stdio: AttachStdio | None = None,
    ) -> int:
        """Create and start the container's task; returns the init process's pid.

        Without ``attach_stdio`` the process gets no stdio at all (and makes
        no FIFOs). With a :data:`StdioCallback`, its FIFOs are made and opened
        first and the callback receives them as a DirectIO before the task is
        created, so no output is lost; with a :class:`LogFile` the shim writes
        the output to that file. If the task is created but cannot start, it
        is killed and deleted with its FIFOs, so no shim is left behind and
        the container can be started again. Raises InvalidArgument (stdin or a
        terminal without ``attach_stdio``, a log file with either), NotFound,
        AlreadyExists (a task exists), LibcontainerdError with code
        ``UNKNOWN`` when runc refuses (e.g. a missing executable, named in the
        message), Unavailable; what the callback raises propagates.

        After Unavailable or DeadlineExceeded, call start() again on the same
        client: it finds out what the interrupted call did, never runs the
        process twice, and returns its pid (README, "Errors").

        With ``checkpoint_dir`` (made by :meth:`create_checkpoint`) the new task
        is restored from it, and its processes go on where they were; their
        output can go to a :class:`LogFile`, and stdin or a callback raise
        NotImplemented. That also raises InvalidArgument for a directory that
        is missing or holds no checkpoint (before anything is sent) or whose
        images CRIU refuses (with CRIU's reasons; no task is left behind), and
        CheckpointUnsupported when no working CRIU is found.
        """
        check_identifier(container_id)
        self._deleted_tasks.pop(container_id, None)
        if checkpoint_dir is not None:
            return await self._start_from_checkpoint(
                container_id, checkpoint_dir, with_stdin, attach_stdio
            )
        if container_id in self._cut_starts:
            pid = await self._resume_cut_start(container_id)
            if pid is not None:
                return pid
        if container_id in self._cut_creates:
            await self._clear_cut_create(container_id)
        terminal = await self._terminal_of(container_id)
        stdio, fifos = await self._open_stdio(
            container_id, INIT_PROCESS_ID, terminal, with_stdin, attach_stdio
        )
        rpc = self._methods
        try:
            created = await self._create_task(
                tasks_pb2.CreateTaskRequest(
                    container_id=container_id,
                    terminal=terminal,
                    stdin=stdio.stdin,
                    stdout=stdio.stdout,
                    stderr=stdio.stderr,
                ),
                f"create the task of container {container_id!r}",
            )
        except BaseException as error:
            if fifos is not None:
                self._drop_fifos(fifos)
            if isinstance(error, _CUT):
                self._cut_creates.add(container_id)  # cleared by the next start()
            else:
                await self._discard_failed_create(container_id, error)
            raise
        if fifos is not None:
            fifos.attach(created.pid)  # the shim opens the init process's stdio in Create
        try:
            started = await self._call(
                rpc.task_start,
                tasks_pb2.StartRequest(container_id=container_id),
                f"start container {container_id!r}",
            )
        except _CUT as error:
            # The start may have run the process: keep the task and its stdio, and let
            # the next start() find out (never run it twice).
            self._cut_starts[container_id] = created.pid
            raise type(error)(
                f"{error.message}; the process may have started: call start() again to find"
                " out (it never starts the process twice)",
                code=error.code,
                details=error.details,
            ) from error
        except BaseException:
            await self._discard_task(container_id)
            raise
        self._track(container_id, container_id, started.pid)
        return started.pid

    async def _resume_cut_start(self, container_id: str) -> int | None:
        """What became of a start whose answer was lost: its pid, or None to start anew.

        - no task any more: containerd 1.7 and 2.x, restarted, delete as a
          "leaked shim" every task whose shim lists no process: one whose
          process ran and exited, but also one whose cut start never let it
          run. Which it was cannot be known, and starting again could run it
          twice: its pid (its exit is reported once by the event stream, with
          code 255 and an unknown exit code);
        - the task, still created (the start never reached runc, or runc was cut
          before the process left ``runc init``): started now, its pid;
        - the task, running, paused or stopped: the start took effect: its pid;
        - another task (another pid): None (the caller's start then raises
          AlreadyExists).

        Raises what the look-up or the start raises; Unavailable leaves the
        record, so the next start() looks again.
        """
        pid = self._cut_starts[container_id]
        rpc = self._methods
        try:
            reply = await self._init_task(container_id)
        except NotFound:
            exists = await self._container_exists(container_id)
            del self._cut_starts[container_id]
            if not exists:
                raise NotFound(
                    f"cannot start container {container_id!r}: no such container"
                ) from None
            log.info(
                "container %s: containerd dropped the task of the interrupted start (pid %d):"
                " its process may or may not have run, and is not started again",
                container_id,
                pid,
            )
            return pid
        if reply.process.pid != pid:
            del self._cut_starts[container_id]
            return None
        if reply.process.status != task_pb2.CREATED:
            del self._cut_starts[container_id]
            self._track(container_id, container_id, pid)
            return pid
        try:
            started = await self._call(
                rpc.task_start,
                tasks_pb2.StartRequest(container_id=container_id),
                f"start container {container_id!r}",
            )
        except _CUT:
            raise
        except LibcontainerdError:
            # runc refuses a second start of a process that the cut one had let run.
            del self._cut_starts[container_id]
            with contextlib.suppress(LibcontainerdError):
                reply = await self._init_task(container_id)
                if reply.process.pid == pid and reply.process.status != task_pb2.CREATED:
                    self._track(container_id, container_id, pid)
                    return pid
            await self._discard_task(container_id)
            raise
        del self._cut_starts[container_id]
        self._track(container_id, container_id, started.pid)
        return started.pid

    async def _clear_cut_create(self, container_id: str) -> None:
        """Delete the task that a cut Tasks.Create made, if it did: it was never started.

        Its exit (containerd publishes one when such a task is deleted) is not
        reported: the process never ran.
        """
        rpc = self._methods
        try:
            reply = await self._init_task(container_id)
        except NotFound:
            self._cut_creates.discard(container_id)
            return  # none made, or half made (Create then clears it)
        self._cut_creates.discard(container_id)
        if reply.process.status != task_pb2.CREATED:
            return  # started by someone else: Create then raises AlreadyExists
        if self._stream is not None:
            self._stream.discard(container_id, container_id, reply.process.pid)
        log.info(
            "container %s: deleting the task that an interrupted create made (never started)",
            container_id,
        )
        with contextlib.suppress(NotFound):
            await self._call(
                rpc.task_delete,
                tasks_pb2.DeleteTaskRequest(container_id=container_id),
                f"delete the never-started task of container {container_id!r}",
            )

    async def _start_from_checkpoint(
        self,
        container_id: str,
        checkpoint_dir: str | os.PathLike[str],
        with_stdin: bool,
        attach_stdio: object | None,
    ) -> int:
        """Create the task restored from ``checkpoint_dir`` (runc ``criu_image_path``), start it.

        Its output can go to a :class:`LogFile` (the shim hands runc new pipes,
        which CRIU puts in place of the checkpointed ones); without one the
        restored process writes to nothing. Raises InvalidArgument (the
        directory is missing or holds no checkpoint, checked first; or CRIU
        refused its images, with CRIU's reasons), CheckpointUnsupported (no
        working CRIU), NotFound, AlreadyExists (a task exists),
        NotImplemented for stdin or a callback. A failed restore leaves no
        task behind.
        """
        if with_stdin or (attach_stdio is not None and not isinstance(attach_stdio, LogFile)):
            # With FIFOs, containerd 1.6's shim restores the process but its
            # Start never returns: only log-file mode is offered.
            raise errors.NotImplemented(
                "restoring a checkpoint with stdin or a stdio callback is not supported;"
                " its output can go to a LogFile"
            )
        source = checkpoint.image_directory(checkpoint_dir)
        container = await self._container(container_id, "restore")
        try:
            spec = _typeurl.unpack_json(container.spec) if container.spec.value else {}
        except ValueError:
            spec = {}
        if spec.get("process", {}).get("terminal", False):
            raise InvalidArgument(
                f"container {container_id!r} asks for a terminal (process.terminal=true),"
                " which needs attached stdio"
            )
        runtime = _typeurl.unpack(container.runtime.options, runc_pb2.Options) or runc_pb2.Options()
        criu = await checkpoint.find_criu(runtime.criu_path)
        stdout = stderr = ""
        if isinstance(attach_stdio, LogFile):
            stdout, stderr = attach_stdio.create()
        rpc = self._methods
        try:
            await self._create_task(
                tasks_pb2.CreateTaskRequest(
                    container_id=container_id,
                    stdout=stdout,
                    stderr=stderr,
                    options=checkpoint.restore_options(runtime, source, criu),
                ),
                f"create the restored task of container {container_id!r}",
            )
        except BaseException as error:
            await self._discard_failed_create(container_id, error)
            raise
        try:
            started = await self._call(
                rpc.task_start,
                tasks_pb2.StartRequest(container_id=container_id),
                f"restore container {container_id!r} from {source}",
            )
        except LibcontainerdError as error:
            # Read CRIU's log before the failed task, and its bundle, are deleted.
            failure = (
                checkpoint.restore_failure(container_id, source, error)
                if type(error) is LibcontainerdError
                else error
            )
            await self._discard_task(container_id)
            raise failure from None
        except BaseException:
            await self._discard_task(container_id)
            raise
        self._track(container_id, container_id, started.pid)
        return started.pid

    async def spec(self, container_id: str) -> dict[str, Any]:
        """The container's OCI runtime spec, as containerd holds it (one Containers.Get).

        What :meth:`create` sent, with the cgroups path it filled in; handy to
        build an exec's process from the container's own (its env, user and
        working directory). Raises NotFound, Unavailable, LibcontainerdError
        when the stored spec is not JSON.
        """
        check_identifier(container_id)
        container = await self._container(container_id, "read the spec of")
        try:
            document = _typeurl.unpack_json(container.spec)
        except ValueError as error:
            document = error
        if not isinstance(document, dict):
            raise LibcontainerdError(
                f"the spec of container {container_id!r} is not a JSON object: {document}"
            )
        return document

    async def _container(self, container_id: str, doing: str) -> containers_pb2.Container:
        try:
            reply = await self._call(
                self._methods.container_get,
                containers_pb2.GetContainerRequest(id=container_id),
                f"look up container {container_id!r}",
            )
        except NotFound:
            raise NotFound(
                f"cannot {doing} container {container_id!r}: no such container"
            ) from None
        return reply.container

    async def _terminal_of(self, container_id: str) -> bool:
        """Whether the container's process wants a terminal; remembered from create()."""
        known = self._terminal.get(container_id)
        if known is None:
            process = (await self.spec(container_id)).get("process")
            known = bool(isinstance(process, dict) and process.get("terminal", False))
            self._terminal[container_id] = known
        return known

    async def _create_task(
        self, request: tasks_pb2.CreateTaskRequest, context: str
    ) -> tasks_pb2.CreateTaskResponse:
        """Tasks.Create, after removing a task that containerd left half made.

        containerd killed while it creates a task can come back with a task
        that it lists (Create answers AlreadyExists) but whose shim holds no
        process (Get answers NotFound); nothing but Delete clears it. Such a
        remnant is deleted and the create made once more; a real task still
        raises AlreadyExists.
        """
        rpc = self._methods
        try:
            return self._created(request, await self._call(rpc.task_create, request, context))
        except AlreadyExists:
            container_id = request.container_id
            try:
                await self._init_task(container_id)
            except NotFound:
                pass
            else:
                raise
        log.warning(
            "container %s had a task without a process (left by a containerd that died while"
            " creating it); deleting it and creating the task again",
            request.container_id,
        )
        if self._stream is not None:
            # containerd 1.6 publishes an exit for it, with pid 0 (code 255) or -1 (code
            # 137): no process ran, so none is reported.
            for pid in (0, NO_PID):
                self._stream.discard(request.container_id, request.container_id, pid)
        with contextlib.suppress(NotFound):
            await self._call(
                rpc.task_delete,
                tasks_pb2.DeleteTaskRequest(container_id=request.container_id),
                f"delete the half-made task of container {request.container_id!r}",
            )
        return self._created(request, await self._call(rpc.task_create, request, context))

    def _created(
        self, request: tasks_pb2.CreateTaskRequest, reply: tasks_pb2.CreateTaskResponse
    ) -> tasks_pb2.CreateTaskResponse:
        # Tracked from its creation, not its start: a start whose answer is lost
        # to containerd's death may still have run the process, and its exit
        # must then be found when the event stream reconnects.
        self._track(request.container_id, request.container_id, reply.pid)
        return reply

    async def _discard_failed_create(self, container_id: str, error: BaseException) -> None:
        """Make containerd drop what a failed Tasks.Create left; never raises.

        containerd 2.0 and 2.1 start the shim before checking the spec against
        the runtime's features, and leave it running when that check fails
        (e.g. a spec that Go cannot read); a Delete of the task, which it still
        lists, makes it stop that shim. A task that exists already (AlreadyExists)
        is someone's live task, and is left alone.
        """
        if not isinstance(error, AlreadyExists):
            await self._discard_task(container_id)

    async def _discard_task(self, container_id: str) -> None:
        """Kill and delete a task that failed to start, and its FIFOs; best effort, never raises."""
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
        self._forget_task(container_id)

    # -- stdio ------------------------------------------------------------------------

    async def _open_stdio(
        self,
        container_id: str,
        process_id: str,
        terminal: bool,
        with_stdin: bool,
        attach_stdio: AttachStdio | None,
    ) -> tuple[_Stdio, FifoSet | None]:
        """Where a new process's stdio goes; its FIFOs made, opened and handed to the callback.

        Raises InvalidArgument for what the shim cannot serve, before
        anything is made; on any failure nothing is left behind.
        """
        process = f"process {process_id!r} of container {container_id!r}"
        if attach_stdio is None:
            if with_stdin:
                raise InvalidArgument(
                    f"{process}: with_stdin=True needs attach_stdio (it receives the stdin writer)"
                )
            if terminal:
                raise InvalidArgument(
                    f"{process} asks for a terminal (process.terminal=true),"
                    " which needs attached stdio (attach_stdio)"
                )
            return _NULL_STDIO, None
        if isinstance(attach_stdio, LogFile):
            if with_stdin or terminal:
                raise InvalidArgument(
                    f"{process}: log-file mode serves neither stdin nor a terminal"
                    " (containerd's runc shim copies a terminal only to a FIFO);"
                    " attach a callback instead"
                )
            stdout, stderr = attach_stdio.create()
            return _Stdio(stdout=stdout, stderr=stderr), None
        if not callable(attach_stdio):
            raise InvalidArgument(
                "attach_stdio must be a callback that takes a DirectIO, or a LogFile,"
                f" not {type(attach_stdio).__name__}"
            )
        fifos = await self._make_fifos(container_id, process_id, with_stdin, terminal)
        try:
            await self._hand_over(fifos, attach_stdio)
        except BaseException:
            self._drop_fifos(fifos)
            raise
        return _Stdio(fifos.stdin, fifos.stdout, fifos.stderr), fifos

    async def _make_fifos(
        self, container_id: str, process_id: str, with_stdin: bool, terminal: bool
    ) -> FifoSet:
        """Make and open a process's FIFOs, replacing stale ones a crashed client left behind.

        Raises AlreadyExists when they belong to a live process (the check
        costs a call only then), FailedPrecondition when they cannot be made.
        """
        directory = make_private_dirs(self.fifo_dir, self.namespace, container_id)

        def create() -> FifoSet:
            return FifoSet.create(
                directory, container_id, process_id, stdin=with_stdin, terminal=terminal
            )

        try:
            try:
                fifos = create()
            except FileExistsError:
                await self._refuse_live_process(container_id, process_id)
                remove_process_fifos(directory, process_id)
                fifos = create()
        except OSError as error:
            raise FailedPrecondition(
                f"cannot make the FIFOs of process {process_id!r} of container"
                f" {container_id!r} in {directory}: {error.strerror}"
            ) from error
        self._own_fifos(fifos)
        return fifos

    async def _refuse_live_process(self, container_id: str, process_id: str) -> None:
        try:
            reply = await self._call(
                self._methods.task_get,
                tasks_pb2.GetRequest(container_id=container_id, exec_id=self._exec_id(process_id)),
                f"look up process {process_id!r} of container {container_id!r}",
            )
        except NotFound:
            return
        if process_id == INIT_PROCESS_ID:
            raise AlreadyExists(f"container {container_id!r} has a task already")
        raise _exec_id_taken(
            f"exec process {process_id!r} in container {container_id!r}", reply.process
        )

    async def _hand_over(self, fifos: FifoSet, attach_stdio: StdioCallback) -> None:
        """Give the FIFOs to the caller's callback as a DirectIO (awaiting it if it is async)."""
        direct_io = await fifos.connect(lambda: self._stdin_closed(fifos))
        attached = attach_stdio(direct_io)
        if inspect.isawaitable(attached):
            await attached

    def _own_fifos(self, fifos: FifoSet) -> None:
        processes = self._fifos.setdefault(fifos.container_id, {})
        previous = processes.pop(fifos.process_id, None)
        if previous is not None:
            previous.close()
        processes[fifos.process_id] = fifos
        self._fifo_sets = {known for known in self._fifo_sets if not known.closed}
        self._fifo_sets.add(fifos)

    def _drop_fifos(self, fifos: FifoSet) -> None:
        """Close a process's FIFO ends now and remove its files (a start or exec that failed).

        Only this process's files: the folder may serve a live task's execs
        (a second start fails with AlreadyExists after making its FIFOs).
        """
        fifos.close()
        self._release_stdio(fifos.container_id, fifos.process_id)

    def _release_stdio(self, container_id: str, process_id: str) -> None:
        """The process is gone: release its FIFO ends (readers end at EOF) and remove its files."""
        fifos = self._disown(container_id, process_id)
        if fifos is not None:
            fifos.release()
        remove_process_fifos(self._container_fifo_dir(container_id), process_id)

    def _disown(self, container_id: str, process_id: str) -> FifoSet | None:
        processes = self._fifos.get(container_id, {})
        fifos = processes.pop(process_id, None)
        if not processes:
            self._fifos.pop(container_id, None)
        return fifos

    def _container_fifo_dir(self, container_id: str) -> str:
        return container_fifo_dir(self.fifo_dir, self.namespace, container_id)

    def _stdin_closed(self, fifos: FifoSet) -> None:
        self._spawn(self._close_io_once_attached(fifos))

    async def _close_io_once_attached(self, fifos: FifoSet) -> None:
        # The shim opens an init process's stdin in Tasks.Create but an exec's
        # only in Tasks.Start; a CloseIO before that is lost and the process
        # never sees EOF (moby#37870).
        if not await fifos.wait_attached():
            return
        try:
            await self._close_io(fifos.container_id, fifos.process_id)
        except LibcontainerdError as error:
            log.debug("closing the stdin of %r: %s", fifos, error)

    async def _close_io(self, container_id: str, process_id: str) -> None:
        await self._task_call(
            self._methods.task_close_io,
            tasks_pb2.CloseIORequest(
                container_id=container_id, exec_id=self._exec_id(process_id), stdin=True
            ),
            container_id,
            "close the stdin of",
            process_id,
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close_stdin(self, container_id: str, process_id: str) -> None:
        """Deliver EOF to a process's stdin: our writer is closed after what it buffered.

        The shim is told with CloseIO (the process sees EOF only once both ends
        are closed). Raises InvalidArgument, NotFound (no such container,
        task or process), Unavailable.
        """
        check_identifier(container_id)
        self._exec_id(process_id)
        fifos = self._fifos.get(container_id, {}).get(process_id)
        if fifos is not None:
            fifos.close_stdin()
        await self._close_io(container_id, process_id)

    async def resize_terminal(
        self, container_id: str, process_id: str, width: int, height: int
    ) -> None:
        """Set the size of a process's terminal, in columns and rows (1 to 65535).

        A process without a terminal ignores it. Raises InvalidArgument (bad
        id or size, before sending), NotFound, Unavailable.
        """
        check_identifier(container_id)
        exec_id = self._exec_id(process_id)
        for name, value in (("width", width), ("height", height)):
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 1 <= value <= _MAX_TERMINAL_SIZE
            ):
                raise InvalidArgument(
                    f"terminal {name} must be an integer between 1 and {_MAX_TERMINAL_SIZE},"
                    f" got {value!r}"
                )
        await self._task_call(
            self._methods.task_resize_pty,
            tasks_pb2.ResizePtyRequest(
                container_id=container_id, exec_id=exec_id, width=width, height=height
            ),
            container_id,
            "resize the terminal of",
            process_id,
        )

    # -- exec -------------------------------------------------------------------------

    async def exec(
        self,
        container_id: str,
        process_id: str,
        process_spec: Mapping[str, Any],
        with_stdin: bool = False,
        attach_stdio: AttachStdio | None = None,
    ) -> int:
        """Run another process in the container's running task; returns its pid.

        ``process_spec`` is an OCI process (``args``, ``cwd``, ``env``,
        ``terminal``, ``user``, ...), checked before sending; ``process_id``
        names it in later calls (``wait``, ``signal_process``, ...). Stdio
        works as in :meth:`start`. If it cannot start, the exec is deleted
        with its FIFOs, so the id can be used again; once it has exited and
        its exit has been reported, this client deletes it (another client
        in the namespace leaves it alone); an exec of this client's that has
        exited is deleted before its id is used again, so the id is free as
        soon as :meth:`wait` returns. Raises InvalidArgument (bad id, spec
        or stdio, before anything is sent), NotFound (no such container),
        FailedPrecondition (the container has no running task: not started,
        stopped, or paused), AlreadyExists (the id names a live exec, or
        an exited one of another client's that is not deleted yet; the
        message says which), LibcontainerdError with code ``UNKNOWN`` when
        runc cannot run it (e.g. a missing executable, named in the
        message), Unavailable; what the callback raises propagates.
        """
        check_identifier(container_id)
        exec_id = check_identifier(process_id, "process id")
        if exec_id == INIT_PROCESS_ID:
            raise InvalidArgument(
                f"process id {INIT_PROCESS_ID!r} names the container's main process;"
                " choose another id for an exec"
            )
        oci.validate_process(process_spec)
        process = copy.deepcopy(dict(process_spec))
        terminal = bool(process.get("terminal", False))
        await self._settle_exec_id(container_id, exec_id)
        stdio, fifos = await self._open_stdio(
            container_id, exec_id, terminal, with_stdin, attach_stdio
        )
        rpc = self._methods
        doing = f"exec process {exec_id!r} in container {container_id!r}"
        try:
            await self._call(
                rpc.task_exec,
                tasks_pb2.ExecProcessRequest(
                    container_id=container_id,
                    exec_id=exec_id,
                    terminal=terminal,
                    stdin=stdio.stdin,
                    stdout=stdio.stdout,
                    stderr=stdio.stderr,
                    spec=_typeurl.pack_json(_typeurl.OCI_PROCESS, process),
                ),
                doing,
            )
        except BaseException as error:
            if fifos is not None:
                self._drop_fifos(fifos)
            if isinstance(error, NotFound):
                raise await self._not_running(container_id, doing) from None
            if isinstance(error, AlreadyExists):
                raise await self._exec_in_the_way(container_id, exec_id, doing) from None
            if isinstance(error, LibcontainerdError) and "cannot exec in a" in error.details:
                # The shim's own words for a stopped or paused init; it sends them as UNKNOWN.
                raise FailedPrecondition(f"cannot {doing}: {error.details}") from None
            raise
        # Ours from now on: released after its exit event (which may come before Start returns).
        key = (container_id, exec_id)
        self._own_execs[key] = 0
        try:
            started = await self._call(
                rpc.task_start,
                tasks_pb2.StartRequest(container_id=container_id, exec_id=exec_id),
                f"start exec {exec_id!r} in container {container_id!r}",
            )
        except BaseException:
            self._own_execs.pop(key, None)
            await self._release_exec(container_id, exec_id)
            raise
        if key in self._own_execs:  # not released yet by an exit event
            self._own_execs[key] = started.pid
        if fifos is not None:
            fifos.attach(started.pid)  # the shim opens an exec's stdio in Start
        self._track(container_id, exec_id, started.pid)
        return started.pid

    async def _settle_exec_id(self, container_id: str, exec_id: str) -> None:
        """Release an earlier exec of ours by this id that has exited, before the id is reused.

        wait() can answer before the exit event that releases the exec reaches
        this client: without this, the Exec would be refused (the exited exec
        still holds the id) or, worse, the late release would delete the new
        exec and its FIFOs. A release on its way is awaited; an exec that has
        exited but whose exit event has not come yet is released here, and its
        event ignored when it comes. A live one is left alone (the Exec is then
        refused with AlreadyExists).
        """
        key = (container_id, exec_id)
        await self._released(key)
        recorded = self._own_execs.get(key)
        if recorded is None:
            return
        pid = recorded
        try:
            process = await self._exec_process(container_id, exec_id)
        except NotFound:
            pass  # deleted already (by a _release_exec call of the caller's, or another client)
        else:
            if process.status != task_pb2.STOPPED:
                return
            pid = pid or process.pid
        if self._own_execs.get(key) != recorded:
            await self._released(key)  # its exit event came meanwhile, with its release
            return
        del self._own_execs[key]
        self._superseded.add((container_id, exec_id, pid))
        await self._release_exec(container_id, exec_id)

    async def _exec_in_the_way(self, container_id: str, exec_id: str, doing: str) -> AlreadyExists:
        """AlreadyExists for an Exec containerd refused, saying what holds the id."""
        try:
            process = await self._exec_process(container_id, exec_id)
        except LibcontainerdError:
            return AlreadyExists(f"cannot {doing}: an exec by that id exists")
        return _exec_id_taken(doing, process)

    async def _exec_process(self, container_id: str, exec_id: str) -> task_pb2.Process:
        """The exec's state as containerd has it (Tasks.Get); raises NotFound."""
        reply = await self._call(
            self._methods.task_get,
            tasks_pb2.GetRequest(container_id=container_id, exec_id=exec_id),
            f"look up exec {exec_id!r} of container {container_id!r}",
        )
        return reply.process

    async def _released(self, key: tuple[str, str]) -> None:
        """Wait for the release of an exec on its way, if one is (bounded, never raises)."""
        release = self._releases.get(key)
        if release is not None:
            await asyncio.shield(release)

    async def _not_running(self, container_id: str, doing: str) -> LibcontainerdError:
        """NotFound without the container, FailedPrecondition when only its task is missing."""
        if not await self._container_exists(container_id):
            return NotFound(f"cannot {doing}: no such container")
        return FailedPrecondition(f"cannot {doing}: the container is not running (it has no task)")

    async def _release_exec(self, container_id: str, exec_id: str) -> None:
        """Free what an exited exec holds: its FIFOs first, then containerd's record of it.

        Called after the exec's exit event, and when an exec fails to start.
        The FIFOs go first and their output is not waited for, so a
        background child still holding the exec's output cannot stall it
        (moby#39383); DeleteProcess has its own time limit. Never raises:
        failures are logged.
        """
        try:
            check_identifier(container_id)
            if check_identifier(exec_id, "exec id") == INIT_PROCESS_ID:
                raise InvalidArgument("'init' is the main process, not an exec")
            self._release_stdio(container_id, exec_id)
            await asyncio.wait_for(
                self._call(
                    self._methods.task_delete_process,
                    tasks_pb2.DeleteProcessRequest(container_id=container_id, exec_id=exec_id),
                    f"delete exec {exec_id!r} of container {container_id!r}",
                ),
                _CLEANUP_TIMEOUT,
            )
        except NotFound:
            pass  # already gone: deleted by an earlier release, or with its container's task
        except (LibcontainerdError, TimeoutError) as error:
            log.warning(
                "cleaning up exec %r of container %r: %s",
                exec_id,
                container_id,
                error or "timed out",
            )

    # -- restore ----------------------------------------------------------------------

    async def restore(
        self, container_id: str, attach_stdio: StdioCallback | None = None
    ) -> tuple[bool, int]:
        """Find a container's task again after this program restarted; returns ``(alive, pid)``.

        ``alive`` is False only for a stopped task: created, running, paused,
        pausing and unknown all count, as in Docker (a paused container stays
        paused). A container without a task gives ``(False, 0)``. With
        ``attach_stdio``, the FIFOs containerd recorded for the task are opened
        again and handed to it as a DirectIO: output held meanwhile (up to a
        pipe's worth) and everything later arrives, and closing stdin delivers
        EOF. A task without FIFOs (no stdio, log-file mode) does not call it;
        execs are not re-attached. A live task's later exit is reported once,
        as an event. A task that stopped before this client opened gets no
        exit event (containerd published it to nobody and does not replay
        it): ``alive`` False is the news, and :meth:`wait` or
        :meth:`delete_task` give its exit code and time, as Docker's daemon
        does on restore; what it wrote after its last client died is gone
        (the shim closes the FIFOs at its exit). The live task's execs
        become this client's: each is released (deleted) after its exit, as
        :meth:`exec` does for its own. Raises InvalidArgument,
        NotFound (no such container), Unavailable; what the callback raises
        propagates.
        """
        check_identifier(container_id)
        if attach_stdio is not None and (
            isinstance(attach_stdio, LogFile) or not callable(attach_stdio)
        ):
            raise InvalidArgument(
                "restore's attach_stdio must be a callback that takes a DirectIO"
                " (a task's output destination is fixed when it starts)"
            )
        try:
            reply = await self._call(
                self._methods.task_get,
                tasks_pb2.GetRequest(container_id=container_id),
                f"restore container {container_id!r}",
            )
        except NotFound:
            if not await self._container_exists(container_id):
                raise NotFound(
                    f"cannot restore container {container_id!r}: no such container"
                ) from None
            return False, 0
        process = reply.process
        alive = process.status != task_pb2.STOPPED
        if alive:
            await self._adopt_execs(container_id)
        if attach_stdio is not None:
            await self._reattach(container_id, process, attach_stdio)
        if alive:
            self._track(container_id, container_id, process.pid)
        return alive, process.pid

    async def _adopt_execs(self, container_id: str) -> None:
        """Make the live execs of a restored task this client's: released after their exit.

        Most likely this program started them before it restarted; nobody
        else would delete them, so each would hold its id and the shim's
        record of it until the task's delete (Docker's daemon, too, releases
        the execs of the containers it restored). One whose exit the stream
        has reported meanwhile is released at once.
        """
        try:
            reply = await self._call(
                self._methods.task_list_pids,
                tasks_pb2.ListPidsRequest(container_id=container_id),
                f"list the execs of container {container_id!r}",
            )
        except NotFound:
            return  # the task went meanwhile
        for entry in reply.processes:
            exec_id = _exec_id_of(entry)
            key = (container_id, exec_id)
            if not exec_id or key in self._own_execs or key in self._releases:
                continue
            self._own_execs[key] = entry.pid
            if not self._track(container_id, exec_id, entry.pid):
                del self._own_execs[key]
                self._release_in_background(key)

    async def _reattach(
        self, container_id: str, process: task_pb2.Process, attach_stdio: StdioCallback
    ) -> None:
        recorded = {STDIN: process.stdin, STDOUT: process.stdout, STDERR: process.stderr}
        try:
            fifos = FifoSet.open_recorded(container_id, INIT_PROCESS_ID, recorded, process.terminal)
        except OSError as error:
            raise FailedPrecondition(
                f"cannot re-open the FIFOs of container {container_id!r}: {error.strerror}"
            ) from error
        if fifos is None:
            return
        self._own_fifos(fifos)
        try:
            await self._hand_over(fifos, attach_stdio)
        except BaseException:
            self._disown(container_id, INIT_PROCESS_ID)
            fifos.close()  # the files stay: the task lives on
            raise

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
        reply = await self._task_call(
            self._methods.task_get,
            tasks_pb2.GetRequest(container_id=container_id),
            container_id,
            "get the status of",
        )
        return _STATUS_BY_WIRE.get(reply.process.status, Status.UNKNOWN)

    async def _no_task(
        self, container_id: str, doing: str, process_id: str = INIT_PROCESS_ID
    ) -> NotFound:
        """Say whether the container, its task or the process is missing (calls made on failure)."""
        if not await self._container_exists(container_id):
            return NotFound(f"cannot {doing} container {container_id!r}: no such container")
        if process_id != INIT_PROCESS_ID:
            try:
                await self._init_task(container_id)
            except NotFound:
                pass
            else:
                return NotFound(
                    f"cannot {doing} container {container_id!r}: it has no process"
                    f" {process_id!r} (never started, or deleted)"
                )
        return NotFound(
            f"cannot {doing} container {container_id!r}: it has no task"
            " (not started yet, or its task was deleted)"
        )

    async def _container_exists(self, container_id: str) -> bool:
        try:
            await self._call(
                self._methods.container_get,
                containers_pb2.GetContainerRequest(id=container_id),
                f"look up container {container_id!r}",
            )
        except NotFound:
            return False
        return True

    async def _init_task(self, container_id: str) -> tasks_pb2.GetResponse:
        """The container's task as containerd sees it (one Tasks.Get); raises NotFound."""
        return await self._call(
            self._methods.task_get,
            tasks_pb2.GetRequest(container_id=container_id),
            f"look up the task of container {container_id!r}",
        )

    async def _task_call(
        self,
        method: _Method[Request, Response],
        request: Request,
        container_id: str,
        doing: str,
        process_id: str = INIT_PROCESS_ID,
    ) -> Response:
        try:
            return await self._call(method, request, f"{doing} container {container_id!r}")
        except NotFound:
            raise await self._no_task(container_id, doing, process_id) from None

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
            exec_id = _exec_id_of(process)
            info: dict[str, Any] = {"exec_id": exec_id} if exec_id else {}
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

        Returns at once for a process that has already exited. A process this
        client's event stream tracks (one started, restored or seen starting
        while it was live) is waited for on its exit event, and a process whose
        exit it has reported (and whose task is not deleted) is answered from
        that event, with no call of its own; otherwise, or once the stream
        breaks, containerd is asked (Tasks.Wait), so a wait that meets a dead
        daemon raises Unavailable. Raises NotFound.
        """
        check_identifier(container_id)
        exec_id = self._exec_id(process_id)
        reported = await self._reported_exit(container_id, exec_id or container_id)
        if reported is not None:
            return reported
        try:
            reply = await self._task_call(
                self._methods.task_wait,
                tasks_pb2.WaitRequest(container_id=container_id, exec_id=exec_id),
                container_id,
                "wait for",
                process_id,
            )
        except NotFound:
            # An exec is released once its exit is reported; its result is kept.
            known = self._exec_exits.get((container_id, exec_id))
            if known is None:
                raise
            return known
        return reply.exit_status, _typeurl.to_datetime(reply.exited_at)

    async def _reported_exit(
        self, container_id: str, process_id: str
    ) -> tuple[int, datetime | None] | None:
        """The exit of a process the event stream tracks, as reported; None to ask containerd.

        The exit event comes anyway, so waiting for it saves a Tasks.Wait
        call per process. A synthetic exit (``info.error`` set: the process
        was found deleted or replaced) is left to Tasks.Wait to answer.
        """
        stream = self._stream
        future = None if stream is None else stream.exit_of(container_id, process_id)
        if stream is None or future is None:
            return None
        try:
            info = await future
        finally:
            stream.forget_waiter(container_id, process_id, future)  # given up (cancelled)
        if info is None or info.error:
            return None
        return info.exit_code, info.exited_at

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
        if self._stream is not None and self._stream.live:
            self._deleted_tasks[container_id] = self._stream.subscriptions
        return reply.exit_status, _typeurl.to_datetime(reply.exited_at)

    def _forget_task(self, container_id: str) -> None:
        """Drop what the client keeps per task: exec results and the FIFOs of its processes."""
        self._cut_starts.pop(container_id, None)
        self._cut_creates.discard(container_id)
        for key in [key for key in self._exec_exits if key[0] == container_id]:
            del self._exec_exits[key]
        self._own_execs = {k: pid for k, pid in self._own_execs.items() if k[0] != container_id}
        self._superseded = {k for k in self._superseded if k[0] != container_id}
        if self._stream is not None:
            self._stream.forget_exits(container_id)
        for fifos in self._fifos.pop(container_id, {}).values():
            fifos.release()
        remove_fifo_dir(self._container_fifo_dir(container_id))

    async def delete(self, container_id: str) -> None:
        """Delete the container and everything this client created for it (its FIFO folder too).

        Raises FailedPrecondition while the container still has a task (delete
        the task first), NotFound, Unavailable. The check costs a Tasks.Get,
        except right after this client's own :meth:`delete_task`, when its
        event stream has shown no task created since (containerd 1.6 itself
        would delete a container under a running task, orphaning its shim).
        """
        check_identifier(container_id)
        rpc = self._methods
        if not self._task_known_deleted(container_id):
            await self._refuse_a_task(container_id)
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
            self._deleted_tasks.pop(container_id, None)
            self._forget_task(container_id)

    def _task_known_deleted(self, container_id: str) -> bool:
        """This client deleted the task, and its stream, live throughout, saw none created since.

        A reconnect could have missed a task's create event, so the stream's
        subscription must be the one that was live at the delete.
        """
        subscription = self._deleted_tasks.get(container_id)
        stream = self._stream
        return (
            subscription is not None
            and stream is not None
            and stream.live
            and stream.subscriptions == subscription
        )

    async def _refuse_a_task(self, container_id: str) -> None:
        """Raise FailedPrecondition if the container has a task (one Tasks.Get)."""
        try:
            reply = await self._init_task(container_id)
        except NotFound:
            return
        state = _STATUS_BY_WIRE.get(reply.process.status, Status.UNKNOWN)
        raise FailedPrecondition(
            f"cannot delete container {container_id!r}: it still has a task ({state});"
            " call delete_task() first"
        )

    async def stats(self, container_id: str) -> Stats:
        """One metrics sample of the container's task (cgroup v1 or v2, see :mod:`metrics`).

        A task that has exited still has its cgroup, and so its final numbers,
        until it is deleted. Raises NotFound (no such container, or no task),
        FailedPrecondition (containerd has no metrics for a stopped task),
        NotImplemented (a metrics type this library cannot decode), Unavailable.
        """
        check_identifier(container_id)
        reply = await self._call(
            self._methods.task_metrics,
            # Quoted, so that the id is one literal value whatever characters it holds.
            tasks_pb2.MetricsRequest(filters=[f'id=="{container_id}"']),
            f"read the metrics of container {container_id!r}",
        )
        for metric in reply.metrics:
            if metric.id == container_id:
                return metrics.decode(metric)
        # containerd leaves out a task whose metrics it cannot read: say why.
        task = await self._task_call(
            self._methods.task_get,
            tasks_pb2.GetRequest(container_id=container_id),
            container_id,
            "read the metrics of",
        )
        state = _STATUS_BY_WIRE.get(task.process.status, Status.UNKNOWN)
        if state is Status.STOPPED:
            raise FailedPrecondition(
                f"container {container_id!r} has no metrics: its task has stopped"
            )
        raise LibcontainerdError(
            f"containerd reported no metrics for container {container_id!r} (its task is {state})"
        )

    async def stats_stream(
        self, container_id: str, interval: float = 1.0
    ) -> AsyncGenerator[Stats, None]:
        """A sample every ``interval`` seconds until the task exits, then the iteration ends.

        The first sample comes at once (so a task that has already exited gives
        one, its last numbers); a concurrent Tasks.Wait ends the stream as soon
        as the task exits, without waiting out the interval. Raises NotFound
        when there is no such container or task to begin with, InvalidArgument
        for an interval that is not a positive number; the errors of
        :meth:`stats` otherwise. Close it early with ``contextlib.aclosing`` to
        stop its background wait at once.
        """
        check_identifier(container_id)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise InvalidArgument(
                f"interval must be a positive number of seconds, got {interval!r}"
            )
        exited: asyncio.Task[tuple[int, datetime | None]] | None = None
        first = True
        try:
            while True:
                try:
                    sample = await self.stats(container_id)
                except FailedPrecondition:
                    return  # stopped: the task exited
                except NotFound:
                    if first:
                        raise
                    return  # the task was deleted after it exited
                if exited is None:
                    exited = asyncio.ensure_future(self.wait(container_id))
                first = False
                yield sample
                await asyncio.wait([exited], timeout=interval)
                if exited.done():
                    if exited.cancelled() or exited.exception() is None:
                        return
                    # The wait itself failed (containerd restarting, ...): poll instead.
                    exited = None
                    await asyncio.sleep(interval)
        finally:
            if exited is not None and not exited.done():
                exited.cancel()
                await asyncio.wait([exited])

    async def update_resources(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Change the task's OCI ``linux.resources`` (memory, cpu, pids, blkio, ...).

        Raises InvalidArgument, before sending when a value is malformed or out
        of the kernel's range, and after it when the runtime refuses the
        values (a cpuset this host lacks, a memory limit below current usage;
        the message gives the runtime's reason); NotFound; Unavailable.
        """
        check_identifier(container_id)
        oci.validate_resources(resources)
        try:
            await self._task_call(
                self._methods.task_update,
                tasks_pb2.UpdateTaskRequest(
                    container_id=container_id,
                    resources=_typeurl.pack_json(_typeurl.OCI_LINUX_RESOURCES, dict(resources)),
                ),
                container_id,
                "update the resources of",
            )
        except LibcontainerdError as error:
            # containerd passes the runtime's refusal on with code Unknown.
            if type(error) is not LibcontainerdError:
                raise
            raise InvalidArgument(
                f"cannot update the resources of container {container_id!r}: the runtime"
                f" refused them: {errors.runtime_reason(error.details)}",
                code=error.code,
                details=error.details,
            ) from None

    async def create_checkpoint(
        self, container_id: str, checkpoint_dir: str | os.PathLike[str], exit: bool = False
    ) -> None:
        """Write the running container's CRIU images into ``checkpoint_dir``.

        The directory must not exist yet or be empty; the images are written
        beside it and renamed into place when complete, so a failure leaves
        nothing behind. With ``exit`` the container stops once checkpointed
        (its task ends as if killed, status 137). Raises, before the container
        is touched: InvalidArgument (a path that cannot be a directory),
        AlreadyExists (a directory with files in it), NotFound,
        CheckpointUnsupported (no working CRIU, with ``criu check``'s reasons);
        after: FailedPrecondition (the task has stopped, or CRIU could not dump
        it, with CRIU's reasons; the container keeps running), Unavailable.
        """
        check_identifier(container_id)
        target = checkpoint.target_directory(checkpoint_dir)
        container = await self._container(container_id, "checkpoint")
        runtime = _typeurl.unpack(container.runtime.options, runc_pb2.Options) or runc_pb2.Options()
        await checkpoint.find_criu(runtime.criu_path)
        with checkpoint.written_atomically(target) as partial:
            try:
                await self._task_call(
                    self._methods.task_checkpoint,
                    tasks_pb2.CheckpointTaskRequest(
                        container_id=container_id,
                        options=checkpoint.checkpoint_options(exit, partial),
                    ),
                    container_id,
                    "checkpoint",
                )
            except LibcontainerdError as error:
                if type(error) is not LibcontainerdError:
                    raise
                state = await self.status(container_id)
                if state is Status.STOPPED:
                    raise FailedPrecondition(
                        f"cannot checkpoint container {container_id!r}: its task has stopped"
                    ) from None
                raise checkpoint.checkpoint_failure(container_id, error) from None

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
