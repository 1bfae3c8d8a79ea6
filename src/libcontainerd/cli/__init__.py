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
A new group is a module of its own, added to :data:`GROUPS`. What the groups
share: ``_app`` (the group, its options, opening a client), ``_failures``,
``_output``, and the pieces below them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

try:
    import click
    import rich  # noqa: F401 - checked here, before a command's module needs it
except ImportError:  # pragma: no cover - only without the extra
    sys.stderr.write("lcd needs the cli extra: pip install 'libcontainerd[cli]'\n")
    raise SystemExit(2) from None

from ..errors import LibcontainerdError
from . import (
    _checkpoint,
    _copy,
    _daemon,
    _demo,
    _images,
    _inspect,
    _lifecycle,
    _network,
    _registry,
    _run,
    _stats,
)
from ._app import cli
from ._failures import EXIT_INTERRUPTED, Failure, describe_os_error, fail_line, one_line

__all__ = ["cli", "main"]

# The command groups, each a module's COMMANDS.
GROUPS: tuple[tuple[click.Command, ...], ...] = (
    _run.COMMANDS,
    _lifecycle.COMMANDS,
    _inspect.COMMANDS,
    _stats.COMMANDS,
    _checkpoint.COMMANDS,
    _daemon.COMMANDS,
    _demo.COMMANDS,
    _network.COMMANDS,
    _images.COMMANDS,
    _registry.COMMANDS,
    _copy.COMMANDS,
)
for _commands in GROUPS:
    for _command in _commands:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``lcd`` entry point (also ``python -m libcontainerd``): one line per failure."""
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
