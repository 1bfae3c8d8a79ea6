"""The ``lcd`` program's entry: hand the command to a running command helper, else run it here.

``lcd helper start`` leaves a process resident that has already imported lcd
(grpc, the client, every command): Python's start-up with those imports is
most of a short command's time (~170 ms of ``lcd ps``'s ~180). This module is
what runs first, so it imports only what the hand-over needs (``_socket`` and
``_signal``, not ``socket`` and ``signal``, whose enums cost more than the
rest): it sends the command line, the environment, the working folder and
its stdin, stdout and stderr to the helper (``$LIBCONTAINERD_HELPER_SOCKET``,
else :data:`DEFAULT_HELPER_SOCKET`), forwards the signals it gets, and exits
with the command's status. The helper runs the command in a forked child of
itself, with those descriptors as its own, so the command reads, writes and
sees terminals as it would here. When no helper answers, or one of another
install or older code does, or ``$LIBCONTAINERD_HELPER`` is ``off``, the
command runs in this process as before: the helper changes speed, never
what a command does. A helper that took the command and went away without
answering fails it (status 125): it may have begun, and is never run twice.
The wire format (:func:`request`, :class:`Request` and the replies) is
here, the helper's side in :mod:`libcontainerd.cli._helper_server`.
"""

from __future__ import annotations

import _socket
import os
import sys

# The C module under `signal`, which costs an enum import more; typed as a module.
_signal = __import__("_signal")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["DEFAULT_HELPER_SOCKET", "PROTOCOL", "helper_socket", "main"]

DEFAULT_HELPER_SOCKET = "/run/libcontainerd/lcd-helper.sock"
PROTOCOL = b"lcd-helper/1"

# Commands that always run here: the helper's own, and the daemon's (a
# supervisor started from a helper's child would be the helper's grandchild).
_HERE = frozenset({"helper", "daemon"})

# Signals a terminal or a caller sends to lcd, forwarded to the command
# (Linux numbers; _signal has no names without the signal module's enums):
# SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM, SIGWINCH.
_FORWARDED = (1, 2, 3, 10, 12, 15, 28)

# The helper's replies: the command runs, or not served here (the reason
# follows), or its exit status (decimal) once it has ended.
RUNNING = b"R"
REFUSED = b"N"
EXITED = b"X"
SIGNAL = b"S"


def helper_socket() -> str:
    """Where the command helper listens: ``$LIBCONTAINERD_HELPER_SOCKET`` or the default."""
    return os.environ.get("LIBCONTAINERD_HELPER_SOCKET") or DEFAULT_HELPER_SOCKET


def main() -> NoReturn:
    """Run ``lcd`` with ``sys.argv``: through the helper when one serves it, else here."""
    status = None
    wanted = os.environ.get("LIBCONTAINERD_HELPER", "").lower() not in ("0", "off", "no", "false")
    if wanted and _HERE.isdisjoint(sys.argv[1:]):
        status = _through_helper()
    if status is not None:
        os._exit(status)
    from .cli import main as run_here

    run_here()


def request(argv: list[str], cwd: str, umask: int, environ: dict[str, str], package: str) -> bytes:
    """The hand-over message: NUL-separated fields (no field can hold a NUL)."""
    fields = [
        PROTOCOL,
        os.fsencode(package),
        os.fsencode(sys.executable),
        os.fsencode(cwd),
        str(umask).encode(),
        str(len(argv)).encode(),
        *(os.fsencode(arg) for arg in argv),
        *(os.fsencode(f"{key}={value}") for key, value in environ.items()),
    ]
    return b"\0".join(fields)


class Request:
    """A hand-over as the helper reads it (see :func:`request`)."""

    __slots__ = ("argv", "cwd", "environ", "executable", "package", "umask")

    def __init__(self, message: bytes) -> None:
        """Parse ``message``; ValueError names what is wrong with it."""
        fields = message.split(b"\0")
        if len(fields) < 6 or fields[0] != PROTOCOL:
            raise ValueError(f"not an {PROTOCOL.decode()} request")
        self.package = os.fsdecode(fields[1])
        self.executable = os.fsdecode(fields[2])
        self.cwd = os.fsdecode(fields[3])
        self.umask = int(fields[4])
        count = int(fields[5])
        if not 0 < count <= len(fields) - 6:
            raise ValueError(f"{count} arguments announced, {len(fields) - 6} fields sent")
        self.argv = [os.fsdecode(arg) for arg in fields[6 : 6 + count]]
        self.environ: dict[str, str] = {}
        for entry in fields[6 + count :]:
            key, equals, value = os.fsdecode(entry).partition("=")
            if not equals:
                raise ValueError(f"environment entry without '=': {key!r}")
            self.environ[key] = value


def _through_helper() -> int | None:
    """The command's exit status from the helper, or None when it did not run it."""
    try:
        cwd = os.getcwd()
    except OSError:  # a removed working folder: let the command say so itself
        return None
    connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        connection.connect(helper_socket())
        umask = os.umask(0o022)
        os.umask(umask)
        message = request(sys.argv, cwd, umask, dict(os.environ), os.path.dirname(__file__))
        descriptors = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        connection.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, descriptors)])
    except OSError:  # none listens, a stale socket, a closed stdio descriptor, ...
        connection.close()
        return None
    try:
        reply = connection.recv(4096)
    except OSError:
        reply = b""
    if reply[:1] == REFUSED:
        connection.close()
        return None
    if reply[:1] != RUNNING:
        # Handed over, then no answer: the command may have begun, so it is not run again here.
        os.write(2, b"lcd: the command helper went away before it answered\n")
        return 125
    return _wait(connection)


def _wait(connection: _socket.socket) -> int:
    """Forward signals until the helper reports the command's exit status."""

    def forward(number: int, _frame: object) -> None:
        try:
            connection.send(SIGNAL + str(number).encode())
        except OSError:  # the helper is gone: the loop below says so
            return

    for number in _FORWARDED:
        _signal.signal(number, forward)
    while True:
        try:
            reply = connection.recv(4096)
        except OSError:
            reply = b""
        if reply[:1] == EXITED:
            return int(reply[1:])
        if not reply:
            os.write(2, b"lcd: the command helper went away before the command ended\n")
            return 125
