"""The client's execs: started, owned until their exit is reported, then released.

An exec this client made (or adopted when it restored a task) is *ours*: once
its exit event has reached the backend, and its Start has answered, its FIFOs
are removed and containerd's record of it deleted (DeleteProcess), as
Docker's daemon does, so its id is free again. Another client's execs are
left alone: deleting one under it would race its wait and its clean-up.
:class:`ExecTable` owns that bookkeeping and the exit results it keeps for
:meth:`AsyncClient.wait`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from typing import Any

from . import _typeurl
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.types.task import task_pb2
from ._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from ._identifiers import check_identifier
from ._process_stdio import AttachStdio, ProcessStdio
from ._session import CLEANUP_TIMEOUT, Session, exec_id_taken
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, LibcontainerdError, NotFound
from .types import INIT_PROCESS_ID, EventInfo, EventType, ExitStatus

__all__ = ["ExecTable", "exec_id_of"]

log = logging.getLogger(__name__)

ExecKey = tuple[str, str]  # (container id, exec id)


def exec_id_of(process: task_pb2.ProcessInfo) -> str:
    """The exec id runc's shim reports for a process of ListPids ("" for others)."""
    if not process.HasField("info"):
        return ""
    details = _typeurl.unpack(process.info, runc_pb2.ProcessDetails)
    return details.exec_id if details is not None else ""


