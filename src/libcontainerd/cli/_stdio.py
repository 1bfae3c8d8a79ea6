"""How a process's stdio is connected to lcd's: in the foreground, or to a log file.

In the foreground lcd copies the process's output to its own stdout and
stderr (and, with -i, its stdin to the process, with -t through a terminal);
a container left running writes to a log file through a small program the
shim runs beside it (:mod:`.._log_writer`). Both write timestamped records
(:mod:`.._log_records`), which ``lcd logs`` reads.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast
from urllib.parse import urlencode

import click

from .._log_records import STDERR, STDOUT, format_records
from ..client import AsyncClient, AttachStdio
from ..stdio import AttachTerminal, CopyToFiles, LogFile
from ._app import Settings
from ._failures import EXIT_LCD_FAILED, Failure
from ._output_file import output_file

__all__ = [
    "Stdio",
    "WrittenLog",
    "check_input_terminal",
    "check_stdio",
    "logged_output",
    "logged_stdio",
    "stdio_for",
]


@dataclass(frozen=True, slots=True)
class Stdio:
    """How a process's stdio is connected: what start() and exec() are given."""

    with_stdin: bool = False
    attach: AttachStdio | None = None
    log: LogCopy | None = field(default=None, compare=False)

    async def finish(self) -> None:
        """Wait until the process's output has been copied out (call it after the exit)."""
        try:
            if isinstance(self.attach, AttachTerminal | CopyToFiles):
                await self.attach
        finally:
            if self.log is not None:
                self.log.close()


class LogCopy:
    """The container's log file, also given the output lcd copies in the foreground.

    Opened on the first write (so a container that never starts leaves no log),
    for appending, unbuffered; stdout and stderr share it, each read one write
    of timestamped records, as the log writer's.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def write(self, stream: bytes, data: bytes) -> int:
        fd = self._open()
        view = memoryview(format_records(stream, data))
        while view:
            view = view[os.write(fd, view) :]
        return len(data)

    def close(self) -> None:
        """Close it; a process that ran without a word still gets its (empty) log."""
        os.close(self._open())
        self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._fd = os.open(self._path, flags, 0o600)
        return self._fd


class _Both:
    """A copy target writing to lcd's own descriptor and to the log."""

    def __init__(self, terminal: IO[bytes], log: LogCopy, stream: bytes) -> None:
        self._terminal = terminal
        self._log = log
        self._stream = stream

    def write(self, data: bytes) -> int:
        self._terminal.write(data)
        self._log.write(self._stream, data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


def check_stdio(interactive: bool, tty: bool, detach: bool) -> None:
    """Refuse -d with -i or -t before anything is created: nothing would serve them."""
    if detach and (interactive or tty):
        raise click.UsageError(
            "-d with -i/-t is not supported: once lcd exits nothing would serve the"
            " container's stdin or terminal, and lcd cannot attach to it later"
        )
    check_input_terminal(interactive, tty)


def check_input_terminal(interactive: bool, tty: bool) -> None:
    """Refuse -i with -t when lcd's stdin is not a terminal (Docker's message and refusal).

    Without this, the container would start on a terminal no one can type into.
    """
    if interactive and tty and not os.isatty(0):
        raise Failure(
            "the input device is not a TTY: -it needs lcd's stdin to be a terminal"
            " (without -t, -i copies piped input)",
            EXIT_LCD_FAILED,
        )


def stdio_for(client: AsyncClient, interactive: bool, tty: bool, log: Path | None = None) -> Stdio:
    """The stdio of a process lcd waits for, connected to lcd's own.

    -t (and -i): the caller's terminal, in raw mode while the process has a
    terminal of its own, whose size follows it. -i alone: the caller's stdin is
    copied to the process, whose stdin is closed at its end (EOF); the
    caller's terminal stays as it is, so Ctrl-D ends the input and Ctrl-C is
    lcd's, forwarded as a signal. Neither: the output only, stdout and stderr
    apart, and with ``log`` also appended to that file (``lcd logs``).
    """
    if interactive or tty:
        return Stdio(with_stdin=interactive, attach=AttachTerminal(client))
    if log is None:
        return Stdio(attach=CopyToFiles(output_file(1), output_file(2)))
    copy = LogCopy(log)
    stdout = cast(IO[bytes], _Both(output_file(1), copy, STDOUT))
    stderr = cast(IO[bytes], _Both(output_file(2), copy, STDERR))
    return Stdio(attach=CopyToFiles(stdout, stderr), log=copy)


def logged_stdio(settings: Settings, container_id: str) -> Stdio:
    """The stdio of a container lcd leaves running: its output appended to its log file."""
    return Stdio(attach=logged_output(settings, container_id))


def logged_output(settings: Settings, container_id: str) -> LogFile:
    """The container's log, written by :mod:`.._log_writer`, which the shim runs beside it."""
    return WrittenLog(settings.log_path(container_id), _log_writer(settings))


class WrittenLog(LogFile):
    """A :class:`LogFile` the shim hands to a logging program (``binary://``), not appends to.

    Why not the shim's own appending: only the writer of a line knows when it
    came, and ``lcd logs --since``/``-t`` need that.
    """

    __slots__ = ("program",)

    def __init__(self, path: str | os.PathLike[str], program: Path) -> None:
        super().__init__(path)
        self.program = program

    @property
    def stdio_paths(self) -> tuple[str, str]:
        uri = f"binary://{self.program}?{urlencode({'log': self.path})}"
        return uri, uri


_LOG_WRITER = """#!{python} -I
# lcd's log writer (libcontainerd._log_writer), run by containerd's shim; written by lcd.
from libcontainerd._log_writer import main

raise SystemExit(main())
"""


def _log_writer(settings: Settings) -> Path:
    """The log writer's launcher under the root directory, (re)written when it differs.

    A file of its own: the shim runs a program by path, with arguments from
    the URI's query, and with no environment to find Python's packages in.
    """
    program = Path(settings.root_dir, "bin", "lcd-log-writer")
    text = _LOG_WRITER.format(python=sys.executable)
    try:
        if program.read_text() == text:
            return program
    except OSError:
        pass
    program.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    temporary = program.with_name(f".{program.name}.{os.getpid()}")
    temporary.write_text(text)
    temporary.chmod(0o755)
    temporary.replace(program)
    return program
