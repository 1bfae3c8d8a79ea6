"""What the client's rooms share: the open connection, the event stream, and narrowing look-ups.

A :class:`Session` is one open :class:`AsyncClient` as its rooms (tasks, execs,
stdio) see it. It owns nothing of theirs; it makes calls in the client's
namespace, tells the event stream which processes are alive, runs background
clean-ups the client awaits at close, and turns a bare ``NotFound`` into one
that says whether the container, its task or the process is missing (the
extra look-ups are made only when a call has failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

from google.protobuf.message import Message

from . import _typeurl
from ._api.containerd.api.services.containers.v1 import containers_pb2
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.types.task import task_pb2
from ._identifiers import check_identifier
from ._rpc import Connection, Methods, Unary
from .errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    LibcontainerdError,
    NotFound,
    Unavailable,
    runtime_reason,
)
from .events import EventStream
from .types import INIT_PROCESS_ID, Status

__all__ = [
    "CLEANUP_TIMEOUT",
    "CUT",
    "Session",
    "exec_id_taken",
    "status_of",
    "wire_exec_id",
]

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)

# Clean-up calls made on the side (deleting a failed or exited exec, pending
# CloseIO at close) get their own limit: the caller's may be gone, and an old
# shim could hang (moby#38383).
CLEANUP_TIMEOUT: Final = 15.0

# A call whose answer was lost: it may or may not have taken effect in containerd.
CUT: Final = (Unavailable, DeadlineExceeded)

_STATUS_BY_WIRE: Final[dict[int, Status]] = {
    task_pb2.UNKNOWN: Status.UNKNOWN,
    task_pb2.CREATED: Status.CREATED,
    task_pb2.RUNNING: Status.RUNNING,
    task_pb2.STOPPED: Status.STOPPED,
    task_pb2.PAUSED: Status.PAUSED,
    task_pb2.PAUSING: Status.PAUSING,
}


def status_of(wire: int) -> Status:
    """The contract's Status for a task state as containerd sends it."""
    return _STATUS_BY_WIRE.get(wire, Status.UNKNOWN)


def wire_exec_id(process_id: str) -> str:
    """The exec id a request carries for ``process_id``: ``""`` for the init process."""
    if process_id == INIT_PROCESS_ID:
        return ""
    return check_identifier(process_id, "process id")


def exec_id_taken(doing: str, process: task_pb2.Process) -> AlreadyExists:
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