class ExecTable:
    """The execs of one client: which are ours, their releases, and their reported exits."""

    def __init__(self, session: Session, stdio: ProcessStdio) -> None:
        self._session = session
        self._stdio = stdio
        # Exec exits seen on the stream, so wait() still answers once the exec
        # process has been released; dropped when the container's task is deleted.
        self._exits: dict[ExecKey, ExitStatus] = {}
        # Ours: key -> pid (0 until Start answers), until released.
        self._own: dict[ExecKey, int] = {}
        # Releases on their way, so an exec that reuses the id waits for its own.
        self._releases: dict[ExecKey, asyncio.Task[None]] = {}
        # (container id, exec id, pid) of execs released before their exit event came
        # (their id was reused): that event must not release the newer exec.
        self._superseded: set[tuple[str, str, int]] = set()
        # Ours whose exit was delivered while their Start was in flight.
        self._exited_while_starting: set[ExecKey] = set()

    async def exec(
        self,
        container_id: str,
        exec_id: str,
        process_spec: Mapping[str, Any],
        with_stdin: bool,
        attach_stdio: AttachStdio | None,
    ) -> int:
        """Exec and start the process (ids and spec checked by the caller); returns its pid."""
        process = copy.deepcopy(dict(process_spec))
        terminal = bool(process.get("terminal", False))
        await self._settle_id(container_id, exec_id)
        stdio, fifos = await self._stdio.open(
            container_id, exec_id, terminal, with_stdin, attach_stdio
        )
        session = self._session
        tasks = session.methods.tasks
        doing = f"exec process {exec_id!r} in container {container_id!r}"
        try:
            await session.call(
                tasks.exec,
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
                self._stdio.drop(fifos)
            if isinstance(error, NotFound):
                raise await session.not_running(container_id, doing) from None
            if isinstance(error, AlreadyExists):
                raise await self._in_the_way(container_id, exec_id, doing) from None
            if isinstance(error, LibcontainerdError) and "cannot exec in a" in error.details:
                # The shim's own words for a stopped or paused init; it sends them as UNKNOWN.
                raise FailedPrecondition(f"cannot {doing}: {error.details}") from None
            raise
        # Ours from now on: released after its exit event, but never while its Start is
        # in flight (pid 0 until it answers): containerd's Start reads the process's
        # state after running it, and answers NotFound if it was deleted meanwhile.
        key = (container_id, exec_id)
        self._own[key] = 0
        try:
            started = await session.call(
                tasks.start,
                tasks_pb2.StartRequest(container_id=container_id, exec_id=exec_id),
                f"start exec {exec_id!r} in container {container_id!r}",
            )
        except BaseException:
            self._own.pop(key, None)
            self._exited_while_starting.discard(key)
            await self.release(container_id, exec_id)
            raise
        if fifos is not None:
            fifos.attach(started.pid)  # the shim opens an exec's stdio in Start
        session.track(container_id, exec_id, started.pid)
        if key in self._exited_while_starting:
            # Its exit reached the backend before Start answered: released now.
            self._exited_while_starting.discard(key)
            self._own.pop(key, None)
            self._release_in_background(key)
        elif key in self._own:
            self._own[key] = started.pid
        return started.pid

    async def _settle_id(self, container_id: str, exec_id: str) -> None:
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
        recorded = self._own.get(key)
        if recorded is None:
            return
        pid = recorded
        try:
            process = await self._session.exec_process(container_id, exec_id)
        except NotFound:
            pass  # deleted already (by a release of the caller's, or another client)
        else:
            if process.status != task_pb2.STOPPED:
                return
            pid = pid or process.pid
        if self._own.get(key) != recorded:
            await self._released(key)  # its exit event came meanwhile, with its release
            return
        del self._own[key]
        self._superseded.add((container_id, exec_id, pid))
        await self.release(container_id, exec_id)

    async def _in_the_way(self, container_id: str, exec_id: str, doing: str) -> AlreadyExists:
        """AlreadyExists for an Exec containerd refused, saying what holds the id."""
        try:
            process = await self._session.exec_process(container_id, exec_id)
        except LibcontainerdError:
            return AlreadyExists(f"cannot {doing}: an exec by that id exists")
        return exec_id_taken(doing, process)

    async def _released(self, key: ExecKey) -> None:
        """Wait for the release of an exec on its way, if one is (bounded, never raises)."""
        release = self._releases.get(key)
        if release is not None:
            await asyncio.shield(release)

    async def release(self, container_id: str, exec_id: str) -> None:
        """Free what an exited exec holds: its FIFOs first, then containerd's record of it.

        Called after the exec's exit event, and when an exec fails to start.
        The FIFOs go first and their output is not waited for, so a
        background child still holding the exec's output cannot stall it
        (moby#39383); DeleteProcess has its own time limit. Never raises:
        failures are logged.
        """
        session = self._session
        try:
            check_identifier(container_id)
            if check_identifier(exec_id, "exec id") == INIT_PROCESS_ID:
                raise InvalidArgument("'init' is the main process, not an exec")
            self._stdio.release(container_id, exec_id)
            await asyncio.wait_for(
                session.call(
                    session.methods.tasks.delete_process,
                    tasks_pb2.DeleteProcessRequest(container_id=container_id, exec_id=exec_id),
                    f"delete exec {exec_id!r} of container {container_id!r}",
                ),
                CLEANUP_TIMEOUT,
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

    def _release_in_background(self, key: ExecKey) -> None:
        release = self._session.spawn(self.release(*key))
        self._releases[key] = release

        def done(task: asyncio.Task[None]) -> None:
            if self._releases.get(key) is task:
                del self._releases[key]

        release.add_done_callback(done)

    # -- events -----------------------------------------------------------------------

    def on_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        """Keep an exec's reported exit, so wait() answers once it is released."""
        if event is EventType.EXIT and info.process_id != container_id:
            self._exits[(container_id, info.process_id)] = ExitStatus(
                info.exit_code, info.exited_at, info.oom_killed
            )

    def after_delivery(self, container_id: str, event: EventType, info: EventInfo) -> None:
        """An exec of ours that has exited and been reported is released (Docker's order)."""
        if event is not EventType.EXIT or info.process_id == container_id:
            return
        key = (container_id, info.process_id)
        if (*key, info.pid) in self._superseded:
            self._superseded.discard((*key, info.pid))
            return  # an earlier exec of that id, released already
        pid = self._own.get(key)
        if pid is None or (pid and info.pid and pid != info.pid):
            return  # another client's exec, or an earlier one with the same id
        if pid == 0:
            self._exited_while_starting.add(key)  # exec() releases it once Start answers
            return
        del self._own[key]
        self._release_in_background(key)

    def reported_exit(self, container_id: str, exec_id: str) -> ExitStatus | None:
        """The exit the stream reported for an exec (kept until its task is deleted)."""
        return self._exits.get((container_id, exec_id))

    # -- restore ----------------------------------------------------------------------

    async def adopt(self, container_id: str) -> None:
        """Make the live execs of a restored task this client's: released after their exit.

        Most likely this program started them before it restarted; nobody
        else would delete them, so each would hold its id and the shim's
        record of it until the task's delete (Docker's daemon, too, releases
        the execs of the containers it restored). One whose exit the stream
        has reported meanwhile is released at once.
        """
        session = self._session
        try:
            reply = await session.call(
                session.methods.tasks.list_pids,
                tasks_pb2.ListPidsRequest(container_id=container_id),
                f"list the execs of container {container_id!r}",
            )
        except NotFound:
            return  # the task went meanwhile
        for entry in reply.processes:
            exec_id = exec_id_of(entry)
            key = (container_id, exec_id)
            if not exec_id or key in self._own or key in self._releases:
                continue
            self._own[key] = entry.pid
            if not session.track(container_id, exec_id, entry.pid):
                del self._own[key]
                self._release_in_background(key)

    def forget(self, container_id: str) -> None:
        """The container's task is deleted: its execs and their results went with it."""
        self._exits = {key: kept for key, kept in self._exits.items() if key[0] != container_id}
        self._own = {key: pid for key, pid in self._own.items() if key[0] != container_id}
        self._superseded = {key for key in self._superseded if key[0] != container_id}
        self._exited_while_starting = {
            key for key in self._exited_while_starting if key[0] != container_id
        }

    def sizes(self) -> dict[str, int]:
        """How much this owner holds, by table (for leak checks)."""
        return {
            "exec exits": len(self._exits),
            "own execs": len(self._own),
            "exec releases": len(self._releases),
            "superseded execs": len(self._superseded),
            "execs exited while starting": len(self._exited_while_starting),
        }

    def owned(self, container_id: str) -> list[str]:
        """The exec ids of the container this client owns now (for tests and leak checks)."""
        return sorted(exec_id for cid, exec_id in self._own if cid == container_id)
