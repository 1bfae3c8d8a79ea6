"""The command helper's process: lcd imported once, each command run in a fork of it.

Started by ``lcd helper start`` as ``python -m libcontainerd.cli._helper_server
SOCKET IDLE_SECONDS``. It imports every command's module, then listens on
SOCKET (a SOCK_SEQPACKET socket, mode 0600) for hand-overs from
:mod:`libcontainerd._lcd`. For each one it forks: the child takes the
caller's stdin, stdout and stderr as its own, its working folder, umask,
environment and command line, and runs lcd's ``main`` as a fresh process
would, while the helper forwards the caller's signals to it and reports its
exit status (128 + N for a signal N, as a shell does). The short read-only
commands go to the warm worker instead when it is free
(:mod:`._helper_worker`: no fork, and a client kept open).

Forking is what makes this safe and cheap: nothing of grpc runs in the
helper (grpc is imported, never initialised: a channel is made only in a
child), so each command gets a process of its own with nothing shared, at
the cost of a fork (~1-2 ms) instead of Python's start-up and the imports
(~170 ms). A hand-over is refused (and the caller runs the command itself)
when it comes from another install or Python, or once any of the helper's
own modules changed on disk: then the helper stops listening and ends when
its last command has. It also ends after ``IDLE_SECONDS`` without a command,
and on SIGTERM once its running commands have ended. A caller whose
connection closes (it was killed) has its command killed; the commands die
with the helper (PR_SET_PDEATHSIG) instead of writing to callers that no
longer wait for them.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import gc
import importlib
import io
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from .. import _lcd
from .._rpc import build_method_tables
from . import _helper_worker

__all__ = ["STATUS_REQUEST", "HelperServer", "descriptors_of", "main", "take_caller", "use_stdio"]

# A connection whose first message is this asks for the helper's status line.
STATUS_REQUEST = b"lcd-helper-status"

_PR_SET_PDEATHSIG = 1
_MAX_MESSAGE = 1 << 20
_HAND_OVER_SECONDS = 5.0
# What a process does on these by default is nothing (SIGWINCH): forwarded, they end nothing.
_IGNORED_BY_DEFAULT = frozenset({signal.SIGWINCH})


@dataclass
class _Command:
    """One hand-over's forked child and the caller's connection."""

    pid: int
    pidfd: int
    connection: socket.socket | None


@dataclass
class _Warm:
    """The warm worker (:mod:`._helper_worker`), and the caller whose command it runs."""

    pid: int
    pidfd: int
    connection: socket.socket
    caller: socket.socket | None = None
    caller_stderr: int = -1


@dataclass
class HelperServer:
    """The accept-fork-report loop, on one listening socket."""

    path: Path
    idle_seconds: float
    package: str = field(default_factory=lambda: os.path.dirname(_lcd.__file__))
    served: int = 0
    served_warm: int = 0
    started: float = field(default_factory=time.time)
    _code: dict[str, int] = field(default_factory=dict)
    _commands: dict[int, _Command] = field(default_factory=dict)
    _listening: bool = True
    _stale: bool = False
    _socket_inode: int = 0
    _warm: _Warm | None = None

    def load(self) -> None:
        """Import every command (and what they import lazily), then note the code's files."""
        from . import GROUPS

        for module in GROUPS:
            importlib.import_module(f"{__package__}.{module}")
        for name in ("rich.console", "rich.table", "rich.progress", "rich.live"):
            importlib.import_module(name)
        build_method_tables()
        _helper_worker.command_of(["lcd", "ps"])  # click's parser, warmed up
        for loaded in list(sys.modules.values()):
            filename = getattr(loaded, "__file__", None)
            if filename and filename.startswith(self.package + os.sep):
                self._code[filename] = os.stat(filename).st_mtime_ns
        gc.collect()
        gc.freeze()  # the children do not touch (copy) the helper's objects to collect them

    def code_changed(self) -> bool:
        """Whether any module the helper loaded changed on disk (or went) since it did."""
        for filename, mtime in self._code.items():
            try:
                if os.stat(filename).st_mtime_ns != mtime:
                    return True
            except OSError:
                return True
        return False

    def status_line(self) -> str:
        """What ``lcd helper status`` shows: ``key=value`` lines."""
        fields = {
            "pid": os.getpid(),
            "served": self.served,
            "warm": self.served_warm,
            "worker": self._warm.pid if self._warm is not None else "",
            "active": len(self._commands) + int(self._warm_busy()),
            "since": f"{self.started:.0f}",
            "stale": int(self._stale),
            "package": self.package,
            "python": sys.executable,
        }
        return "\n".join(f"{key}={value}" for key, value in fields.items())

    def serve(self) -> None:
        """Listen until stopped, idle or stale, then wait for the running commands."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old_umask)
        self._socket_inode = self.path.stat().st_ino
        listener.listen(64)
        wake_reader, wake_writer = socket.socketpair()
        wake_writer.setblocking(False)
        signal.set_wakeup_fd(wake_writer.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, lambda *_: None)  # delivered through the wake-up socket
        signal.signal(signal.SIGINT, lambda *_: None)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, "accept")
        selector.register(wake_reader, selectors.EVENT_READ, "signal")
        last = time.monotonic()
        self._start_worker(selector)
        try:
            while self._listening or self._busy():
                timeout = None
                if self._listening and not self._busy():
                    timeout = max(0.0, last + self.idle_seconds - time.monotonic())
                ready = selector.select(timeout)
                if not ready and self._listening and not self._busy():
                    self._stop_listening(selector, listener)
                for key, _events in ready:
                    if selector.get_map().get(key.fd) is not key:
                        continue  # unregistered by an event before it in this batch
                    if key.data == "accept":
                        self._accept(listener, selector)
                        if self._stale:
                            self._stop_listening(selector, listener)
                    elif key.data == "signal":
                        received = wake_reader.recv(64)
                        if signal.SIGTERM in received or signal.SIGINT in received:
                            self._stop_listening(selector, listener)
                    elif isinstance(key.data, tuple) and key.data[0] == "caller":
                        self._from_caller(key.data[1], selector)
                    elif isinstance(key.data, tuple) and key.data[0] == "exit":
                        self._reap(key.data[1], selector)
                    elif key.data == "warm reply":
                        self._from_worker(selector)
                    elif key.data == "warm caller":
                        self._from_warm_caller(selector)
                    elif key.data == "warm exit":
                        self._end_worker(selector)
                last = time.monotonic() if self._busy() else last
        finally:
            if self._listening:
                self._stop_listening(selector, listener)
            self._end_worker(selector)

    def _busy(self) -> bool:
        """Whether a command runs (forked, or in the warm worker)."""
        return bool(self._commands) or self._warm_busy()

    def _warm_busy(self) -> bool:
        return self._warm is not None and self._warm.caller is not None

    def _stop_listening(self, selector: selectors.BaseSelector, listener: socket.socket) -> None:
        if not self._listening:
            return
        self._listening = False
        selector.unregister(listener)
        listener.close()
        try:
            # Only our own socket: a newer helper may have bound the path since.
            if self.path.stat().st_ino == self._socket_inode:
                self.path.unlink()
        except OSError:
            pass

    def _accept(self, listener: socket.socket, selector: selectors.BaseSelector) -> None:
        try:
            connection, _address = listener.accept()
        except OSError:
            return
        try:
            # A caller sends at once; one that does not must not hold up the others.
            connection.settimeout(_HAND_OVER_SECONDS)
            message, ancillary, _flags, _address = connection.recvmsg(
                _MAX_MESSAGE, socket.CMSG_SPACE(3 * 4)
            )
            connection.settimeout(None)
        except OSError:
            connection.close()
            return
        descriptors = descriptors_of(ancillary)
        try:
            if message == STATUS_REQUEST:
                connection.send(self.status_line().encode())
                connection.close()
                return
            reason = self._refusal(connection, message, descriptors)
            if reason is not None:
                connection.send(_lcd.REFUSED + reason.encode())
                connection.close()
                return
            command = _lcd.Request(message)
            # Taken from here on: it runs here (or fails), never again in its caller.
            if self._warm_takes(command, message, connection, descriptors, selector):
                self.served += 1
                self.served_warm += 1
                if not _tell(connection, _lcd.RUNNING):
                    self._from_warm_caller(selector)  # the caller is gone already
                return
            self._fork(command, connection, descriptors, selector)
        except (OSError, ValueError) as error:
            with contextlib.suppress(OSError):
                connection.send(_lcd.REFUSED + str(error).encode())
            connection.close()
        finally:
            for descriptor in descriptors:
                os.close(descriptor)

    def _fork(
        self,
        command: _lcd.Request,
        connection: socket.socket,
        descriptors: list[int],
        selector: selectors.BaseSelector,
    ) -> None:
        """Run the command in a forked child; OSError if it could not be started."""
        pid = os.fork()
        if pid == 0:
            _become_command(command, descriptors)
        self.served += 1
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # it cannot be watched: it is stopped, and its caller says so (125)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            connection.close()
            return
        self._commands[pid] = _Command(pid, pidfd, connection)
        selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))
        selector.register(connection, selectors.EVENT_READ, ("caller", pid))
        if not _tell(connection, _lcd.RUNNING):
            self._from_caller(pid, selector)  # the caller is gone already
        if self._warm is None and not self._stale:
            self._start_worker(selector)  # the last one was killed with its command

    def _refusal(
        self, connection: socket.socket, message: bytes, descriptors: list[int]
    ) -> str | None:
        """Why this hand-over is not served here, or None."""
        peer = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        _pid, uid, _gid = array.array("i", peer)
        if uid != os.geteuid():
            return f"the helper serves uid {os.geteuid()}, not {uid}"
        if len(descriptors) != 3:
            return "stdin, stdout and stderr were not passed"
        command = _lcd.Request(message)
        if command.package != self.package or command.executable != sys.executable:
            return f"the helper runs {self.package} with {sys.executable}"
        if self.code_changed():
            self._stale = True
            return "the helper's code changed on disk since it started"
        return None

    def _from_caller(self, pid: int, selector: selectors.BaseSelector) -> None:
        command = self._commands[pid]
        assert command.connection is not None
        try:
            message = command.connection.recv(64)
        except OSError:
            message = b""
        if message:  # a signal to forward; anything else means nothing here
            number = message[1:]
            if message[:1] == _lcd.SIGNAL and number.isdigit():
                # An unknown number: EINVAL; the command gone: ESRCH.
                with contextlib.suppress(OSError):
                    os.kill(pid, int(number))
            return
        # The caller is gone (killed): so is its command, as if it had run there.
        selector.unregister(command.connection)
        command.connection.close()
        command.connection = None
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    # -- the warm worker ----------------------------------------------------------------

    def _start_worker(self, selector: selectors.BaseSelector) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return  # commands are forked one by one meanwhile
        if pid == 0:
            _become_worker(theirs)
        theirs.close()
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # it cannot be watched: none, commands are forked meanwhile
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            ours.close()
            return
        warm = _Warm(pid, pidfd, ours)
        self._warm = warm
        selector.register(warm.connection, selectors.EVENT_READ, "warm reply")
        selector.register(warm.pidfd, selectors.EVENT_READ, "warm exit")

    def _warm_takes(
        self,
        command: _lcd.Request,
        message: bytes,
        connection: socket.socket,
        descriptors: list[int],
        selector: selectors.BaseSelector,
    ) -> bool:
        """Hand the command to the warm worker if it is one of its and the worker is free."""
        warm = self._warm
        if warm is None or warm.caller is not None:
            return False
        if _helper_worker.command_of(command.argv) not in _helper_worker.WARM_COMMANDS:
            return False
        rights = array.array("i", descriptors).tobytes()
        try:
            caller_stderr = os.dup(descriptors[2])  # before the hand-over: it must not fail after
        except OSError:
            return False
        try:
            warm.connection.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        except OSError:  # too large for the pair, or the worker is gone (its exit says so)
            os.close(caller_stderr)
            return False
        warm.caller = connection
        warm.caller_stderr = caller_stderr
        selector.register(connection, selectors.EVENT_READ, "warm caller")
        return True

    def _from_worker(self, selector: selectors.BaseSelector) -> None:
        """The worker's ``EXITED<status>``: the caller's command has ended."""
        warm = self._warm
        assert warm is not None
        try:
            reply = warm.connection.recv(64)
        except OSError:
            reply = b""
        if not reply.startswith(_lcd.EXITED):
            self._end_worker(selector)  # it went away (or speaks nonsense): done with it
            return
        self._release_caller(selector, warm, reply)

    def _from_warm_caller(self, selector: selectors.BaseSelector) -> None:
        """A signal for the worker's command, or its caller gone: the command ends as if
        killed where it ran, and the worker with it."""
        warm = self._warm
        assert warm is not None
        assert warm.caller is not None
        try:
            message = warm.caller.recv(64)
        except OSError:
            message = b""
        number = message[1:]
        if message and not (message[:1] == _lcd.SIGNAL and number.isdigit()):
            return  # anything else means nothing here
        if message and int(number) in _IGNORED_BY_DEFAULT:
            return
        if message and int(number) == signal.SIGINT:
            with contextlib.suppress(OSError):
                os.write(warm.caller_stderr, b"lcd: interrupted\n")
        status = 128 + int(number) if message else 128 + signal.SIGKILL
        self._release_caller(selector, warm, _lcd.EXITED + str(status).encode())
        self._end_worker(selector)

    @staticmethod
    def _release_caller(selector: selectors.BaseSelector, warm: _Warm, reply: bytes) -> None:
        """Send the caller its command's end and let it go; the worker is free again."""
        caller, warm.caller = warm.caller, None
        if warm.caller_stderr >= 0:
            os.close(warm.caller_stderr)
            warm.caller_stderr = -1
        if caller is not None:
            selector.unregister(caller)
            with contextlib.suppress(OSError):
                caller.send(reply)
            caller.close()

    def _end_worker(self, selector: selectors.BaseSelector) -> None:
        """Kill and reap the worker (if any); a command it was running fails (status 125)."""
        warm, self._warm = self._warm, None
        if warm is None:
            return
        with contextlib.suppress(OSError):
            os.kill(warm.pid, signal.SIGKILL)
        os.waitpid(warm.pid, 0)
        selector.unregister(warm.pidfd)
        os.close(warm.pidfd)
        selector.unregister(warm.connection)
        warm.connection.close()
        if warm.caller is not None:
            with contextlib.suppress(OSError):
                os.write(warm.caller_stderr, b"lcd: the command helper's worker ended early\n")
            self._release_caller(selector, warm, _lcd.EXITED + b"125")

    def _reap(self, pid: int, selector: selectors.BaseSelector) -> None:
        command = self._commands.pop(pid)
        selector.unregister(command.pidfd)
        os.close(command.pidfd)
        _pid, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        if command.connection is not None:
            selector.unregister(command.connection)
            with contextlib.suppress(OSError):
                command.connection.send(_lcd.EXITED + str(code).encode())
            command.connection.close()


