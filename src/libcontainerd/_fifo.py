"""The FIFOs of a process's stdio, as containerd's ``cio`` package lays them out.

A process with attached stdio talks to its shim through up to three FIFOs in
a private directory of the client::

    <fifo_dir>/<namespace>/<container_id>/<process_id>-stdin|-stdout|-stderr

(``process_id`` is ``init`` for the main process). Every directory is 0700
and every FIFO 0600, so nothing is world-accessible, and the fixed layout lets
a restarted client find and remove them.

One owner per file descriptor:

- :class:`FifoSet` opens our end of each FIFO (stdin write-only, stdout and
  stderr read-only, all non-blocking) and beside it a *keeper*, the same FIFO
  opened read-write. With a keeper open, opening never blocks, our stdin
  writer sees no EPIPE and our readers no EOF before the shim has opened its
  own ends. :meth:`FifoSet.attach` closes the keepers once the shim holds
  its ends (after ``Tasks.Create`` for the init process, after
  ``Tasks.Start`` for an exec); from then on EOF and EPIPE mean what they say,
  and a reader ends once no writer is left, even one no shim ever wrote to.
- :meth:`FifoSet.connect` hands our ends to asyncio pipe transports, which own
  them from then on; the FifoSet keeps the transports and closes them.
- The client owns the FifoSets (:mod:`libcontainerd._process_stdio`) and
  removes the FIFO files by their layout when the process is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Callable, Mapping
from typing import Final

from ._background import spawn
from ._limits import open_files_exhausted
from ._procfs import process_info
from .errors import FailedPrecondition
from .stdio import DirectIO

__all__ = [
    "STDERR",
    "STDIN",
    "STDOUT",
    "STREAMS",
    "FifoSet",
    "container_fifo_dir",
    "fifo_path",
    "make_private_dirs",
    "remove_fifo_dir",
    "remove_process_fifos",
]

log = logging.getLogger(__name__)

STDIN: Final = "stdin"
STDOUT: Final = "stdout"
STDERR: Final = "stderr"
STREAMS: Final = (STDIN, STDOUT, STDERR)

# How much output a StreamReader buffers before its transport stops reading
# (twice this); the shim then waits, so nothing is lost, only slowed.
_STREAM_LIMIT = 256 * 1024


# --- the directory layout ------------------------------------------------------


def container_fifo_dir(fifo_dir: str, namespace: str, container_id: str) -> str:
    """The folder holding the FIFOs of every process of one container."""
    return os.path.join(fifo_dir, namespace, container_id)


def fifo_path(directory: str, process_id: str, stream: str) -> str:
    """The FIFO of one stream (``stdin``, ``stdout`` or ``stderr``) of one process."""
    return os.path.join(directory, f"{process_id}-{stream}")


def make_private_dirs(fifo_dir: str, *names: str) -> str:
    """Create ``fifo_dir`` and ``names`` below it, each a 0700 folder of ours; return the deepest.

    An existing folder must be a real directory owned by this user (no
    symlink, nobody else's), and is narrowed to 0700. Raises
    FailedPrecondition when that is not so or the folders cannot be made.
    """
    chain = [fifo_dir]
    for name in names:
        chain.append(os.path.join(chain[-1], name))
    path = fifo_dir
    try:
        os.makedirs(os.path.dirname(fifo_dir), mode=0o700, exist_ok=True)
        for path in chain:
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                raise FailedPrecondition(
                    f"{path} must be a directory owned by uid {os.geteuid()};"
                    " refusing to keep FIFOs there"
                )
            if stat.S_IMODE(info.st_mode) != 0o700:
                os.chmod(path, 0o700)
    except OSError as error:
        raise FailedPrecondition(
            f"cannot make the FIFO directory {path}: {error.strerror}"
        ) from error
    return path


def remove_process_fifos(directory: str, process_id: str) -> None:
    """Remove one process's FIFO files; missing ones are fine, other failures are logged."""
    for stream in STREAMS:
        path = fifo_path(directory, process_id, stream)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("cannot remove FIFO %s: %s", path, error.strerror)


def remove_fifo_dir(directory: str) -> None:
    """Remove a container's FIFO folder and what is in it; failures are logged."""
    try:
        shutil.rmtree(directory)
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("cannot remove FIFO directory %s: %s", directory, error.strerror)


# --- FIFO sets -----------------------------------------------------------------


async def _connect_reader(fd: int, reader: asyncio.StreamReader) -> asyncio.ReadTransport:
    """A read transport feeding ``reader``; it owns ``fd`` from now on (closed here on failure)."""
    pipe = open(fd, "rb", buffering=0)  # noqa: ASYNC230, SIM115 - wraps a descriptor; the transport closes it
    try:
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
    except BaseException:
        pipe.close()
        raise
    return transport


async def _connect_writer(
    fd: int, on_closed: Callable[[], None]
) -> tuple[asyncio.WriteTransport, asyncio.StreamWriter]:
    """A StreamWriter on ``fd``, which its transport owns from now on (closed here on failure)."""
    loop = asyncio.get_running_loop()
    pipe = open(fd, "wb", buffering=0)  # noqa: ASYNC230, SIM115 - wraps a descriptor; the transport closes it
    try:
        transport, protocol = await loop.connect_write_pipe(lambda: _StdinProtocol(on_closed), pipe)
    except BaseException:
        pipe.close()
        raise
    return transport, asyncio.StreamWriter(transport, protocol, None, loop)


class _StdinProtocol(asyncio.StreamReaderProtocol):
    """The protocol under a stdin StreamWriter: reports when the writer has closed."""

    def __init__(self, on_closed: Callable[[], None]) -> None:
        super().__init__(asyncio.StreamReader())
        self._on_closed = on_closed

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._on_closed()


# How long to wait for a shim to open a stdin FIFO (normally well under a millisecond).
_SHIM_OPEN_TIMEOUT = 10.0


async def _wait_until_shim_holds(path: str, pid: int) -> None:
    """Wait until the parent of ``pid`` (the shim) has ``path`` open, within a bound.

    Gives up quietly when the process or the shim is gone, /proc cannot be
    read, or the bound passes: the process then has no use for its stdin.
    """
    info = process_info(pid)
    if info is None:
        return
    try:
        fifo = os.stat(path)
    except OSError:
        return
    wanted = (fifo.st_dev, fifo.st_ino)
    delay = 0.0005
    deadline = asyncio.get_running_loop().time() + _SHIM_OPEN_TIMEOUT
    while True:
        holds = _holds(info.ppid, wanted)
        if holds is not False:
            return  # it does, or it cannot be known
        if asyncio.get_running_loop().time() > deadline:
            log.debug("shim %d did not open %s within %g s", info.ppid, path, _SHIM_OPEN_TIMEOUT)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _holds(pid: int, wanted: tuple[int, int]) -> bool | None:
    """Whether process ``pid`` reads the file ``wanted`` (device, inode); None if unknowable.

    Reads: the shim also opens a stdin FIFO for writing (to close it on
    CloseIO), maybe first; only its reader keeps our writer from seeing
    a FIFO without readers.
    """
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for name in names:
        try:
            held = os.stat(f"{folder}/{name}")
            if (held.st_dev, held.st_ino) == wanted and _reads(pid, name):
                return True
        except OSError:
            continue
    return False


def _reads(pid: int, fd: str) -> bool:
    """Whether descriptor ``fd`` of ``pid`` was opened for reading (its fdinfo flags).

    Not an O_PATH handle: containerd's fifo package takes one before its
    (blocking) open, and its access bits read as O_RDONLY.
    """
    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
        for line in info:
            if line.startswith("flags:"):
                flags = int(line.split()[1], 8)
                return not flags & os.O_PATH and flags & os.O_ACCMODE != os.O_WRONLY
    return False


def _name_the_limit(error: BaseException, what: str) -> None:
    """Raise FailedPrecondition naming the open-file limit when ``error`` is EMFILE or ENFILE."""
    if isinstance(error, OSError):
        exhausted = open_files_exhausted(error, what)
        if exhausted is not None:
            raise exhausted from error


class FifoSet:
    """The FIFOs of one process and our open ends of them (see the module docstring).

    ``stdin``, ``stdout`` and ``stderr`` are the FIFO paths handed to
    containerd, ``""`` for a stream the process does not have.
    """

    def __init__(
        self, container_id: str, process_id: str, paths: Mapping[str, str], terminal: bool
    ) -> None:
        self.container_id = container_id
        self.process_id = process_id
        self.terminal = terminal
        self.stdin = paths.get(STDIN, "")
        self.stdout = paths.get(STDOUT, "")
        self.stderr = paths.get(STDERR, "")
        self._ends: dict[str, int] = {}
        self._keepers: dict[str, int] = {}
        self._transports: list[asyncio.BaseTransport] = []
        self._direct_io: DirectIO | None = None
        self._stdin_transport: asyncio.WriteTransport | None = None
        self._on_stdin_closed: Callable[[], None] | None = None
        self._stdin_close_reported = False
        self._stdin_lost = False
        self._attached = False
        self._settled = asyncio.Event()
        self._closing = False

    @classmethod
    def create(
        cls,
        directory: str,
        container_id: str,
        process_id: str,
        *,
        stdin: bool,
        terminal: bool,
    ) -> FifoSet:
        """Make the process's FIFOs (0600) in ``directory`` and open our ends, never blocking.

        stdout always; stdin only with ``stdin``; stderr only without a
        terminal (the pty merges it into stdout). Raises FileExistsError when
        a FIFO exists already (the caller decides whether it is stale),
        FailedPrecondition naming the open-file limit when one is reached,
        or the OSError of another failed mkfifo or open; nothing is left
        behind then.
        """
        streams = [s for s in STREAMS if (s != STDIN or stdin) and (s != STDERR or not terminal)]
        paths = {stream: fifo_path(directory, process_id, stream) for stream in streams}
        fifos = cls(container_id, process_id, paths, terminal)
        made: list[str] = []
        try:
            for stream, path in paths.items():
                os.mkfifo(path, 0o600)
                made.append(path)
                fifos._open_end(stream, path)
        except BaseException as error:
            fifos.close()
            for path in made:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            _name_the_limit(error, f"cannot open the FIFOs of {fifos.process_name}")
            raise
        return fifos

    @classmethod
    def open_recorded(
        cls,
        container_id: str,
        process_id: str,
        paths: Mapping[str, str],
        terminal: bool,
    ) -> FifoSet | None:
        """Open again the FIFOs containerd recorded for a live process (after a restart).

        Paths that are empty, not FIFOs (a log file, a ``file://`` or
        ``binary://`` URI) or gone are skipped, the last with a warning; None
        when no stream could be opened. The shim holds its ends already, so
        the set comes back attached.
        """
        usable: dict[str, str] = {}
        for stream, recorded in paths.items():
            path = recorded.removeprefix("fifo://")
            if not path or "://" in path:
                continue
            try:
                if stat.S_ISFIFO(os.stat(path).st_mode):
                    usable[stream] = path
            except OSError as error:
                log.warning(
                    "cannot re-attach %s of process %r of container %r: %s is %s",
                    stream,
                    process_id,
                    container_id,
                    path,
                    error.strerror,
                )
        if STDOUT not in usable and STDERR not in usable and STDIN not in usable:
            return None
        fifos = cls(container_id, process_id, usable, terminal)
        try:
            for stream, path in usable.items():
                fifos._open_end(stream, path)
        except BaseException as error:
            fifos.close()
            _name_the_limit(error, f"cannot re-open the FIFOs of {fifos.process_name}")
            raise
        fifos.attach()
        return fifos

    @property
    def process_name(self) -> str:
        """``process 'init' of container 'web'``, for messages."""
        return f"process {self.process_id!r} of container {self.container_id!r}"

    def _open_end(self, stream: str, path: str) -> None:
        flags = os.O_NONBLOCK | os.O_CLOEXEC
        if stream == STDIN:
            # A non-blocking writer may only open while a reader exists: the keeper.
            self._keepers[stream] = os.open(path, os.O_RDWR | flags)
            self._ends[stream] = end = os.open(path, os.O_WRONLY | flags)
        else:
            # Our reader first: the kernel reports a hang-up only for writers that
            # opened after a reader, so the keeper's close ends a stream no shim writes.
            self._ends[stream] = end = os.open(path, os.O_RDONLY | flags)
            self._keepers[stream] = os.open(path, os.O_RDWR | flags)
        if not stat.S_ISFIFO(os.fstat(end).st_mode):
            raise FailedPrecondition(f"{path} is not a FIFO")

    async def connect(self, on_stdin_closed: Callable[[], None] | None = None) -> DirectIO:
        """Wrap our ends in asyncio streams; they own the descriptors from now on.

        ``on_stdin_closed`` is called once when the stdin writer closes (by its
        user, or because the process's side went away), never for closes made
        by :meth:`close` or :meth:`release`.
        """
        self._on_stdin_closed = on_stdin_closed
        readers: dict[str, asyncio.StreamReader] = {}
        for stream in (STDOUT, STDERR):
            fd = self._ends.pop(stream, None)
            if fd is not None:
                reader = asyncio.StreamReader(limit=_STREAM_LIMIT)
                self._transports.append(await _connect_reader(fd, reader))
                readers[stream] = reader
        writer = None
        fd = self._ends.pop(STDIN, None)
        if fd is not None:
            self._stdin_transport, writer = await _connect_writer(fd, self._stdin_closed)
            self._transports.append(self._stdin_transport)
        stdout = readers.get(STDOUT)
        if stdout is None:  # restored without a stdout FIFO: a stream that has ended
            stdout = asyncio.StreamReader()
            stdout.feed_eof()
        # Held here for the process's lifetime: a StreamWriter that is garbage
        # collected closes its pipe, which would hand the process an EOF that
        # nobody asked for (a callback need not keep what it was given).
        self._direct_io = DirectIO(self, writer, stdout, readers.get(STDERR))
        return self._direct_io

    def attach(self, pid: int = 0) -> None:
        """The shim holds its ends now: drop the keepers so EOF and EPIPE reach us.

        The shim opens stdout and stderr before its Create (or an exec's Start)
        returns, but stdin in a goroutine that may run later: dropping that
        keeper first would leave the FIFO for a moment with no reader (our
        writer fails, the process sees EOF at once) or with no writer (what we
        wrote is lost). So with ``pid``, the process's (its parent is the shim),
        the stdin keeper goes only once the shim holds the FIFO; without it
        (re-attached after a restart) at once.
        """
        stdin_keeper = self._keepers.pop(STDIN, None)
        self._close_keepers()
        if stdin_keeper is not None:
            if pid > 0:
                self._keepers[STDIN] = stdin_keeper
                spawn(self._drop_stdin_keeper_once_held(stdin_keeper, pid))
            else:
                os.close(stdin_keeper)
        self._settle(attached=True)

    async def _drop_stdin_keeper_once_held(self, keeper: int, pid: int) -> None:
        try:
            await _wait_until_shim_holds(self.stdin, pid)
        finally:
            if self._keepers.get(STDIN) == keeper:  # not closed meanwhile by release()
                del self._keepers[STDIN]
                os.close(keeper)

    async def wait_attached(self) -> bool:
        """Wait until the shim holds its ends (True), or the set was closed before (False)."""
        await self._settled.wait()
        return self._attached

    def close_stdin(self) -> None:
        """Close our stdin writer after what it has buffered; the caller sends CloseIO itself."""
        self._stdin_close_reported = True
        if self._stdin_transport is not None:
            self._stdin_transport.close()

    def release(self) -> None:
        """The process is gone: close stdin and the keepers now, let the readers end at their EOF.

        The shim closes its writers when the process is deleted, so the output
        still in the FIFOs reaches the readers and then they close themselves.
        """
        self._closing = True
        self._direct_io = None
        self._close_keepers()
        for fd in self._ends.values():
            os.close(fd)
        self._ends.clear()
        # Python 3.11's pipe transports fail in abort() once their connection is lost.
        if self._stdin_transport is not None and not self._stdin_lost:
            self._stdin_transport.abort()
        self._settle(attached=False)

    def close(self) -> None:
        """Close every end now (unread output is dropped); the files stay where they are."""
        self.release()
        for transport in self._transports:
            transport.close()

    @property
    def closed(self) -> bool:
        """True once no descriptor of this set is open or about to be closed."""
        return (
            not self._keepers
            and not self._ends
            and all(transport.is_closing() for transport in self._transports)
        )

    def _close_keepers(self) -> None:
        for fd in self._keepers.values():
            os.close(fd)
        self._keepers.clear()

    def _settle(self, *, attached: bool) -> None:
        if not self._settled.is_set():
            self._attached = attached
            self._settled.set()

    def _stdin_closed(self) -> None:
        self._stdin_lost = True
        if self._closing or self._stdin_close_reported:
            return
        self._stdin_close_reported = True
        if self._on_stdin_closed is not None:
            self._on_stdin_closed()

    def __repr__(self) -> str:
        return f"FifoSet({self.container_id!r}, {self.process_id!r}, stdout={self.stdout!r})"
