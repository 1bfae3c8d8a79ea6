"""AsyncClient: the contract over containerd's gRPC API.

Each method reads as the containerd calls it makes, and makes as few as the
contract allows: the client keeps no copy of containerd's state beyond what
saves a round trip on the hot path (a container's terminal flag), so a second
client, or a restarted one, sees the same truth. What it owns locally is the
stdio of the processes it started or restored and the execs it made.

The client is a facade over rooms that each own one noun:
:mod:`~libcontainerd._rpc` (the channel and method table),
:mod:`~libcontainerd._session` (what the rooms share),
:mod:`~libcontainerd._tasks` (containers and tasks),
:mod:`~libcontainerd._execs` (execs) and
:mod:`~libcontainerd._process_stdio` (the client's FIFOs).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import Any, Final, Self

from google.protobuf import empty_pb2

from . import _paths, _stop, _task_resources, _typeurl, errors, oci
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._execs import ExecTable, exec_id_of
from ._identifiers import check_identifier
from ._labels import check_labels
from ._process_stdio import AttachStdio, ProcessStdio
from ._rpc import Connection, resolve_address
from ._session import Session, wire_exec_id
from ._signals import parse_signal
from ._tasks import RUNC_RUNTIME, TaskLifecycle
from ._userns import UserNamespaces
from .errors import (
    DeadlineExceeded,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
    Unavailable,
)
from .events import EventDispatcher, EventStream
from .images import Image, ImageService
from .images._containers import ImageRoots
from .networks import Attach, NetworkInfo, NetworkService
from .networks._attachments import Attachments
from .networks._containers import NetworkAttachments, attach_argument
from .stdio import LogFile, StdioCallback
from .types import (
    INIT_PROCESS_ID,
    Backend,
    ContainerInfo,
    EventInfo,
    EventType,
    ExitStatus,
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
    "AttachStdio",
    "Event",
    "EventSubscription",
    "resolve_address",
]

DEFAULT_ADDRESS: Final = _paths.DEFAULT_ADDRESS
"""The socket of the embedded containerd (``lcd daemon start`` or a default Supervisor)."""

DEFAULT_NAMESPACE: Final = _paths.DEFAULT_NAMESPACE

_MAX_TERMINAL_SIZE = 65535


Event = tuple[str, EventType, EventInfo]


def _check_local_root(spec: Mapping[str, Any]) -> None:
    """Refuse a spec whose root, an absolute path on this host, is not a directory."""
    root = spec.get("root")
    path = root.get("path") if isinstance(root, Mapping) else None
    if isinstance(path, str) and os.path.isabs(path) and not os.path.isdir(path):
        raise InvalidArgument(
            f"spec.root.path {path!r} does not exist (or is not a directory):"
            " the container would have no root filesystem"
        )


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
    exactly-once guarantees), and :meth:`events` yields them too. An exit's
    ``oom_killed`` is exact (its container cgroup's own count of OOM kills,
    read at the exit); ``oom`` events come at most once per exit.

    ``timeout`` (seconds; None, the default: none) is the deadline of each
    request to containerd (DeadlineExceeded when it passes). It bounds one
    call, not an operation: not a :meth:`wait` answered by the event stream
    (pass ``wait(timeout=)``), not :meth:`stop`'s grace period, not the
    copying of output, not the several requests of one method together.

    ``fifo_dir`` holds the FIFOs of attached processes, laid out
    ``<fifo_dir>/<namespace>/<container_id>/<process_id>-stdin|-stdout|-stderr``,
    every folder 0700; it defaults to ``fifo`` beside the socket (and
    :attr:`runc_root`), so a client restarted on the same daemon finds them.
    Before its first FIFOs the client raises the process's soft open-file
    limit to the hard one, once, as Go programs do (two descriptors per
    attached process); ``$LIBCONTAINERD_KEEP_NOFILE=1`` keeps yours.
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
        self.runc_root = _paths.runc_root(self.address)
        self.fifo_dir = _paths.fifo_root(self.address)
        if fifo_dir is not None:
            self.fifo_dir = os.fspath(fifo_dir)
            if not os.path.isabs(self.fifo_dir):
                raise InvalidArgument(f"fifo_dir must be an absolute path, got {fifo_dir!r}")
        self._explicit_address = address is not None or "CONTAINERD_ADDRESS" in os.environ
        self._connection = Connection(self.address, self.namespace, timeout)
        self._session = Session(self._connection)
        self._dispatcher: EventDispatcher | None = None
        self._listeners: set[asyncio.Queue[Event | None]] = set()
        # The rooms, each the one owner of its noun's state.
        self._stdio = ProcessStdio(self._session, self.fifo_dir)
        self._execs = ExecTable(self._session, self._stdio)
        self._tasks = TaskLifecycle(self._session, self._stdio, self._execs, self.runc_root)
        # First: the maps it resolves decide how the image room prepares the root.
        self._user_namespaces = UserNamespaces(self._session, self.address)
        self._tasks.hooks.append(self._user_namespaces)
        self.images = ImageService(self._session)
        """The namespace's images (import, list, tag, remove, ...): :mod:`.images`."""
        self._image_roots = ImageRoots(self._session, self.images)
        self._tasks.hooks.append(self._image_roots)
        self.networks = NetworkService()
        """The host's networks (create, list, get, remove): :mod:`.networks`."""
        self._network_attachments = NetworkAttachments(
            self._session, Attachments(self.networks, self.address, self.namespace)
        )
        self._tasks.hooks.append(self._network_attachments)

    # -- connection -----------------------------------------------------------------

    async def open(self) -> Self:
        """Connect and check that containerd answers; raises Unavailable if it does not."""
        if self._connection.methods is not None:
            return self
        self._connection.open()
        try:
            await self.version()
        except Unavailable as error:
            await self.close()
            raise Unavailable(self._unreachable_message(error.details)) from None
        if self.backend is not None:
            self._dispatcher = EventDispatcher(self.backend.process_event, self._after_delivery)
        stream = EventStream(self._connection, self._on_event)
        self._session.stream = stream
        try:
            await stream.start()
            # What a client killed mid-way through a networked create or delete left.
            await self._network_attachments.reconcile()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Stop the event stream, let queued events reach the backend, and close; idempotent.

        Every FIFO end this client holds is closed; the FIFO files of live
        processes stay, so a restarted client can :meth:`restore` them.
        """
        stream, self._session.stream = self._session.stream, None
        if stream is not None:
            await stream.close()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            await dispatcher.close()
        self._stdio.close()
        await self._session.settle()
        for listener in list(self._listeners):
            listener.put_nowait(None)
        await self._connection.close()

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
        if errors.needs_root(details):
            return (
                f"containerd at {self.address} refused the connection: permission denied"
                " (its socket is root's): run this as root"
            )
        if self._explicit_address:
            return f"containerd at {self.address} does not answer ({details})"
        return (
            f"no containerd answers at {self.address} (the embedded daemon's socket;"
            " $CONTAINERD_ADDRESS is not set): start one with 'lcd daemon start',"
            " run a libcontainerd.Supervisor in your program, or pass address="
        )

    def _sizes(self) -> dict[str, int]:
        """How much each owner holds, by table: what the leak tests watch."""
        sizes = {
            **self._tasks.sizes(),
            **self._execs.sizes(),
            **self._stdio.sizes(),
            **self._session.sizes(),
            **self._image_roots.sizes(),
            **self._network_attachments.sizes(),
            **self._user_namespaces.sizes(),
            "event listeners": len(self._listeners),
        }
        if self._session.stream is not None:
            sizes.update(self._session.stream.sizes())
        if self._dispatcher is not None:
            sizes.update(self._dispatcher.sizes())
        return sizes

    # -- events -----------------------------------------------------------------------

    def events(self) -> EventSubscription:
        """An async iterator of ``(container_id, EventType, EventInfo)`` from now on."""
        return EventSubscription(self._listeners)

    def _on_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        """Called by the stream, in order, for every event to report."""
        self._tasks.on_event(container_id, event, info)
        self._execs.on_event(container_id, event, info)
        for listener in self._listeners:
            listener.put_nowait((container_id, event, info))
        if self._dispatcher is not None:
            self._dispatcher.dispatch(container_id, event, info)
        else:
            self._after_delivery(container_id, event, info)

    def _after_delivery(self, container_id: str, event: EventType, info: EventInfo) -> None:
        """Once the backend has an exec's exit, an exec of ours is released (Docker's order)."""
        self._execs.after_delivery(container_id, event, info)

    # -- the contract ---------------------------------------------------------------

    async def version(self) -> Version:
        """containerd's version; raises Unavailable when it cannot be reached."""
        session = self._session
        reply = await session.call(session.methods.version.version, empty_pb2.Empty(), "version")
        return Version(version=reply.version, revision=reply.revision)

    async def create(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        runtime_options: Mapping[str, Any] | None = None,
        *,
        image: str | Image | None = None,
        snapshotter: str | None = None,
        network: str | Attach | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Create a container from an OCI runtime spec (a JSON-shaped dict, see :mod:`oci`).

        ``runtime_options`` are runc v2 shim options by field name (``binary_name``,
        ``systemd_cgroup``, ``criu_path``, ...); without ``criu_path``, the first
        working CRIU found as :mod:`checkpoint` describes is recorded there. The
        spec's cgroups path defaults to ``/<namespace>/<container_id>``. Raises
        InvalidArgument (bad id, spec or option, before anything is sent),
        AlreadyExists, Unavailable. A root filesystem given by an absolute path
        must exist on this host (InvalidArgument otherwise): runc would only
        refuse it at :meth:`start`.

        With ``image`` (a name or an :class:`~libcontainerd.images.Image`) the root
        filesystem is a writable snapshot keyed by the container id, prepared in
        ``snapshotter`` (default: ``client.images.snapshotter``) on the image's
        top layer, which is unpacked first if needed; the container records
        image, snapshotter and snapshot key, its task gets the snapshot's mounts,
        and :meth:`delete` removes the snapshot. The spec's ``root.path`` is then
        ``"rootfs"`` (build the spec with :func:`oci.image_spec`): the image gives
        the root filesystem only. A user given by name (:func:`oci.with_username`,
        or the image's own) is resolved from the root filesystem's own
        ``/etc/passwd`` and ``/etc/group``: an unknown one raises InvalidArgument
        before the container exists. Also raises ImageNotFound, InvalidImage
        (content missing), DigestMismatch (a layer is not what its config says).

        With ``network`` (a network's name, or an :class:`~libcontainerd.networks.Attach`
        with published ports, hostname, DNS servers and extra hosts) the container
        gets a network namespace of its own, pinned, and an address on that
        network (CNI ADD runs now, before the container exists), with read-only
        ``/etc/resolv.conf``, ``/etc/hosts`` and ``/etc/hostname``; :meth:`delete`
        runs CNI DEL and unmounts it. The default network ``lcd0`` is made on
        first use. Also raises NotFound (no such network), AlreadyExists (a
        host port taken), NetworkError (a plugin failed or is missing).
        Without it the spec's namespaces are used as they are (runc brings
        ``lo`` up in a network namespace it makes: Docker's ``--network none``).

        ``labels`` are the container's own (``docker run --label``), beside
        those an image or a network records; :meth:`list_containers` reports
        them and :meth:`set_labels` changes them.
        """
        check_identifier(container_id)
        checked_labels = check_labels(labels or {})
        attach = attach_argument(network)
        oci.validate_spec(spec, image=image is not None)
        if image is None:
            _check_local_root(spec)
        if snapshotter is not None:
            check_identifier(snapshotter, "snapshotter")
        await self._tasks.create(
            container_id,
            spec,
            runtime_options,
            image=image,
            snapshotter=snapshotter or "",
            network=attach,
            labels=checked_labels,
        )

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
        AlreadyExists (a task exists: started twice), ExecutableNotFound (a
        NotFound: ``args[0]`` is not in the container), NotFound (its root
        filesystem is gone), LibcontainerdError with code ``UNKNOWN`` for
        other refusals of runc (e.g. an executable without the execute bit),
        Unavailable; what the callback raises propagates.

        After Unavailable or DeadlineExceeded, call start() again on the same
        client: it finds out what the interrupted call did, never runs the
        process twice, and returns its pid (README, "Errors").

        With ``checkpoint_dir`` (made by :meth:`create_checkpoint`) the new task
        is restored from it, and its processes go on where they were; stdio
        works as for a new task (a callback, a :class:`LogFile`, stdin, a new
        terminal for a terminal container). That also raises InvalidArgument for a directory that
        is missing or holds no checkpoint (before anything is sent) or whose
        images CRIU refuses (with CRIU's reasons; no task is left behind), or
        whose user namespace is not the container's (CRIU would restore the
        checkpoint's maps) or whose images that namespace's root may not read,
        and CheckpointUnsupported when no working CRIU is found.
        """
        check_identifier(container_id)
        return await self._tasks.start(container_id, checkpoint_dir, with_stdin, attach_stdio)

    async def spec(self, container_id: str) -> dict[str, Any]:
        """The container's OCI runtime spec, as containerd holds it (one Containers.Get).

        What :meth:`create` sent, with the cgroups path it filled in; handy to
        build an exec's process from the container's own (its env, user and
        working directory). Raises NotFound, Unavailable, LibcontainerdError
        when the stored spec is not JSON.
        """
        check_identifier(container_id)
        return await self._session.spec(container_id, "read the spec of")

    async def set_labels(self, container_id: str, labels: Mapping[str, str]) -> dict[str, str]:
        """Set the given labels of the container (a value of ``""`` removes one), leaving
        the others; returns all its labels. One Containers.Update, whatever the task's state.
        Raises InvalidArgument (a bad label), NotFound, Unavailable."""
        check_identifier(container_id)
        return await self._tasks.set_labels(container_id, check_labels(labels, removals=True))

    async def network_info(self, container_id: str) -> NetworkInfo | None:
        """The container's network (addresses, gateway, MAC, published ports), or None when
        it was created without ``network=``. Raises NotFound (no such container)."""
        check_identifier(container_id)
        info = self._network_attachments.info(container_id)
        if info is None:
            await self._session.container(container_id, "read the network of")
        return info

    async def close_stdin(self, container_id: str, process_id: str) -> None:
        """Deliver EOF to a process's stdin: our writer is closed after what it buffered.

        The shim is told with CloseIO (the process sees EOF only once both ends
        are closed). Raises InvalidArgument, NotFound (no such container,
        task or process), Unavailable.
        """
        check_identifier(container_id)
        wire_exec_id(process_id)
        await self._stdio.close_stdin(container_id, process_id)

    async def resize_terminal(
        self, container_id: str, process_id: str, width: int, height: int
    ) -> None:
        """Set the size of a process's terminal, in columns and rows (1 to 65535).

        A process without a terminal ignores it. Raises InvalidArgument (bad
        id or size, before sending), NotFound, Unavailable.
        """
        check_identifier(container_id)
        exec_id = wire_exec_id(process_id)
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
        session = self._session
        await session.task_call(
            session.methods.tasks.resize_pty,
            tasks_pb2.ResizePtyRequest(
                container_id=container_id, exec_id=exec_id, width=width, height=height
            ),
            container_id,
            "resize the terminal of",
            process_id,
        )

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
        message says which), ExecutableNotFound (a NotFound: ``args[0]`` is
        not in the container), LibcontainerdError with code ``UNKNOWN`` for
        other refusals of runc (e.g. no execute bit), Unavailable; what the
        callback raises propagates.
        """
        check_identifier(container_id)
        exec_id = check_identifier(process_id, "process id")
        if exec_id == INIT_PROCESS_ID:
            raise InvalidArgument(
                f"process id {INIT_PROCESS_ID!r} names the container's main process;"
                " choose another id for an exec"
            )
        oci.validate_process(process_spec)
        return await self._execs.exec(container_id, exec_id, process_spec, with_stdin, attach_stdio)

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
        return await self._tasks.restore(container_id, attach_stdio)

    async def signal_process(self, container_id: str, process_id: str, signal: int | str) -> None:
        """Send ``signal`` (a number, or a name like ``"SIGTERM"``) to a process.

        ``process_id`` is :data:`INIT_PROCESS_ID` for the container's main process.
        Raises InvalidArgument (bad id or signal), NotFound (no such container,
        task or process, or it has already exited), Unavailable.
        """
        check_identifier(container_id)
        exec_id = wire_exec_id(process_id)
        number = parse_signal(signal)
        session = self._session
        await session.call(
            session.methods.tasks.kill,
            tasks_pb2.KillRequest(container_id=container_id, exec_id=exec_id, signal=number),
            f"signal process {process_id!r} of container {container_id!r}",
        )

    async def status(self, container_id: str) -> Status:
        """The state of the container's task. Raises NotFound when there is no task."""
        check_identifier(container_id)
        return await self._session.task_status(container_id, "get the status of")

    async def list_pids(self, container_id: str) -> list[int]:
        """The host pids of every process in the container. Raises NotFound."""
        return [
            process.pid for process in await self._processes(container_id, "list the processes of")
        ]

    async def summary(self, container_id: str) -> list[ProcessSummary]:
        """One entry per process: its pid and what containerd reports (e.g. ``exec_id``)."""
        summaries = []
        for process in await self._processes(container_id, "summarise the processes of"):
            exec_id = exec_id_of(process)
            info: dict[str, Any] = {"exec_id": exec_id} if exec_id else {}
            summaries.append(ProcessSummary(pid=process.pid, info=info))
        return summaries

    async def _processes(self, container_id: str, doing: str) -> Any:
        check_identifier(container_id)
        session = self._session
        reply = await session.task_call(
            session.methods.tasks.list_pids,
            tasks_pb2.ListPidsRequest(container_id=container_id),
            container_id,
            doing,
        )
        return reply.processes

    async def pause(self, container_id: str) -> None:
        """Freeze every process of the container.

        Raises InvalidArgument (bad id, before sending), NotFound (no such
        container, or no task), FailedPrecondition (the task is not running:
        already paused, created, or stopped), Unavailable.
        """
        check_identifier(container_id)
        session = self._session
        try:
            await session.task_call(
                session.methods.tasks.pause,
                tasks_pb2.PauseTaskRequest(container_id=container_id),
                container_id,
                "pause",
            )
        except LibcontainerdError as error:
            raise await self._session.wrong_state(
                error, container_id, "pause", Status.RUNNING
            ) from None

    async def resume(self, container_id: str) -> None:
        """Thaw a paused container.

        Raises InvalidArgument (bad id, before sending), NotFound (no such
        container, or no task), FailedPrecondition (the task is not paused:
        running, created, or stopped), Unavailable.
        """
        check_identifier(container_id)
        session = self._session
        try:
            await session.task_call(
                session.methods.tasks.resume,
                tasks_pb2.ResumeTaskRequest(container_id=container_id),
                container_id,
                "resume",
            )
        except LibcontainerdError as error:
            raise await self._session.wrong_state(
                error, container_id, "resume", Status.PAUSED
            ) from None

    async def wait(
        self,
        container_id: str,
        process_id: str = INIT_PROCESS_ID,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the contract's name (DESIGN.md)
    ) -> ExitStatus:
        """Block until the process exits; returns its :class:`ExitStatus` ``(code, exited_at)``.

        ``.oom_killed`` says whether the kernel had OOM-killed a process of the
        container by then. With ``timeout`` (seconds), raises DeadlineExceeded
        when the process has not exited by then, and leaves it running.
        Returns at once for a process that has already exited. A process this
        client's event stream tracks (one started, restored or seen starting
        while it was live) is waited for on its exit event, and a process whose
        exit it has reported (and whose task is not deleted) is answered from
        that event, with no call of its own; otherwise, or once the stream
        breaks, containerd is asked (Tasks.Wait), so a wait that meets a dead
        daemon raises Unavailable. Raises NotFound, InvalidArgument (a bad id or timeout).
        """
        check_identifier(container_id)
        exec_id = wire_exec_id(process_id)
        limit = _stop.check_grace(timeout)
        try:
            async with asyncio.timeout(limit) as deadline:
                return await self._wait(container_id, process_id, exec_id)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise DeadlineExceeded(
                f"process {process_id!r} of container {container_id!r} did not exit within"
                f" {limit:g} s (it is left running)"
            ) from None

    async def _wait(self, container_id: str, process_id: str, exec_id: str) -> ExitStatus:
        reported = await self._reported_exit(container_id, exec_id or container_id)
        if reported is not None:
            return reported
        session = self._session
        try:
            reply = await session.task_call(
                session.methods.tasks.wait,
                tasks_pb2.WaitRequest(container_id=container_id, exec_id=exec_id),
                container_id,
                "wait for",
                process_id,
            )
        except NotFound:
            # An exec is released once its exit is reported; its result is kept.
            known = self._execs.reported_exit(container_id, exec_id)
            if known is None:
                raise
            return known
        oom_killed = await session.oom_killed(container_id)
        return ExitStatus(reply.exit_status, _typeurl.to_datetime(reply.exited_at), oom_killed)

    async def _reported_exit(self, container_id: str, process_id: str) -> ExitStatus | None:
        """The exit of a process the event stream tracks, as reported; None to ask containerd.

        The exit event comes anyway, so waiting for it saves a Tasks.Wait
        call per process. A synthetic exit (``info.error`` set: the process
        was found deleted or replaced) is left to Tasks.Wait to answer.
        """
        stream = self._session.stream
        future = None if stream is None else stream.exit_of(container_id, process_id)
        if stream is None or future is None:
            return None
        try:
            info = await future
        finally:
            stream.forget_waiter(container_id, process_id, future)  # given up (cancelled)
        if info is None or info.error:
            return None
        return ExitStatus(info.exit_code, info.exited_at, info.oom_killed)

    async def delete_task(self, container_id: str) -> ExitStatus:
        """Delete the container's stopped task; returns its :class:`ExitStatus` (code, time).

        ``.oom_killed`` is read from the task's cgroup before it goes. Unlike
        Docker's, this never reports a made-up 255: a task that is still
        running or paused raises FailedPrecondition (kill it first), and a
        missing one raises NotFound.
        """
        check_identifier(container_id)
        return await self._tasks.delete_task(container_id)

    async def stop(
        self,
        container_id: str,
        timeout: float | None = 10,  # noqa: ASYNC109 - the contract's name (DESIGN.md)
        signal: int | str | None = None,
    ) -> ExitStatus:
        """Stop the container's main process as ``docker stop`` does; returns its exit.

        Sends ``signal``, by default the container's stop signal (the label
        ``io.containerd.image.config.stop-signal`` an image sets, else the
        spec's ``org.opencontainers.image.stopSignal`` annotation, else
        SIGTERM); after ``timeout`` seconds (None: never) without an exit,
        SIGKILL to every process of the task. A paused container is thawed
        after the signal so that it arrives. A stopped task just gives its
        exit. The task is not deleted. Raises InvalidArgument (bad id, timeout
        or signal, before sending), NotFound (no container or no task),
        Unavailable.
        """
        check_identifier(container_id)
        grace = _stop.check_grace(timeout)
        number = None if signal is None else parse_signal(signal)
        return await _stop.stop(self._session, self._wait_within, container_id, grace, number)

    async def remove(self, container_id: str, force: bool = False) -> None:
        """Delete the container and its task, whatever state the task is in, as ``docker rm`` does.

        A created or stopped task is deleted, then the container. A running,
        paused or unknown one raises FailedPrecondition unless ``force``:
        then every process of the task is killed (SIGKILL) first. Raises
        InvalidArgument (bad id), NotFound (no such container), Unavailable.
        """
        check_identifier(container_id)
        await _stop.remove(self._session, self._tasks, self._wait_within, container_id, force)

    async def _wait_within(self, container_id: str, limit: float | None) -> ExitStatus:
        return await self.wait(container_id, timeout=limit)

    async def delete(self, container_id: str) -> None:
        """Delete the container and everything this client created for it (its FIFO folder too).

        Raises FailedPrecondition while the container still has a task (delete
        the task first), NotFound, Unavailable. The check costs a Tasks.Get,
        except right after this client's own :meth:`delete_task`, when its
        event stream has shown no task created since (containerd 1.6 itself
        would delete a container under a running task, orphaning its shim).
        """
        check_identifier(container_id)
        await self._tasks.delete(container_id)

    async def stats(self, container_id: str) -> Stats:
        """One metrics sample of the container's task (cgroup v1 or v2, see :mod:`metrics`).

        A task that has exited still has its cgroup, and so its final numbers,
        until it is deleted. Raises NotFound (no such container, or no task),
        FailedPrecondition (containerd has no metrics for a stopped task),
        NotImplemented (a metrics type this library cannot decode), Unavailable.
        """
        check_identifier(container_id)
        return await _task_resources.stats(self._session, container_id)

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
        async for sample in _task_resources.stats_stream(
            self._session, container_id, interval, self.wait
        ):
            yield sample

    async def update_resources(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Change the task's OCI ``linux.resources`` (memory, cpu, pids, blkio, ...).

        Raises InvalidArgument, before sending when a value is malformed or out
        of the kernel's range, and after it when the runtime refuses the
        values (a cpuset this host lacks, a memory limit below current usage;
        the message gives the runtime's reason); NotFound; Unavailable.
        """
        check_identifier(container_id)
        oci.validate_resources(resources)
        await _task_resources.update(self._session, container_id, resources)

    async def create_checkpoint(
        self, container_id: str, checkpoint_dir: str | os.PathLike[str], exit: bool = False
    ) -> None:
        """Write the running container's CRIU images into ``checkpoint_dir``.

        The directory must not exist yet or be empty; the images are written
        beside it and renamed into place when complete, so a failure leaves
        nothing behind. With ``exit`` the container stops once checkpointed
        (its task ends as if killed, status 137). A user-namespaced container's
        images are given to the group of its root's host gid (CRIU restores them
        as that root), and stay closed to others. Raises, before the container
        is touched: InvalidArgument (a path that cannot be a directory),
        AlreadyExists (a directory with files in it), NotFound,
        CheckpointUnsupported (no working CRIU, with ``criu check``'s reasons);
        after: FailedPrecondition (the task has stopped, or CRIU could not dump
        it, with CRIU's reasons; the container keeps running), Unavailable.
        """
        check_identifier(container_id)
        await _task_resources.checkpoint_task(self._session, container_id, checkpoint_dir, exit)

    async def list_containers(self) -> list[ContainerInfo]:
        """Every container of the namespace with its task's state, in containerd's order (by id).

        Two requests, sent together: Containers.List and Tasks.List. A task
        whose container disappears between them is left out. Raises Unavailable.
        """
        return await self._tasks.list_containers()
