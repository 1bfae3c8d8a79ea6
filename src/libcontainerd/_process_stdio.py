"""The client's FIFOs: made for the processes it starts or restores, closed when they go.

:class:`ProcessStdio` owns every :class:`FifoSet` of one client, by container
and process: it decides where a new process's stdio goes (nothing, a
:class:`LogFile`, or FIFOs handed to a callback), tells the shim when our
stdin writer closed (CloseIO, only once the shim holds its end), and removes
a process's FIFO files when the process is gone.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from typing import Final, NamedTuple, TypeAlias

from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.types.task import task_pb2
from ._fifo import (
    STDERR,
    STDIN,
    STDOUT,
    FifoSet,
    container_fifo_dir,
    make_private_dirs,
    remove_fifo_dir,
    remove_process_fifos,
)
from ._limits import raise_open_file_limit
from ._session import Session, exec_id_taken, wire_exec_id
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, LibcontainerdError, NotFound
from .stdio import LogFile, StdioCallback
from .types import INIT_PROCESS_ID

__all__ = ["NULL_STDIO", "AttachStdio", "ProcessStdio", "StdioPaths"]

log = logging.getLogger(__name__)

AttachStdio: TypeAlias = StdioCallback | LogFile
"""Where a process's stdio goes: a callback that receives its FIFOs, or a log file."""


class StdioPaths(NamedTuple):
    """The stdio fields of a create or exec request (``""`` = none)."""

    stdin: str = ""
    stdout: str = ""
    stderr: str = ""


NULL_STDIO: Final = StdioPaths()


