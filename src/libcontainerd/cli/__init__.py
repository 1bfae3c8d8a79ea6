"""The ``lcd`` command (needs the ``cli`` extra: click and rich).

Every command is a short sequence of :class:`AsyncClient` calls. Without
``--address`` (or ``$CONTAINERD_ADDRESS``) a command uses the embedded
containerd and starts it when nothing answers at its socket (saying so on
stderr); the read-only ones (``ps``, ``top``, ``stats``, ``events``, ``logs``,
``inspect``, ``version``) never start it: they say that none answers and how
to start one. ``lcd daemon`` manages that daemon (see :mod:`._embedded`).

Failures are one line on stderr and a non-zero exit status, never a
traceback: 1 for an error, 2 for bad usage, 130 when interrupted. ``lcd run``,
``lcd start -a`` and ``lcd exec`` exit with their process's status instead,
and like ``docker run`` with 125 when lcd itself fails, 126 when the command
cannot be run, 127 when it is not found.

In the foreground lcd copies a process's output to its own stdout and stderr
(and with -i its stdin to the process, with -t through a terminal), and
without --rm, -i or -t to the container's log file too; a container it
leaves running writes to that log file, which the shim appends to by itself
(``lcd logs``). The exit of a task lcd deletes is kept in container labels
(``_containers``), so ``ps -a``, ``wait`` and ``inspect`` still show it.

One module per command group, each listing its commands in ``COMMANDS``:
``_run`` (run, create, exec), ``_lifecycle`` (start, kill, stop, wait, pause,
resume/unpause, update, rm), ``_inspect`` (ps, inspect, top, events, version, logs),
``_stats``, ``_checkpoint`` (checkpoint, restore), ``_daemon``, ``_demo``,
``_network`` (network create, ls, inspect, rm; port) and ``_images`` (images,
import/load, export/save, tag, rmi, image prune/inspect, system df), ``_registry``
(pull, push, login, logout), ``_copy`` (cp).
A new group is a module of its own, added to :data:`GROUPS` with its command names. What the groups
share: ``_app`` (the group, its options, opening a client), ``_failures``,
``_output``, and the pieces below them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

try:
    import click
except ImportError:  # pragma: no cover - only without the extra
    click = None  # type: ignore[assignment]
# rich is only looked for here: the commands that print with it import it themselves.
if click is None or importlib.util.find_spec("rich") is None:  # pragma: no cover
    sys.stderr.write("lcd needs the cli extra: pip install 'libcontainerd[cli]'\n")
    raise SystemExit(2)

from ..errors import LibcontainerdError
from ._app import cli
from ._failures import EXIT_INTERRUPTED, Failure, describe_os_error, fail_line, one_line

__all__ = ["GROUPS", "cli", "exit_status", "main"]

# The command groups: each module's COMMANDS, by command name. A command's
# module is imported when that command runs (or for help), not at start-up:
# importing all of them cost more than most commands themselves.
GROUPS: dict[str, tuple[str, ...]] = {
    "_run": ("run", "create", "exec"),
    "_lifecycle": (
        "start",
        "kill",
        "stop",
        "wait",
        "pause",
        "resume",
        "unpause",
        "update",
        "rm",
        "rename",
    ),
    "_inspect": ("ps", "inspect", "top", "events", "version", "logs"),
    "_stats": ("stats",),
    "_checkpoint": ("checkpoint", "restore"),
    "_daemon": ("daemon",),
    "_demo": ("demo",),
    "_network": ("network", "port"),
    "_images": ("images", "import", "load", "export", "save", "tag", "rmi", "image", "system"),
    "_registry": ("pull", "push", "login", "logout"),
    "_copy": ("cp",),
    "_helper": ("helper",),
}
cli.lazy_commands = {name: module for module, names in GROUPS.items() for name in names}


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``lcd`` entry point (also ``python -m libcontainerd``): one line per failure.

    Run as the program (no ``argv``), it ends the process once its output is
    flushed, without tearing the interpreter down: grpc's and the modules'
    clean-up cost ~10 % of a short command, and nothing of lcd's is left to
    finish. Given ``argv``, it raises SystemExit as usual.
    """
    try:
        _main(argv)
    except SystemExit as done:
        if argv is not None:
            raise
        _leave(done.code)


def _leave(code: object) -> NoReturn:
    """Flush stdout and stderr and end the process with ``code``'s status, as SystemExit would."""
    os._exit(exit_status(code))


def exit_status(code: object) -> int:
    """The status a SystemExit's ``code`` ends a process with (a text is printed, as Python
    does), once stdout and stderr are flushed."""
    if code is not None and not isinstance(code, int):
        fail_line(str(code))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, or a closed stream
            stream.flush()
    return code if isinstance(code, int) else (0 if code is None else 1)


def _main(argv: Sequence[str] | None) -> NoReturn:
    try:
        status = cli.main(args=argv, prog_name="lcd", standalone_mode=False)
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else "lcd"
        fail_line(f"{where}: {one_line(error.format_message())} (see '{where} --help')")
        sys.exit(error.exit_code)
    except click.ClickException as error:
        fail_line(f"lcd: {one_line(error.format_message())}")
        sys.exit(error.exit_code)
    except click.Abort:
        fail_line("lcd: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Failure as error:
        fail_line(f"lcd: {one_line(error.message)}")
        sys.exit(error.exit_code or 1)
    except LibcontainerdError as error:
        fail_line(f"lcd: {one_line(str(error))}")
        sys.exit(1)
    except BrokenPipeError:
        # Our reader went away (`lcd ps | head`): nothing left to say, to anyone.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the final flush
        sys.exit(1)
    except OSError as error:
        fail_line(f"lcd: {describe_os_error(error)}")
        sys.exit(1)
    except KeyboardInterrupt:
        fail_line("lcd: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(status if isinstance(status, int) else 0)
