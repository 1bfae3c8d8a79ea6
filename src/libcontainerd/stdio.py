"""Stdio of container processes: FIFOs, the DirectIO a callback receives, ready-made attachers.

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
- The client owns the FifoSets and removes the FIFO files by their layout when
  the process is deleted.

Log-file mode (:class:`LogFile`) uses no FIFOs: the shim appends the
process's stdout and stderr to a file itself, whether a client runs or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import select
import shutil
import signal
import stat
import termios
import tty
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Mapping
from typing import IO, Any, Final, Generic, Protocol, TypeAlias, TypeVar

from ._procfs import process_info
from .errors import FailedPrecondition, InvalidArgument, LibcontainerdError

__all__ = [
    "AttachTerminal",
    "CollectOutput",
    "CopyToFiles",
    "DirectIO",
    "FifoSet",
    "LogFile",
    "StdioCallback",
    "discard",
]

log = logging.getLogger(__name__)

STDIN: Final = "stdin"
STDOUT: Final = "stdout"
STDERR: Final = "stderr"
STREAMS: Final = (STDIN, STDOUT, STDERR)

# How much output a StreamReader buffers before its transport stops reading
# (twice this); the shim then waits, so nothing is lost, only slowed.
_STREAM_LIMIT = 256 * 1024
_CHUNK = 64 * 1024
_BAD_PERCENT_ESCAPE: Final = re.compile("%(?![0-9A-Fa-f]{2})")

T = TypeVar("T")

# Tasks started here (attachers, drains) must not be garbage-collected while running.
_running: set[asyncio.Task[Any]] = set()


def _spawn(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coroutine)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


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
        a FIFO exists already (the caller decides whether it is stale), or
        the OSError of a failed mkfifo or open; nothing is left behind then.
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
        except BaseException:
            fifos.close()
            for path in made:
                with contextlib.suppress(OSError):
                    os.unlink(path)
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
        except BaseException:
            fifos.close()
            raise
        fifos.attach()
        return fifos

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
                _spawn(self._drop_stdin_keeper_once_held(stdin_keeper, pid))
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


# --- what a callback receives ------------------------------------------------------


class DirectIO:
    """A process's stdio as asyncio streams, handed to a :data:`StdioCallback`.

    ``stdin`` is a StreamWriter (None unless started ``with_stdin``); closing
    it delivers EOF to the process. ``stdout`` is a StreamReader; ``stderr``
    too, or None with a terminal (the pty merges it into stdout). Read both to
    their end (or pass them to :func:`discard`): unread output fills the FIFO
    and then the process waits.
    """

    __slots__ = ("_fifos", "container_id", "process_id", "stderr", "stdin", "stdout", "terminal")

    def __init__(
        self,
        fifos: FifoSet,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader | None,
    ) -> None:
        self._fifos = fifos
        self.container_id = fifos.container_id
        self.process_id = fifos.process_id
        self.terminal = fifos.terminal
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr

    async def wait_started(self) -> bool:
        """True once the process exists in the shim (it can be resized, its stdin closed).

        False when it never will (its creation failed). The callback itself
        runs before that, so it must not wait for this inline: wait in a task.
        """
        return await self._fifos.wait_attached()

    def __repr__(self) -> str:
        return f"DirectIO({self.container_id!r}, {self.process_id!r}, terminal={self.terminal})"


StdioCallback: TypeAlias = Callable[[DirectIO], Awaitable[None] | None]
"""Receives a process's :class:`DirectIO` before the process is created.

