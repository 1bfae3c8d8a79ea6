"""``lcd helper start|stop|status``: a resident lcd that later commands run in.

Most of a short lcd command's time is Python starting and importing grpc and
lcd (~170 ms of ``lcd ps``'s ~180 here). With a helper running, ``lcd``
hands each command to it (:mod:`libcontainerd._lcd`), which runs it in a
fork of itself with the caller's stdio, folder and environment
(:mod:`._helper_server`), or, for ``ps``, ``inspect``, ``top`` and
``version``, in its warm worker (:mod:`._helper_worker`): ``lcd ps`` then
takes ~16 ms. Commands behave the
same with or without it; ``$LIBCONTAINERD_HELPER=off`` bypasses it. It
serves only its own user, install and code (after an upgrade it steps aside
and ends), and ends by itself after ``--idle-timeout`` without a command.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import _lcd
from ._app import CONTEXT, json_option
from ._failures import Failure
from ._helper_server import STATUS_REQUEST

__all__ = ["COMMANDS", "helper_status"]

_EXIT_NOT_RUNNING = 3
_Function = TypeVar("_Function", bound=Callable[..., Any])

socket_option = click.option(
    "--socket",
    "socket_path",
    default=None,
    metavar="PATH",
    help=f"the helper's socket [$LIBCONTAINERD_HELPER_SOCKET, else {_lcd.DEFAULT_HELPER_SOCKET}]",
)


def helper_status(path: str) -> dict[str, str] | None:
    """The helper's status fields (pid, served, warm, worker, active, since, stale, package,
    python), or None.

    The pid is the peer's own (SO_PEERCRED), so even a helper of another
    version, whose reply this one cannot read, can be told apart and stopped.
    """
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    connection.settimeout(5)
    try:
        connection.connect(path)
        peer = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        connection.send(STATUS_REQUEST)
        reply = connection.recv(4096).decode(errors="replace")
    except OSError:
        return None
    finally:
        connection.close()
    fields = dict(line.partition("=")[::2] for line in reply.splitlines() if "=" in line)
    fields["pid"] = str(array.array("i", peer)[0])
    return fields


@click.group(context_settings=CONTEXT)
def helper() -> None:
    """A resident lcd that runs later lcd commands without Python's start-up cost."""


def _seconds_option(
    flag: str, default: float, minimum: float, help: str
) -> Callable[[_Function], _Function]:
    return click.option(
        flag,
        default=default,
        show_default=True,
        type=click.FloatRange(min=minimum),
        metavar="SECONDS",
        help=help,
    )


@helper.command("start")
@socket_option
@_seconds_option("--idle-timeout", 1800.0, 1, "end after this long without a command")
def helper_start(socket_path: str | None, idle_timeout: float) -> None:
    """Start the command helper (nothing happens if one runs)."""
    path = socket_path or _lcd.helper_socket()
    running = helper_status(path)
    if running is not None:
        ours = (os.path.dirname(_lcd.__file__), sys.executable)
        if (running.get("package"), running.get("python")) != ours:
            raise Failure(
                f"a command helper of another install runs at {path} (pid {running['pid']},"
                f" {running.get('package')}): stop it first, or use --socket"
            )
        if running.get("stale") == "0":
            click.echo(f"the command helper is already running (pid {running['pid']})")
            return
        # Its code changed: it serves nobody now; end it once its commands have.
        _stop(int(running["pid"]), timeout=30)
    log = Path(f"{path}.log")
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "libcontainerd.cli._helper_server", path, str(idle_timeout)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            cwd="/",
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while (status := helper_status(path)) is None or status["pid"] != str(process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            process.wait()
            tail = log.read_text(errors="replace").strip().splitlines()[-1:]
            raise Failure(f"the command helper did not start (see {log}): {' '.join(tail)}")
        time.sleep(0.02)
    click.echo(
        f"started the command helper: pid {process.pid}, socket {path}"
        f" (it ends after {idle_timeout:g} s without a command)"
    )


@helper.command("stop")
@socket_option
@_seconds_option(
    "--timeout", 30.0, 0, "how long its running commands may take to end before it is killed"
)
def helper_stop(socket_path: str | None, timeout: float) -> None:
    """Stop the command helper once its running commands have ended."""
    path = socket_path or _lcd.helper_socket()
    status = helper_status(path)
    if status is None:
        click.echo(f"no command helper answers at {path}")
        return
    pid = int(status["pid"])
    _stop(pid, timeout)
    click.echo(f"stopped the command helper (pid {pid})")


def _stop(pid: int, timeout: float) -> None:
    """SIGTERM the helper, wait for its running commands, SIGKILL it after ``timeout``."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not select.select([pidfd], [], [], timeout)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], 10)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


@helper.command("status")
@socket_option
@json_option
def helper_status_command(socket_path: str | None, as_json: bool) -> None:
    """Whether a command helper runs, and what it has served (exit status 3: none)."""
    path = socket_path or _lcd.helper_socket()
    status = helper_status(path)
    if as_json:
        click.echo(json.dumps({"socket": path, "running": status is not None} | _typed(status)))
    elif status is None:
        click.echo(f"no command helper answers at {path}")
    else:
        started = status.get("since", "")
        since = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(started)))
            if started.isdigit()
            else "?"
        )
        stale = " (stale: its code changed, it ends after its running commands)"
        click.echo(
            f"the command helper runs: pid {status['pid']}, socket {path}, since {since},"
            f" {status.get('served', '?')} commands served ({status.get('warm', '?')} by its warm"
            f" worker), {status.get('active', '?')} running"
            + (stale if status.get("stale") == "1" else "")
        )
    if status is None:
        sys.exit(_EXIT_NOT_RUNNING)


def _typed(status: dict[str, str] | None) -> dict[str, object]:
    """The status fields with their JSON types (what a helper of another version omits: null)."""
    if status is None:
        return {}

    def number(key: str) -> int | None:
        value = status.get(key, "")
        return int(value) if value.isdigit() else None

    return {
        "pid": number("pid"),
        "served": number("served"),
        "warm": number("warm"),
        "worker": number("worker"),
        "active": number("active"),
        "since": number("since"),
        "stale": status.get("stale") == "1",
        "package": status.get("package"),
        "python": status.get("python"),
    }


COMMANDS: tuple[click.Command, ...] = (helper,)
