"""How lcd fails: one line on stderr and an exit status, never a traceback.

1 for an error, 2 for bad usage, 130 when interrupted. The commands that exit
with their process's status (``lcd run``, ``lcd start -a``, ``lcd exec``) use,
like ``docker run``, 125 when lcd itself fails, 126 when the command cannot be
run and 127 when it is not found.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from ..errors import LibcontainerdError

__all__ = [
    "EXIT_CANNOT_RUN",
    "EXIT_INTERRUPTED",
    "EXIT_LCD_FAILED",
    "EXIT_NOT_FOUND",
    "Failure",
    "describe_os_error",
    "fail_line",
    "one_line",
    "process_exit_statuses",
    "start_failure_status",
]

# Exit statuses of `lcd run` when the container does not run (as docker run's).
EXIT_LCD_FAILED = 125
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130


class Failure(Exception):
    """A failure to report as one line, with the exit status to use."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code  # None: the command's usual status for a failure


def one_line(message: str) -> str:
    """The first line of a message (a Supervisor's error carries the log's tail below it)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    first = lines[0]
    return first[:-1] if first.endswith(":") else first


def describe_os_error(error: OSError) -> str:
    if error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return error.strerror or str(error)


def fail_line(text: str) -> None:
    with contextlib.suppress(OSError):
        click.echo(text, err=True)


@contextlib.contextmanager
def process_exit_statuses() -> Iterator[None]:
    """For commands that exit with their process's status: lcd's own failures exit with 125.

    Usage errors keep their 2, and a failure that names its status (126, 127) keeps it.
    """
    try:
        yield
    except (LibcontainerdError, OSError) as error:
        message = str(error) if isinstance(error, LibcontainerdError) else describe_os_error(error)
        raise Failure(message, EXIT_LCD_FAILED) from None
    except Failure as error:
        raise Failure(error.message, error.exit_code or EXIT_LCD_FAILED) from None


def start_failure_status(message: str) -> int:
    """The exit status for a process that did not start, from containerd's reason."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return EXIT_NOT_FOUND
    if "permission denied" in lowered:
        return EXIT_CANNOT_RUN
    return EXIT_LCD_FAILED