A plain or ``async`` function; it should start copying (in tasks) and return
promptly. What it raises aborts the start or exec, after the FIFOs are removed.
"""


class LogFile:
    """Log-file mode: the shim itself appends the process's stdout and stderr to ``path``.

    Pass it as ``attach_stdio``. Output keeps reaching the file while no
    client runs; nothing is left to close or remove. The shim copies on its
    own schedule: the last lines can reach the file a moment after the exit
    is reported, even after the task's delete. ``path`` must be absolute
    (on the host); the client creates it and its folder (0644, 0755) before
    the process starts. Not possible with stdin or a terminal (containerd's
    runc shim copies a pty only to a FIFO): both raise InvalidArgument.
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        text = os.fspath(path)
        if not isinstance(text, str) or not os.path.isabs(text):
            raise InvalidArgument(f"LogFile path must be an absolute path, got {path!r}")
        if any(ord(char) < 0x20 or char == "\x7f" for char in text):
            raise InvalidArgument(f"LogFile path must not hold control characters, got {path!r}")
        if _BAD_PERCENT_ESCAPE.search(text):
            # The shim parses the path as a URL first and refuses a bad escape.
            raise InvalidArgument(
                f"LogFile path must not hold '%' unless two hex digits follow, got {path!r}"
            )
        self.path = os.path.normpath(text)

    @property
    def stdio_paths(self) -> tuple[str, str]:
        """What the shim is given as stdout and stderr: two spellings of ``path``.

        Given one string twice (or a ``file://`` URI), containerd's shim
        (1.6 to 2.x) shares one descriptor between both copies and the
        stdout copy closes it when stdout ends, losing what stderr writes
        after. Two spellings make it open the file twice, both appending.
        """
        folder, name = os.path.split(self.path)
        return self.path, os.path.join(folder, ".", name)

    def create(self) -> tuple[str, str]:
        """Create the file and its folder (the shim opens an existing file only).

        Returns :attr:`stdio_paths`, what the shim is then given. Raises
        FailedPrecondition when they cannot be made.
        """
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
            descriptor = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644
            )
        except OSError as error:
            raise FailedPrecondition(
                f"cannot create the log file {self.path}: {error.strerror}"
            ) from None
        os.close(descriptor)
        return self.stdio_paths

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogFile) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"LogFile({self.path!r})"


# --- ready-made attachers -------------------------------------------------------


async def _drain(reader: asyncio.StreamReader | None) -> None:
    if reader is None:
        return
    while await reader.read(_CHUNK):
        pass


async def _feed(writer: asyncio.StreamWriter | None, data: bytes | None) -> None:
    """Write ``data`` to the process's stdin, then close it (a process may stop reading early)."""
    if writer is None:
        return
    try:
        if data:
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def _check_stdin(io: DirectIO, data: bytes | None, what: str) -> None:
    if data is not None and not isinstance(data, bytes):
        raise InvalidArgument(f"{what}: stdin must be bytes, not {type(data).__name__}")
    if data and io.stdin is None:
        raise InvalidArgument(f"{what}: stdin data needs the process started with with_stdin=True")


def discard(io: DirectIO) -> None:
    """A :data:`StdioCallback` that drops all output and closes stdin at once."""
    if io.stdin is not None:
        io.stdin.close()
    _spawn(_drain(io.stdout))
    _spawn(_drain(io.stderr))


