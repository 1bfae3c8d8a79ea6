"""Containers and their tasks: create, start, restore, delete, and the recovery of cut calls.

:class:`TaskLifecycle` makes the containerd calls of a container's life and
owns what the client remembers per container: its terminal flag (saves a
Containers.Get per start), the tasks it deleted itself (saves a Tasks.Get per
delete), and the starts and creates whose answer was lost, so that the next
start() finds out what they did and never runs a process twice.

Capabilities that keep resources beside a container (an image's snapshot, a
network namespace) plug in as :class:`ContainerHook` objects: they run before
Containers.Create (and may change the spec and labels) and after it, before
Tasks.Create, before Containers.Delete and after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf import field_mask_pb2

from . import _typeurl, checkpoint
from ._api.containerd.api.services.containers.v1 import containers_pb2
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.types.task import task_pb2
from ._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from ._execs import ExecTable
from ._process_stdio import AttachStdio, ProcessStdio
from ._session import CUT, Session, status_of
from .errors import (
    AlreadyExists,
    Cancelled,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
    Unavailable,
)
from .events import NO_PID
from .stdio import StdioCallback
from .types import INIT_PROCESS_ID, ContainerInfo, EventInfo, EventType, ExitStatus, Status

__all__ = ["RUNC_RUNTIME", "ContainerHook", "NewContainer", "TaskLifecycle", "runc_options"]

log = logging.getLogger(__name__)

RUNC_RUNTIME: Final = "io.containerd.runc.v2"

_RUNC_OPTION_FIELDS: Final = frozenset(field.name for field in runc_pb2.Options.DESCRIPTOR.fields)
_RUNC_BOOL_OPTIONS: Final = frozenset(
    field.name for field in runc_pb2.Options.DESCRIPTOR.fields if field.type == field.TYPE_BOOL
)


def runc_options(runtime_options: Mapping[str, Any] | None, runc_root: str) -> runc_pb2.Options:
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
    if values.get("root") is None:  # unset, or None: this daemon's runc root
        values["root"] = runc_root
    try:
        return runc_pb2.Options(**values)
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidArgument(f"invalid runtime options: {error}") from None


@dataclass
class NewContainer:
    """A container about to be created, as hooks see it: they may change spec and labels.

    ``image_source`` is what the caller passed as ``image`` (a name or an
    Image); the hook that prepares its root records ``image`` (the name),
    ``snapshotter`` (given by the caller, or its default) and ``snapshot_key``.
    ``network`` is what the caller passed as ``network`` (the network room's).
    """

    id: str
    spec: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    snapshotter: str = ""
    snapshot_key: str = ""
    image: str = ""
    image_source: object = None
    network: object = None


class ContainerHook:
    """A capability that keeps resources beside a container; every step does nothing here.

    ``before_create`` runs before Containers.Create; if the create then fails,
    ``undo_create`` runs, and ``after_create`` once it succeeded (it must not
    raise: the container exists). ``before_task_create`` may add to the task
    request (e.g. the root filesystem's mounts). ``before_delete`` runs before
    Containers.Delete with the container's record (read only when a hook's
    ``needs_record`` says so; otherwise a record holding only the id),
    ``after_delete`` after it. A hook that raises stops the step it runs before.
    """

    async def before_create(self, container: NewContainer) -> None:
        return None

    async def after_create(self, container: NewContainer) -> None:
        return None

    async def undo_create(self, container: NewContainer) -> None:
        return None

    async def before_task_create(
        self, container_id: str, request: tasks_pb2.CreateTaskRequest
    ) -> None:
        return None

    def needs_record(self, container_id: str) -> bool:
        """Whether ``before_delete`` needs the container's record read from containerd."""
        return True

    async def before_delete(self, container: containers_pb2.Container) -> None:
        return None

    async def after_delete(self, container_id: str) -> None:
        return None


class TaskLifecycle:
    """The calls of a container's life, and what the client remembers per container."""

    def __init__(
        self, session: Session, stdio: ProcessStdio, execs: ExecTable, runc_root: str
    ) -> None:
        self._session = session
        self._stdio = stdio
        self._execs = execs
        self._runc_root = runc_root
        self.hooks: list[ContainerHook] = []
        # Saves a Containers.Get on start(): the only spec fact a task needs.
        self._terminal: dict[str, bool] = {}
        # Containers whose task this client deleted, with the event stream's subscription
        # count then: while no task has been created since, delete() skips its Tasks.Get.
        self._deleted_tasks: dict[str, int] = {}
        # Starts whose answer was lost (containerd died, or the deadline passed, during
        # Tasks.Start): container id -> the pid of the task created for it. The next
        # start() of the container finds out what became of it, and never runs it twice.
        self._cut_starts: dict[str, int] = {}
        # Containers whose Tasks.Create was cut: a task may exist that was never started.
        self._cut_creates: set[str] = set()

    def on_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        if event is EventType.CREATE:
            self._deleted_tasks.pop(container_id, None)  # a task again, maybe another client's

    def sizes(self) -> dict[str, int]:
        """How much this owner holds, by table (for leak checks)."""
        return {
            "terminal flags": len(self._terminal),
            "deleted tasks": len(self._deleted_tasks),
            "cut starts": len(self._cut_starts),
            "cut creates": len(self._cut_creates),
        }

    # -- create -----------------------------------------------------------------------

    async def create(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        runtime_options: Mapping[str, Any] | None,
        image: object = None,
        snapshotter: str = "",
        network: object = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Containers.Create with runc options and the default cgroups path (checked by caller).

        ``image`` and ``snapshotter`` are for the hooks (the image room prepares the root),
        ``network`` too (the network room attaches the container).
        """
        options = runc_options(runtime_options, self._runc_root)
        if "criu_path" not in (runtime_options or {}):
            # runc's CRIU is fixed when a task is created: record a working one now.
            options.criu_path = await checkpoint.usable_criu()
        # Only linux.cgroupsPath may change: copy the two levels on its way, not the spec.
        document = dict(spec)
        linux = document["linux"] = dict(document.get("linux") or {})
        if not linux.get("cgroupsPath"):
            linux["cgroupsPath"] = f"/{self._session.namespace}/{container_id}"
        new = NewContainer(
            id=container_id,
            spec=document,
            labels=dict(labels or {}),
            snapshotter=snapshotter,
            image_source=image,
            network=network,
        )
        prepared: list[ContainerHook] = []
        try:
            for hook in self.hooks:
                prepared.append(hook)
                await hook.before_create(new)
            container = containers_pb2.Container(
                id=container_id,
                labels=new.labels,
                image=new.image,
                snapshotter=new.snapshotter,
                snapshot_key=new.snapshot_key,
                spec=_typeurl.pack_json(_typeurl.OCI_SPEC, new.spec),
                runtime=containers_pb2.Container.Runtime(
                    name=RUNC_RUNTIME, options=_typeurl.pack(options)
                ),
            )
            await self._session.call(
                self._session.methods.containers.create,
                containers_pb2.CreateContainerRequest(container=container),
                f"create container {container_id!r}",
            )
        except BaseException:
            for hook in reversed(prepared):
                with contextlib.suppress(Exception):
                    await hook.undo_create(new)
            raise
        for hook in self.hooks:
            try:
                await hook.after_create(new)
            except Exception:
                log.exception("container %s: a hook failed after its creation", container_id)
        self._terminal[container_id] = bool(new.spec.get("process", {}).get("terminal", False))

    # -- start ------------------------------------------------------------------------

    async def start(
        self,
        container_id: str,
        checkpoint_dir: str | os.PathLike[str] | None,
        with_stdin: bool,
        attach_stdio: AttachStdio | None,
    ) -> int:
        """Create and start the task (see AsyncClient.start); returns the init pid."""
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
        stdio, fifos = await self._stdio.open(
            container_id, INIT_PROCESS_ID, terminal, with_stdin, attach_stdio
        )
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
                self._stdio.drop(fifos)
            if isinstance(error, CUT):
                self._cut_creates.add(container_id)  # cleared by the next start()
            else:
                await self._discard_failed_create(container_id, error)
            raise
        if fifos is not None:
            fifos.attach(created.pid)  # the shim opens the init process's stdio in Create
        self._session.find_oom_count(container_id, created.pid)
        try:
            started = await self._start_task(container_id, f"start container {container_id!r}")
        except CUT as error:
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
        self._session.track(container_id, container_id, started.pid)
        return started.pid

    async def _start_task(self, container_id: str, context: str) -> tasks_pb2.StartResponse:
        session = self._session
        return await session.call(
            session.methods.tasks.start, tasks_pb2.StartRequest(container_id=container_id), context
        )

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
        session = self._session
        try:
            reply = await session.init_task(container_id)
        except NotFound:
            exists = await session.container_exists(container_id)
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
            session.track(container_id, container_id, pid)
            return pid
        try:
            started = await self._start_task(container_id, f"start container {container_id!r}")
        except CUT:
            raise
        except LibcontainerdError:
            # runc refuses a second start of a process that the cut one had let run.
            del self._cut_starts[container_id]
            with contextlib.suppress(LibcontainerdError):
                reply = await session.init_task(container_id)
                if reply.process.pid == pid and reply.process.status != task_pb2.CREATED:
                    session.track(container_id, container_id, pid)
                    return pid
            await self._discard_task(container_id)
            raise
        del self._cut_starts[container_id]
        session.track(container_id, container_id, started.pid)
        return started.pid

    async def _clear_cut_create(self, container_id: str) -> None:
        """Delete the task that a cut Tasks.Create made, if it did: it was never started.

        Its exit (containerd publishes one when such a task is deleted) is not
        reported: the process never ran.
        """
        session = self._session
        try:
            reply = await session.init_task(container_id)
        except NotFound:
            self._cut_creates.discard(container_id)
            return  # none made, or half made (Create then clears it)
        self._cut_creates.discard(container_id)
        if reply.process.status != task_pb2.CREATED:
            return  # started by someone else: Create then raises AlreadyExists
        session.discard_exit(container_id, container_id, reply.process.pid)
        log.info(
            "container %s: deleting the task that an interrupted create made (never started)",
            container_id,
        )
        await self._delete_quietly(container_id, "the never-started task")

    async def _start_from_checkpoint(
        self,
        container_id: str,
        checkpoint_dir: str | os.PathLike[str],
        with_stdin: bool,
        attach_stdio: AttachStdio | None,
    ) -> int:
        """Create the task restored from ``checkpoint_dir`` (runc ``criu_image_path``), start it.

        Stdio works as for a new task: the shim hands runc new pipes, which
        CRIU puts in place of the checkpointed ones, and copies them to the
        FIFOs (or the log file); a terminal container gets a new terminal. The
        shim opens its FIFO ends only in Start, after ``runc restore``, not in
        Create: our keepers stay until Start has answered (as for an exec), or
        our readers would see EOF first, close, and the shim's open for writing
        would wait forever. Raises as AsyncClient.start says.
        """
        source = checkpoint.image_directory(checkpoint_dir)
        container = await self._session.container(container_id, "restore")
        try:
            spec = _typeurl.unpack_json(container.spec) if container.spec.value else {}
        except ValueError:
            spec = {}
        process = spec.get("process") if isinstance(spec, dict) else None
        terminal = bool(isinstance(process, dict) and process.get("terminal", False))
        runtime = _typeurl.unpack(container.runtime.options, runc_pb2.Options) or runc_pb2.Options()
        criu = await checkpoint.find_criu(runtime.criu_path)
        stdio, fifos = await self._stdio.open(
            container_id, INIT_PROCESS_ID, terminal, with_stdin, attach_stdio
        )
        try:
            await self._create_task(
                tasks_pb2.CreateTaskRequest(
                    container_id=container_id,
                    terminal=terminal,
                    stdin=stdio.stdin,
                    stdout=stdio.stdout,
                    stderr=stdio.stderr,
                    options=checkpoint.restore_options(runtime, source, criu),
                ),
                f"create the restored task of container {container_id!r}",
            )
        except BaseException as error:
            if fifos is not None:
                self._stdio.drop(fifos)
            await self._discard_failed_create(container_id, error)
            raise
        try:
            started = await self._start_task(
                container_id, f"restore container {container_id!r} from {source}"
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
        if fifos is not None:
            fifos.attach(started.pid)  # the shim opened its ends in Start, after runc restore
        self._session.track(container_id, container_id, started.pid)
        self._session.find_oom_count(container_id, started.pid)
        return started.pid

    async def _terminal_of(self, container_id: str) -> bool:
        """Whether the container's process wants a terminal; remembered from create()."""
        known = self._terminal.get(container_id)
        if known is None:
            process = (await self._session.spec(container_id, "read the spec of")).get("process")
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
        session = self._session
        container_id = request.container_id
        for hook in self.hooks:
            await hook.before_task_create(container_id, request)
        try:
            return self._created(
                request, await session.call(session.methods.tasks.create, request, context)
            )
        except AlreadyExists:
            try:
                await session.init_task(container_id)
            except NotFound:
                pass
            else:
                raise
        log.warning(
            "container %s had a task without a process (left by a containerd that died while"
            " creating it); deleting it and creating the task again",
            container_id,
        )
        # containerd 1.6 publishes an exit for it, with pid 0 (code 255) or -1 (code
        # 137): no process ran, so none is reported.
        for pid in (0, NO_PID):
            session.discard_exit(container_id, container_id, pid)
        await self._delete_quietly(container_id, "the half-made task")
        return self._created(
            request, await session.call(session.methods.tasks.create, request, context)
        )

    def _created(
        self, request: tasks_pb2.CreateTaskRequest, reply: tasks_pb2.CreateTaskResponse
    ) -> tasks_pb2.CreateTaskResponse:
        # Tracked from its creation, not its start: a start whose answer is lost
        # to containerd's death may still have run the process, and its exit
        # must then be found when the event stream reconnects.
        self._session.track(request.container_id, request.container_id, reply.pid)
        return reply

    async def _delete_quietly(self, container_id: str, what: str) -> None:
        session = self._session
        with contextlib.suppress(NotFound):
            await session.call(
                session.methods.tasks.delete,
                tasks_pb2.DeleteTaskRequest(container_id=container_id),
                f"delete {what} of container {container_id!r}",
            )

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
        session = self._session
        kill = tasks_pb2.KillRequest(container_id=container_id, signal=9, all=True)
        with contextlib.suppress(LibcontainerdError):
            await session.call(
                session.methods.tasks.kill, kill, "kill the task that failed to start"
            )
        with contextlib.suppress(LibcontainerdError):
            await session.call(
                session.methods.tasks.delete,
                tasks_pb2.DeleteTaskRequest(container_id=container_id),
                "delete the task that failed to start",
            )
        self.forget_task(container_id)

    # -- restore ----------------------------------------------------------------------

    async def restore(
        self, container_id: str, attach_stdio: StdioCallback | None
    ) -> tuple[bool, int]:
        """Find the task again (see AsyncClient.restore); returns ``(alive, pid)``."""
        session = self._session
        try:
            reply = await session.call(
                session.methods.tasks.get,
                tasks_pb2.GetRequest(container_id=container_id),
                f"restore container {container_id!r}",
            )
        except NotFound:
            if not await session.container_exists(container_id):
                raise NotFound(
                    f"cannot restore container {container_id!r}: no such container"
                ) from None
            return False, 0
        process = reply.process
        alive = process.status != task_pb2.STOPPED
        if alive:
            await self._execs.adopt(container_id)
        if attach_stdio is not None:
            await self._stdio.reattach(container_id, process, attach_stdio)
        if alive:
            session.track(container_id, container_id, process.pid)
            session.find_oom_count(container_id, process.pid)
        return alive, process.pid

    # -- delete -----------------------------------------------------------------------

    async def delete_task(self, container_id: str) -> ExitStatus:
        """Tasks.Delete of a stopped task (see AsyncClient.delete_task)."""
        session = self._session
        # Read before the delete: the task's cgroup, and its OOM count, go with it.
        oom_killed = await session.oom_killed(container_id, container_id)
        try:
            reply = await session.task_call(
                session.methods.tasks.delete,
                tasks_pb2.DeleteTaskRequest(container_id=container_id),
                container_id,
                "delete the task of",
            )
        except (NotFound, Cancelled, Unavailable):
            raise
        except LibcontainerdError as error:
            state = await session.task_status(container_id, "get the status of")
            if state in (Status.RUNNING, Status.PAUSED, Status.PAUSING):
                raise FailedPrecondition(
                    f"cannot delete the task of container {container_id!r}: it is {state}"
                    " (signal it and wait for its exit first)"
                ) from None
            raise error
        self.forget_task(container_id)
        stream = session.stream
        if stream is not None and stream.live:
            self._deleted_tasks[container_id] = stream.subscriptions
        return ExitStatus(reply.exit_status, _typeurl.to_datetime(reply.exited_at), oom_killed)

    def forget_task(self, container_id: str) -> None:
        """The task is gone: each owner forgets what it kept for it."""
        self._cut_starts.pop(container_id, None)
        self._cut_creates.discard(container_id)
        self._execs.forget(container_id)
        if self._session.stream is not None:
            self._session.stream.forget_task(container_id)
        self._stdio.forget(container_id)

    async def set_labels(self, container_id: str, labels: Mapping[str, str]) -> dict[str, str]:
        """Containers.Update of the given labels only ("" removes one); returns all of them."""
        if not labels:
            # An empty mask would make Update replace the whole record (spec included).
            record = await self._session.container(container_id, "set the labels of")
            return dict(record.labels)
        container = containers_pb2.Container(id=container_id, labels=labels)
        mask = field_mask_pb2.FieldMask(paths=[f"labels.{key}" for key in labels])
        try:
            reply = await self._session.call(
                self._session.methods.containers.update,
                containers_pb2.UpdateContainerRequest(container=container, update_mask=mask),
                f"set the labels of container {container_id!r}",
            )
        except NotFound:
            raise NotFound(
                f"cannot set the labels of container {container_id!r}: no such container"
            ) from None
        return dict(reply.container.labels)

    async def delete(self, container_id: str) -> None:
        """Containers.Delete, refused while a task exists (see AsyncClient.delete)."""
        session = self._session
        if not self._task_known_deleted(container_id):
            await self._refuse_a_task(container_id)
        if self.hooks:
            if any(hook.needs_record(container_id) for hook in self.hooks):
                record = await session.container(container_id, "delete")
            else:
                record = containers_pb2.Container(id=container_id)
            for hook in self.hooks:
                await hook.before_delete(record)
        try:
            await session.call(
                session.methods.containers.delete,
                containers_pb2.DeleteContainerRequest(id=container_id),
                f"delete container {container_id!r}",
            )
        except NotFound:
            raise NotFound(f"cannot delete container {container_id!r}: no such container") from None
        finally:
            self._terminal.pop(container_id, None)
            self._deleted_tasks.pop(container_id, None)
            self.forget_task(container_id)
        for hook in self.hooks:
            await hook.after_delete(container_id)

    async def list_containers(self) -> list[ContainerInfo]:
        """Containers.List and Tasks.List, sent together, joined by container id."""
        session = self._session
        containers, tasks = await asyncio.gather(
            session.call(
                session.methods.containers.list,
                containers_pb2.ListContainersRequest(),
                "list containers",
            ),
            session.call(session.methods.tasks.list, tasks_pb2.ListTasksRequest(), "list tasks"),
        )
        # containerd 1.x names a listed task by ``id`` (= its container's id) and
        # leaves ``container_id`` empty; later versions may fill in either.
        by_container = {task.container_id or task.id: task for task in tasks.tasks}
        listing = []
        for container in containers.containers:
            task = by_container.get(container.id)
            info = ContainerInfo(
                id=container.id,
                created_at=_typeurl.to_datetime(container.created_at),
                labels=dict(container.labels),
                image=container.image,
                command=_spec_command(container),
            )
            if task is not None:
                status = status_of(task.status)
                stopped = status is Status.STOPPED
                info = dataclasses.replace(
                    info,
                    status=status,
                    pid=task.pid,
                    exit_code=task.exit_status if stopped else None,
                    exited_at=_typeurl.to_datetime(task.exited_at) if stopped else None,
                )
            listing.append(info)
        return listing

    def _task_known_deleted(self, container_id: str) -> bool:
        """This client deleted the task, and its stream, live throughout, saw none created since.

        A reconnect could have missed a task's create event, so the stream's
        subscription must be the one that was live at the delete.
        """
        subscription = self._deleted_tasks.get(container_id)
        stream = self._session.stream
        return (
            subscription is not None
            and stream is not None
            and stream.live
            and stream.subscriptions == subscription
        )

    async def _refuse_a_task(self, container_id: str) -> None:
        """Raise FailedPrecondition if the container has a task (one Tasks.Get)."""
        try:
            reply = await self._session.init_task(container_id)
        except NotFound:
            return
        state = status_of(reply.process.status)
        raise FailedPrecondition(
            f"cannot delete container {container_id!r}: it still has a task ({state});"
            " call delete_task() first"
        )


def _spec_command(container: containers_pb2.Container) -> tuple[str, ...]:
    """The spec's process arguments; () for a spec that is not what the OCI shape says."""
    try:
        spec = _typeurl.unpack_json(container.spec)
    except ValueError:
        return ()
    process = spec.get("process") if isinstance(spec, dict) else None
    args = process.get("args") if isinstance(process, dict) else None
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        return ()
    return tuple(args)