class ProcessStdio:
    """The FIFO sets of one client, by container id and process id."""

    def __init__(self, session: Session, fifo_dir: str) -> None:
        self._session = session
        self.fifo_dir = fifo_dir
        self._by_process: dict[str, dict[str, FifoSet]] = {}
        # Every set not yet closed, released ones whose readers have not reached EOF too.
        self._sets: set[FifoSet] = set()

    async def open(
        self,
        container_id: str,
        process_id: str,
        terminal: bool,
        with_stdin: bool,
        attach_stdio: AttachStdio | None,
    ) -> tuple[StdioPaths, FifoSet | None]:
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
            return NULL_STDIO, None
        if isinstance(attach_stdio, LogFile):
            if with_stdin or terminal:
                raise InvalidArgument(
                    f"{process}: log-file mode serves neither stdin nor a terminal"
                    " (containerd's runc shim copies a terminal only to a FIFO);"
                    " attach a callback instead"
                )
            stdout, stderr = attach_stdio.create()
            return StdioPaths(stdout=stdout, stderr=stderr), None
        if not callable(attach_stdio):
            raise InvalidArgument(
                "attach_stdio must be a callback that takes a DirectIO, or a LogFile,"
                f" not {type(attach_stdio).__name__}"
            )
        fifos = await self._make(container_id, process_id, with_stdin, terminal)
        try:
            await self._hand_over(fifos, attach_stdio)
        except BaseException:
            self.drop(fifos)
            raise
        return StdioPaths(fifos.stdin, fifos.stdout, fifos.stderr), fifos

    async def reattach(
        self, container_id: str, process: task_pb2.Process, attach_stdio: StdioCallback
    ) -> None:
        """Open the FIFOs containerd recorded for a restored task again and hand them over."""
        raise_open_file_limit()
        recorded = {STDIN: process.stdin, STDOUT: process.stdout, STDERR: process.stderr}
        try:
            fifos = FifoSet.open_recorded(container_id, INIT_PROCESS_ID, recorded, process.terminal)
        except OSError as error:
            raise FailedPrecondition(
                f"cannot re-open the FIFOs of container {container_id!r}: {error.strerror}"
            ) from error
        if fifos is None:
            return
        self._own(fifos)
        try:
            await self._hand_over(fifos, attach_stdio)
        except BaseException:
            self._disown(container_id, INIT_PROCESS_ID)
            fifos.close()  # the files stay: the task lives on
            raise

    async def _make(
        self, container_id: str, process_id: str, with_stdin: bool, terminal: bool
    ) -> FifoSet:
        """Make and open a process's FIFOs, replacing stale ones a crashed client left behind.

        Raises AlreadyExists when they belong to a live process (the check
        costs a call only then), FailedPrecondition when they cannot be made
        (naming the open-file limit when that is why). The first call raises
        this process's soft open-file limit (see _limits).
        """
        raise_open_file_limit()
        directory = make_private_dirs(self.fifo_dir, self._session.namespace, container_id)

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
        except BaseException as error:
            if container_id not in self._by_process:
                # Nothing half-made: a folder made for this start alone goes too.
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
            if isinstance(error, OSError):
                raise FailedPrecondition(
                    f"cannot make the FIFOs of process {process_id!r} of container"
                    f" {container_id!r} in {directory}: {error.strerror}"
                ) from error
            raise
        self._own(fifos)
        return fifos

    async def _refuse_live_process(self, container_id: str, process_id: str) -> None:
        try:
            process = await self._session.exec_process(container_id, wire_exec_id(process_id))
        except NotFound:
            return
        if process_id == INIT_PROCESS_ID:
            raise AlreadyExists(f"container {container_id!r} has a task already")
        raise exec_id_taken(f"exec process {process_id!r} in container {container_id!r}", process)

    async def _hand_over(self, fifos: FifoSet, attach_stdio: StdioCallback) -> None:
        """Give the FIFOs to the caller's callback as a DirectIO (awaiting it if it is async)."""
        direct_io = await fifos.connect(lambda: self._stdin_closed(fifos))
        attached = attach_stdio(direct_io)
        if inspect.isawaitable(attached):
            await attached

    def _own(self, fifos: FifoSet) -> None:
        processes = self._by_process.setdefault(fifos.container_id, {})
        previous = processes.pop(fifos.process_id, None)
        if previous is not None:
            previous.close()
        processes[fifos.process_id] = fifos
        self._sets = {known for known in self._sets if not known.closed}
        self._sets.add(fifos)

    def _disown(self, container_id: str, process_id: str) -> FifoSet | None:
        processes = self._by_process.get(container_id, {})
        fifos = processes.pop(process_id, None)
        if not processes:
            self._by_process.pop(container_id, None)
        return fifos

    def drop(self, fifos: FifoSet) -> None:
        """Close a process's FIFO ends now and remove its files (a start or exec that failed).

        Only this process's files: the folder may serve a live task's execs
        (a second start fails with AlreadyExists after making its FIFOs).
        """
        fifos.close()
        self.release(fifos.container_id, fifos.process_id)

    def release(self, container_id: str, process_id: str) -> None:
        """The process is gone: release its FIFO ends (readers end at EOF) and remove its files."""
        fifos = self._disown(container_id, process_id)
        if fifos is not None:
            fifos.release()
        remove_process_fifos(self._container_dir(container_id), process_id)

    def forget(self, container_id: str) -> None:
        """The container's task is gone: release every FIFO set of it and remove its folder."""
        for fifos in self._by_process.pop(container_id, {}).values():
            fifos.release()
        remove_fifo_dir(self._container_dir(container_id))

    def close(self) -> None:
        """Close every FIFO end (the client closes); the files of live processes stay."""
        for fifos in self._sets:
            fifos.close()  # may queue a pending stdin close, awaited by the session
        self._sets.clear()
        self._by_process.clear()

    def _container_dir(self, container_id: str) -> str:
        return container_fifo_dir(self.fifo_dir, self._session.namespace, container_id)

    # -- stdin ----------------------------------------------------------------------

    async def close_stdin(self, container_id: str, process_id: str) -> None:
        """Close our writer after what it buffered, and tell the shim (CloseIO)."""
        fifos = self._by_process.get(container_id, {}).get(process_id)
        if fifos is not None:
            fifos.close_stdin()
        await self._close_io(container_id, process_id)

    def _stdin_closed(self, fifos: FifoSet) -> None:
        self._session.spawn(self._close_io_once_attached(fifos))

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
        session = self._session
        await session.task_call(
            session.methods.tasks.close_io,
            tasks_pb2.CloseIORequest(
                container_id=container_id, exec_id=wire_exec_id(process_id), stdin=True
            ),
            container_id,
            "close the stdin of",
            process_id,
        )

    def sizes(self) -> dict[str, int]:
        """How much this owner holds, by table (for leak checks)."""
        return {
            "FIFO sets by container": len(self._by_process),
            "FIFO sets open": sum(not fifos.closed for fifos in self._sets),
            "FIFO sets kept": len(self._sets),
        }