class _Attacher(Generic[T]):
    """A StdioCallback that copies in a task of its own; ``await`` it for the result.

    With the blocking Client the copy runs on the client's own loop thread;
    ``result()`` waits for it from any other thread, and ``await`` works from
    any other event loop too.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[T] | None = None

    def __call__(self, io: DirectIO) -> None:
        if self._task is not None:
            raise InvalidArgument(f"this {type(self).__name__} is attached to a process already")
        self._prepare(io)
        self._task = _spawn(self._run(io))

    def _prepare(self, io: DirectIO) -> None:
        """Check and open what the copy needs; raising here aborts the start."""

    async def _run(self, io: DirectIO) -> T:
        raise NotImplementedError

    def __await__(self) -> Generator[Any, None, T]:
        task = self._attached()
        loop = _running_loop()
        if task.done() or loop is None or loop is task.get_loop():
            return task.__await__()
        # The copy runs on another loop (the blocking Client's): await it from there.
        return _from_other_loop(task, loop).__await__()

    def result(self, timeout: float | None = None) -> T:
        """Wait for the copy from code without an event loop (the blocking Client's users).

        The copy runs on the loop the process was started from; this blocks the
        calling thread until it ends, at most ``timeout`` seconds (then
        TimeoutError, and the copy goes on). Inside async code, ``await`` it.
        """
        task = self._attached()
        if task.done():
            return task.result()
        loop = task.get_loop()
        if _running_loop() is loop:
            raise FailedPrecondition(
                f"{type(self).__name__}.result() would block the event loop that does the"
                " copy: await it instead"
            )
        future = asyncio.run_coroutine_threadsafe(_shielded(task), loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"{type(self).__name__}: the output did not end within {timeout:g} s"
            ) from None

    def _attached(self) -> asyncio.Task[T]:
        if self._task is None:
            raise FailedPrecondition(
                f"this {type(self).__name__} is not attached: pass it as attach_stdio first"
            )
        return self._task


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _from_other_loop(task: asyncio.Task[T], loop: asyncio.AbstractEventLoop) -> T:
    future = asyncio.run_coroutine_threadsafe(_shielded(task), task.get_loop())
    return await asyncio.wrap_future(future, loop=loop)


async def _shielded(task: asyncio.Task[T]) -> T:
    """Await the task without cancelling it when the waiter gives up."""
    return await asyncio.shield(task)


class CollectOutput(_Attacher[tuple[bytes, bytes]]):
    """Collects stdout and stderr into bytes; ``await`` it (blocking code: ``.result()``).

    The result is ``(stdout, stderr)`` once the process exited and its output ended.

    ``stdin`` is written to the process (started ``with_stdin=True``), which
    then sees EOF; without it a stdin is closed at once. stderr is ``b""``
    with a terminal. Holds everything in memory: for large output use
    :class:`CopyToFiles`.
    """

    def __init__(self, stdin: bytes | None = None) -> None:
        super().__init__()
        self._stdin = stdin

    def _prepare(self, io: DirectIO) -> None:
        _check_stdin(io, self._stdin, "CollectOutput")

    async def _run(self, io: DirectIO) -> tuple[bytes, bytes]:
        stderr = io.stderr.read() if io.stderr is not None else _nothing()
        _, out, err = await asyncio.gather(_feed(io.stdin, self._stdin), io.stdout.read(), stderr)
        return out, err


async def _nothing() -> bytes:
    return b""


Target: TypeAlias = "str | os.PathLike[str] | IO[bytes]"


class CopyToFiles(_Attacher[None]):
    """Copies stdout and stderr to files; ``await`` it (or ``.result()``) for the end of the output.

    A target is a path (opened for appending, closed at the end) or a binary
    file object (left open). ``stderr=None`` drops stderr; the same path for
    both interleaves them. ``stdin`` is written to the process, which then
    sees EOF. Opening a path fails in the callback, so the start fails with
    the OSError and nothing runs.
    """

    def __init__(
        self, stdout: Target, stderr: Target | None = None, *, stdin: bytes | None = None
    ) -> None:
        super().__init__()
        self._targets = (stdout, stderr)
        self._stdin = stdin
        self._files: list[IO[bytes] | None] = []

    def _prepare(self, io: DirectIO) -> None:
        _check_stdin(io, self._stdin, "CopyToFiles")
        files: list[IO[bytes] | None] = []
        try:
            for target in self._targets:
                files.append(_open_target(target))
        except BaseException:
            _close_targets(files, self._targets)
            raise
        self._files = files

    async def _run(self, io: DirectIO) -> None:
        stdout_file, stderr_file = self._files
        try:
            await asyncio.gather(
                _feed(io.stdin, self._stdin),
                _copy_to_file(io.stdout, stdout_file),
                _copy_to_file(io.stderr, stderr_file),
            )
        finally:
            _close_targets(self._files, self._targets)


def _open_target(target: Target | None) -> IO[bytes] | None:
    if target is None:
        return None
    if isinstance(target, str | os.PathLike):
        return open(target, "ab")
    if not callable(getattr(target, "write", None)):
        raise InvalidArgument(f"a copy target must be a path or a binary file, not {target!r}")
    return target


def _close_targets(files: Iterable[IO[bytes] | None], targets: Iterable[Target | None]) -> None:
    for file, target in zip(files, targets, strict=False):
        if file is not None and isinstance(target, str | os.PathLike):
            file.close()


async def _copy_to_file(reader: asyncio.StreamReader | None, file: IO[bytes] | None) -> None:
    if reader is None:
        return
    if file is None:
        await _drain(reader)
        return
    while chunk := await reader.read(_CHUNK):
        await asyncio.to_thread(file.write, chunk)
    await asyncio.to_thread(file.flush)


class TerminalResizer(Protocol):
    """What :class:`AttachTerminal` needs of a client."""

    async def resize_terminal(
        self, container_id: str, process_id: str, width: int, height: int
    ) -> None: ...


class AttachTerminal(_Attacher[None]):
    """Connects the caller's terminal to a process; ``await`` it for the end of the output.

    Input from ``input_fd`` goes to the process's stdin, and its end closes
    that stdin (EOF); output goes to ``output_fd``, stderr to ``error_fd``.
    When the process has a terminal, a terminal at ``input_fd`` is put in raw
    mode (restored at the end), so keys such as Ctrl-C and Ctrl-D reach the
    process's own terminal, and the size of the process's terminal follows
    ``output_fd``'s: set once the process has started, and again on every
    SIGWINCH (through ``client.resize_terminal``; the loop's SIGWINCH handler
    is this attacher's while it runs). Without one, the caller's terminal
    keeps its mode, as ``docker run -i`` leaves it: Ctrl-D ends the input.
    """

    def __init__(
        self,
        client: TerminalResizer,
        *,
        input_fd: int = 0,
        output_fd: int = 1,
        error_fd: int = 2,
    ) -> None:
        super().__init__()
        self._client = client
        self._input_fd = input_fd
        self._output_fd = output_fd
        self._error_fd = error_fd

    async def _run(self, io: DirectIO) -> None:
        loop = asyncio.get_running_loop()
        saved_mode = None
        following = False
        feeding = None
        try:
            if io.stdin is not None:
                if io.terminal and os.isatty(self._input_fd):
                    saved_mode = termios.tcgetattr(self._input_fd)
                    tty.setraw(self._input_fd)
                feeding = _spawn(self._copy_input(io.stdin))
            if io.terminal and os.isatty(self._output_fd):
                following = self._follow_window_size(loop, io)
            await asyncio.gather(
                _copy_to_fd(io.stdout, self._output_fd), _copy_to_fd(io.stderr, self._error_fd)
            )
        finally:
            if saved_mode is not None:
                with contextlib.suppress(termios.error):  # the caller closed it already
                    termios.tcsetattr(self._input_fd, termios.TCSADRAIN, saved_mode)
            if following:
                loop.remove_signal_handler(signal.SIGWINCH)
            if feeding is not None:
                feeding.cancel()

    async def _copy_input(self, stdin: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        try:
            loop.add_reader(self._input_fd, readable.set)
            watched = True
        except PermissionError:  # a regular file: epoll refuses it, and reading it never blocks
            watched = False
        try:
            while True:
                if watched:
                    await readable.wait()
                    readable.clear()
                    # The loop may report readiness once more after we have read
                    # it all, and a terminal is a blocking descriptor: check first.
                    if not select.select([self._input_fd], [], [], 0)[0]:
                        continue
                    data = os.read(self._input_fd, _CHUNK)
                else:
                    data = await asyncio.to_thread(os.read, self._input_fd, _CHUNK)
                if not data:
                    break
                stdin.write(data)
                await stdin.drain()
        except ConnectionError:
            pass
        finally:
            if watched:
                loop.remove_reader(self._input_fd)
            stdin.close()

    def _follow_window_size(self, loop: asyncio.AbstractEventLoop, io: DirectIO) -> bool:
        async def resize() -> None:
            if not await io.wait_started():
                return
            try:
                size = os.get_terminal_size(self._output_fd)
                await self._client.resize_terminal(
                    io.container_id, io.process_id, size.columns, size.lines
                )
            except (OSError, LibcontainerdError) as error:
                log.debug("cannot resize the terminal of %r: %s", io, error)

        _spawn(resize())
        try:
            loop.add_signal_handler(signal.SIGWINCH, lambda: _spawn(resize()))
        except (RuntimeError, ValueError):  # not the main thread: no live resizing
            return False
        return True


async def _copy_to_fd(reader: asyncio.StreamReader | None, fd: int) -> None:
    if reader is None:
        return
    while chunk := await reader.read(_CHUNK):
        await asyncio.to_thread(_write_all, fd, chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # someone made the descriptor non-blocking
            select.select([], [fd], [])