def _tell(connection: socket.socket, reply: bytes) -> bool:
    """Send a caller a reply; False when it is gone."""
    try:
        connection.send(reply)
    except OSError:
        return False
    return True


def descriptors_of(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    found: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            found.extend(array.array("i", data[:usable]))
    return found


def _become_command(command: _lcd.Request, descriptors: list[int]) -> NoReturn:
    """In the forked child: take the caller's process state and run lcd's main."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setsid()
        for target, descriptor in enumerate(descriptors):
            os.dup2(descriptor, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        take_caller(command, [0, 1, 2])
        # The helper's objects stay frozen: collecting them would copy their pages.
        from . import main

        main()
    except BaseException as error:  # the child must never return into the helper's loop
        with contextlib.suppress(OSError):
            os.write(2, f"lcd: the command helper could not run the command: {error}\n".encode())
    os._exit(125)


def _become_worker(connection: socket.socket) -> NoReturn:
    """In the forked worker: nothing of the helper's but the pair's end, then its loop."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.set_wakeup_fd(-1)
        kept = connection.fileno()
        os.closerange(3, kept)
        os.closerange(kept + 1, os.sysconf("SC_OPEN_MAX"))
    except BaseException:
        os._exit(1)
    _helper_worker.serve(connection, _MAX_MESSAGE)


def take_caller(command: _lcd.Request, descriptors: list[int]) -> None:
    """Take the caller's stdin, stdout and stderr (as 0, 1 and 2), working folder, umask,
    environment and command line."""
    for target, descriptor in enumerate(descriptors):
        if descriptor != target:
            os.dup2(descriptor, target)
    os.chdir(command.cwd)
    os.umask(command.umask)
    os.environ.clear()
    os.environ.update(command.environ)
    sys.argv = command.argv
    use_stdio()


def use_stdio() -> None:
    """stdin, stdout and stderr as Python makes them at start-up, on descriptors 0, 1 and 2."""
    encoding = sys.stdout.encoding if sys.stdout is not None else "utf-8"
    stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding)
    stdout = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
        encoding,
        line_buffering=os.isatty(1),
    )
    stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding,
        errors="backslashreplace",
        line_buffering=True,
    )
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr


def main(argv: list[str] | None = None) -> None:
    """``python -m libcontainerd.cli._helper_server SOCKET IDLE_SECONDS``."""
    args = sys.argv[1:] if argv is None else argv
    server = HelperServer(Path(args[0]), float(args[1]))
    server.load()
    server.serve()


if __name__ == "__main__":
    main()
