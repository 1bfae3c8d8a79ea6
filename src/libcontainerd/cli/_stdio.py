"""How a process's stdio is connected to lcd's: in the foreground, or to a log file.

In the foreground lcd copies the process's output to its own stdout and
stderr (and, with -i, its stdin to the process, with -t through a terminal);
a container left running writes to a log file that the shim appends to
itself (``lcd logs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from ..client import AsyncClient, AttachStdio
from ..stdio import AttachTerminal, CopyToFiles, LogFile
from ._app import Settings
from ._output_file import output_file

__all__ = ["Stdio", "check_stdio", "logged_stdio", "stdio_for"]


@dataclass(frozen=True, slots=True)
class Stdio:
    """How a process's stdio is connected: what start() and exec() are given."""

    with_stdin: bool = False
    attach: AttachStdio | None = None

    async def finish(self) -> None:
        """Wait until the process's output has been copied out (call it after the exit)."""
        if isinstance(self.attach, AttachTerminal | CopyToFiles):
            await self.attach


def check_stdio(interactive: bool, tty: bool, detach: bool) -> None:
    """Refuse -d with -i or -t before anything is created: nothing would serve them."""
    if detach and (interactive or tty):
        raise click.UsageError(
            "-d with -i/-t is not supported: once lcd exits nothing would serve the"
            " container's stdin or terminal, and lcd cannot attach to it later"
        )


def stdio_for(client: AsyncClient, interactive: bool, tty: bool) -> Stdio:
    """The stdio of a process lcd waits for, connected to lcd's own.

    -t (and -i): the caller's terminal, in raw mode while the process has a
    terminal of its own, whose size follows it. -i alone: the caller's stdin is
    copied to the process, whose stdin is closed at its end (EOF); the
    caller's terminal stays as it is, so Ctrl-D ends the input and Ctrl-C is
    lcd's, forwarded as a signal. Neither: the output only, stdout and stderr
    apart.
    """
    if interactive or tty:
        return Stdio(with_stdin=interactive, attach=AttachTerminal(client))
    return Stdio(attach=CopyToFiles(output_file(1), output_file(2)))


def logged_stdio(settings: Settings, container_id: str) -> Stdio:
    """The stdio of a container lcd leaves running: its output appended to its log file."""
    return Stdio(attach=LogFile(settings.log_path(container_id)))
