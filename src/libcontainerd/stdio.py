"""What a process's stdio is connected to: the DirectIO a callback receives, log files, attachers.

A :data:`StdioCallback` receives the process's FIFOs (made by
:mod:`libcontainerd._fifo`, as containerd's ``cio`` does) as a
:class:`DirectIO` of asyncio streams before the process is created, so no
output is lost; :class:`CollectOutput`, :class:`CopyToFiles`,
:class:`AttachTerminal` and :func:`discard` are ready-made callbacks.

Log-file mode (:class:`LogFile`) uses no FIFOs: the shim appends the
process's stdout and stderr to a file itself, whether a client runs or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
import select
import signal
import termios
import tty
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import IO, TYPE_CHECKING, Any, Final, Generic, Protocol, TypeAlias, TypeVar

from ._background import spawn
from .errors import FailedPrecondition, InvalidArgument, LibcontainerdError

if TYPE_CHECKING:
    from ._fifo import FifoSet

__all__ = [
    "AttachTerminal",
    "CollectOutput",
    "CopyToFiles",
    "DirectIO",
    "LogFile",
    "StdioCallback",
    "discard",
]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_BAD_PERCENT_ESCAPE: Final = re.compile("%(?![0-9A-Fa-f]{2})")

T = TypeVar("T")


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
    spawn(_drain(io.stdout))
    spawn(_drain(io.stderr))


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
        self._task = spawn(self._run(io))

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


class ProcessSignaller(Protocol):
    """What :class:`CollectOutput` needs of a client (either kind) to kill a process."""

    def signal_process(
        self, container_id: str, process_id: str, signal: int | str
    ) -> Awaitable[None] | None: ...


class CollectOutput(_Attacher[tuple[bytes, bytes]]):
    """Collects stdout and stderr into bytes; ``await`` it (blocking code: ``.result()``).

    The result is ``(stdout, stderr)`` once the process exited and its output ended.

    ``stdin`` is written to the process (started ``with_stdin=True``), which
    then sees EOF; without it a stdin is closed at once. stderr is ``b""``
    with a terminal.

    ``max_bytes`` bounds what is kept of each stream (``max_stdout`` and
    ``max_stderr`` set one stream's bound): the first bytes are kept, the
    rest is read and dropped, so the process is never blocked on a full pipe,
    and :attr:`truncated` / :attr:`dropped` say so. With ``kill`` (a client),
    the process is killed (SIGKILL) as soon as a bound is passed instead of
    being left to write on. Without bounds everything is held in memory.
    Raises InvalidArgument for a bound that is not an integer >= 0.
    """

    def __init__(
        self,
        stdin: bytes | None = None,
        *,
        max_bytes: int | None = None,
        max_stdout: int | None = None,
        max_stderr: int | None = None,
        kill: ProcessSignaller | None = None,
    ) -> None:
        super().__init__()
        self._stdin = stdin
        for name, value in (
            ("max_bytes", max_bytes),
            ("max_stdout", max_stdout),
            ("max_stderr", max_stderr),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise InvalidArgument(
                    f"CollectOutput: {name} must be an integer >= 0, not {value!r}"
                )
        self._limits = (
            max_stdout if max_stdout is not None else max_bytes,
            max_stderr if max_stderr is not None else max_bytes,
        )
        self._kill = kill
        self._killed = False
        self._dropped = [0, 0]

    @property
    def dropped(self) -> tuple[int, int]:
        """Bytes of ``(stdout, stderr)`` read past the bounds and dropped (so far)."""
        return self._dropped[0], self._dropped[1]

    @property
    def truncated(self) -> bool:
        """Whether either stream said more than its bound (the result is then cut)."""
        return any(self._dropped)

    def _prepare(self, io: DirectIO) -> None:
        _check_stdin(io, self._stdin, "CollectOutput")

    async def _run(self, io: DirectIO) -> tuple[bytes, bytes]:
        _, out, err = await asyncio.gather(
            _feed(io.stdin, self._stdin),
            self._collect(io, io.stdout, 0),
            self._collect(io, io.stderr, 1),
        )
        return out, err

    async def _collect(
        self, io: DirectIO, reader: asyncio.StreamReader | None, index: int
    ) -> bytes:
        if reader is None:
            return b""
        limit = self._limits[index]
        if limit is None:
            return await reader.read()
        kept = bytearray()
        while chunk := await reader.read(_CHUNK):
            room = limit - len(kept)
            if room > 0:
                kept += chunk[:room]
            if len(chunk) > room:
                self._dropped[index] += len(chunk) - max(room, 0)
                await self._over_limit(io)
        return bytes(kept)

    async def _over_limit(self, io: DirectIO) -> None:
        if self._kill is None or self._killed:
            return
        self._killed = True
        kill = self._kill.signal_process
        try:
            if inspect.iscoroutinefunction(kill):
                await kill(io.container_id, io.process_id, signal.SIGKILL)
            else:  # the blocking Client: its call needs this loop free, so from a thread
                await asyncio.to_thread(kill, io.container_id, io.process_id, signal.SIGKILL)
        except LibcontainerdError as error:  # it exited meanwhile: nothing left to stop
            log.debug("cannot kill %r past its output bound: %s", io, error)


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
                feeding = spawn(self._copy_input(io.stdin))
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

        spawn(resize())
        try:
            loop.add_signal_handler(signal.SIGWINCH, lambda: spawn(resize()))
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