class Session:
    """One open client as its rooms see it (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.namespace = connection.namespace
        self.stream: EventStream | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def methods(self) -> Methods:
        methods = self.connection.methods
        if methods is None:
            raise FailedPrecondition(
                "the client is not open: use 'async with AsyncClient(...)' or 'await client.open()'"
            )
        return methods

    async def call(
        self, method: Unary[Request, Response], request: Request, context: str
    ) -> Response:
        return await self.connection.call(method, request, context)

    # -- the event stream -----------------------------------------------------------

    def track(self, container_id: str, process_id: str, pid: int) -> bool:
        """Tell the event stream a process is alive, so its exit is found even if missed.

        False when the stream has reported its exit already.
        """
        return self.stream is None or self.stream.track(container_id, process_id, pid)

    def discard_exit(self, container_id: str, process_id: str, pid: int) -> None:
        """The exit of this process is not news (it never ran): the stream drops it."""
        if self.stream is not None:
            self.stream.discard(container_id, process_id, pid)

    def find_oom_count(self, container_id: str, pid: int) -> None:
        """The task was created with init ``pid`` (alive until started): see EventStream."""
        if self.stream is not None:
            self.stream.find_oom_count(container_id, pid)

    async def oom_killed(self, container_id: str, process_id: str | None = None) -> bool:
        """Whether a process of the container was OOM-killed (its cgroup's count, read now).

        With ``process_id``, an exit the stream reported for it answers without
        a call. Without a stream: False.
        """
        stream = self.stream
        if stream is None:
            return False
        if process_id is not None:
            reported = stream.reported_oom(container_id, process_id)
            if reported is not None:
                return reported
        return await stream.oom_killed_now(container_id)

    # -- background clean-ups -------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a clean-up in the background; :meth:`settle` awaits it at close."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def settle(self) -> None:
        """Let background clean-ups finish (bounded); cancel what is still running then."""
        if self._background:
            _, pending = await asyncio.wait(self._background, timeout=CLEANUP_TIMEOUT)
            for task in pending:
                task.cancel()

    def sizes(self) -> dict[str, int]:
        """How much this owner holds (for leak checks)."""
        return {"background tasks": len(self._background)}

    # -- look-ups -------------------------------------------------------------------

    async def container(self, container_id: str, doing: str) -> containers_pb2.Container:
        """The container's record (one Containers.Get); NotFound says what could not be done."""
        try:
            reply = await self.call(
                self.methods.containers.get,
                containers_pb2.GetContainerRequest(id=container_id),
                f"look up container {container_id!r}",
            )
        except NotFound:
            raise NotFound(
                f"cannot {doing} container {container_id!r}: no such container"
            ) from None
        return reply.container

    async def container_exists(self, container_id: str) -> bool:
        try:
            await self.container(container_id, "look up")
        except NotFound:
            return False
        return True

    async def spec(self, container_id: str, doing: str) -> dict[str, Any]:
        """The container's OCI spec as containerd holds it; LibcontainerdError if not JSON."""
        container = await self.container(container_id, doing)
        try:
            document = _typeurl.unpack_json(container.spec)
        except ValueError as error:
            document = error
        if not isinstance(document, dict):
            raise LibcontainerdError(
                f"the spec of container {container_id!r} is not a JSON object: {document}"
            )
        return document

    async def init_task(self, container_id: str) -> tasks_pb2.GetResponse:
        """The container's task as containerd sees it (one Tasks.Get); raises NotFound."""
        return await self.call(
            self.methods.tasks.get,
            tasks_pb2.GetRequest(container_id=container_id),
            f"look up the task of container {container_id!r}",
        )

    async def exec_process(self, container_id: str, exec_id: str) -> task_pb2.Process:
        """A process's state as containerd has it (Tasks.Get; exec id "" is the init); NotFound."""
        reply = await self.call(
            self.methods.tasks.get,
            tasks_pb2.GetRequest(container_id=container_id, exec_id=exec_id),
            f"look up exec {exec_id!r} of container {container_id!r}",
        )
        return reply.process

    async def task_call(
        self,
        method: Unary[Request, Response],
        request: Request,
        container_id: str,
        doing: str,
        process_id: str = INIT_PROCESS_ID,
    ) -> Response:
        """A call on a container's task; its NotFound says whether container, task or process."""
        try:
            return await self.call(method, request, f"{doing} container {container_id!r}")
        except NotFound:
            raise await self.no_task(container_id, doing, process_id) from None

    async def task_status(self, container_id: str, doing: str) -> Status:
        """The state of the container's task (one Tasks.Get); NotFound says what is missing."""
        reply = await self.task_call(
            self.methods.tasks.get,
            tasks_pb2.GetRequest(container_id=container_id),
            container_id,
            doing,
        )
        return status_of(reply.process.status)

    async def wrong_state(
        self, error: LibcontainerdError, container_id: str, doing: str, needed: Status
    ) -> LibcontainerdError:
        """FailedPrecondition when the task is not ``needed`` (one Tasks.Get, on failure only).

        The shim refuses a pause or resume of the wrong state with code Unknown
        ("cannot resume a running process"); a typed error, or a failure with
        the task in the needed state, is returned as it was.
        """
        if type(error) is not LibcontainerdError:
            return error
        try:
            state = await self.task_status(container_id, doing)
        except LibcontainerdError:
            return error
        if state is needed:
            return error
        return FailedPrecondition(
            f"cannot {doing} container {container_id!r}: its task is {state.value},"
            f" not {needed.value} ({runtime_reason(error.details)})",
            code=error.code,
            details=error.details,
        )

    async def no_task(
        self, container_id: str, doing: str, process_id: str = INIT_PROCESS_ID
    ) -> NotFound:
        """Say whether the container, its task or the process is missing (calls made on failure)."""
        if not await self.container_exists(container_id):
            return NotFound(f"cannot {doing} container {container_id!r}: no such container")
        if process_id != INIT_PROCESS_ID:
            try:
                await self.init_task(container_id)
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

    async def not_running(self, container_id: str, doing: str) -> LibcontainerdError:
        """NotFound without the container, FailedPrecondition when only its task is missing."""
        if not await self.container_exists(container_id):
            return NotFound(f"cannot {doing}: no such container")
        return FailedPrecondition(f"cannot {doing}: the container is not running (it has no task)")
