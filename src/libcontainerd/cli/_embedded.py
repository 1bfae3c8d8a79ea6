"""The embedded containerd that ``lcd`` leaves running: a Supervisor in a background process.

``lcd daemon start`` spawns ``python -m libcontainerd daemon run`` in a new
session; that process runs a :class:`Supervisor` (which restarts containerd
whenever it dies) until it receives SIGTERM, then stops containerd and exits.
Beside the Supervisor's own files, in the state directory::

    lcd-daemon.pid    the supervising process's pid (``lcd daemon stop`` signals it)
    lcd-daemon.lock   held (flock) by that process for its whole life: one per directory
    lcd-daemon.log    its log: start, containerd's restarts, stop

A process is only ever signalled after /proc/locks shows that it holds this
directory's lock, so a stale pid file that names a reused pid is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from .. import _paths
from .._limits import child_argv
from .._procfs import process_alive, process_info, read_pid_file
from ..errors import LibcontainerdError, Unavailable
from ..supervisor import Supervisor

__all__ = ["DaemonState", "EmbeddedDaemon"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DaemonState:
    """What the state directory and /proc say about the embedded daemon (no request is sent)."""

    supervisor_pid: int | None
    supervisor_started_at: datetime | None
    containerd_pid: int | None
    containerd_started_at: datetime | None

    @property
    def running(self) -> bool:
        return self.supervisor_pid is not None


class EmbeddedDaemon:
    """The embedded containerd of one state directory and root directory."""

    start_timeout = 60.0
    stop_timeout = 60.0

    def __init__(self, state_dir: str | os.PathLike[str], root_dir: str | os.PathLike[str]) -> None:
        self.state_dir = os.path.abspath(os.fspath(state_dir))
        self.root_dir = os.path.abspath(os.fspath(root_dir))

    @property
    def address(self) -> str:
        return _paths.containerd_socket(self.state_dir)

    @property
    def pid_file(self) -> str:
        return os.path.join(self.state_dir, "lcd-daemon.pid")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.state_dir, "lcd-daemon.lock")

    @property
    def log_path(self) -> str:
        return os.path.join(self.state_dir, "lcd-daemon.log")

    @property
    def containerd_pid_file(self) -> str:
        return _paths.containerd_pid_file(self.state_dir)

    @property
    def containerd_log_path(self) -> str:
        return _paths.containerd_log(self.state_dir)

    # -- reading the state ---------------------------------------------------------

    def has_socket(self) -> bool:
        """Whether containerd's socket file exists (it may still be stale)."""
        return os.path.exists(self.address)

    def state(self) -> DaemonState:
        supervisor = self._supervisor_pid()
        containerd = read_pid_file(self.containerd_pid_file)
        if containerd is not None and not process_alive(containerd):
            containerd = None
        return DaemonState(
            supervisor_pid=supervisor,
            supervisor_started_at=_started_at(supervisor),
            containerd_pid=containerd,
            containerd_started_at=_started_at(containerd),
        )

    def _supervisor_pid(self) -> int | None:
        """The pid of the live process that holds this directory's lock, else None.

        The pid file names it, and /proc/locks confirms it: a pid file left by
        a killed supervisor, or naming a reused pid, is never believed.
        """
        pid = read_pid_file(self.pid_file)
        if pid is None or not process_alive(pid):
            return None
        return pid if pid in _flock_holders(self.lock_file) else None

    # -- start and stop (from the lcd command) ---------------------------------------

    async def start(self) -> tuple[int, bool]:
        """Start the supervising process unless one runs; returns (its pid, whether it was new).

        Returns once containerd answers. Raises Unavailable (with the log's
        path) when it cannot be started.
        """
        running = self._supervisor_pid()
        if running is not None:
            return running, False
        read_end, write_end = os.pipe()
        try:
            child = self._spawn_supervisor(write_end)
        except OSError as error:
            os.close(read_end)
            where = f": {error.filename}" if error.filename else ""
            raise Unavailable(
                f"cannot start the embedded containerd in {self.state_dir}:"
                f" {error.strerror or error}{where}"
            ) from None
        finally:
            os.close(write_end)
        try:
            report = await asyncio.to_thread(_read_report, read_end, self.start_timeout)
        finally:
            os.close(read_end)
        state = report.get("state")
        if state == "ready":
            return child.pid, True
        if state == "running":
            return int(report.get("pid", 0)), False
        if report:
            message = str(report.get("message", report))
        else:
            message = "it exited before containerd answered"
        if child.poll() is None and not report:
            # Timed out: do not leave a half-started supervisor behind.
            child.terminate()
            await asyncio.to_thread(_wait_quietly, child, self.stop_timeout)
            message = f"containerd did not answer within {self.start_timeout:g} s"
        else:
            await asyncio.to_thread(_wait_quietly, child, 5.0)
        first_line = message.strip().splitlines()[0].rstrip(":") if message.strip() else message
        raise Unavailable(
            f"cannot start the embedded containerd: {first_line} (logs: {self.log_path},"
            f" {self.containerd_log_path})"
        )

    def _spawn_supervisor(self, ready_fd: int) -> subprocess.Popen[bytes]:
        """``python -m libcontainerd daemon run`` in a new session, logging to our log file."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            return subprocess.Popen(
                child_argv(
                    [
                        sys.executable,
                        "-m",
                        "libcontainerd",
                        "--state-dir",
                        self.state_dir,
                        "--root-dir",
                        self.root_dir,
                        "daemon",
                        "run",
                        "--ready-fd",
                        str(ready_fd),
                    ]
                ),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(ready_fd,),
                # Its own session: the terminal's Ctrl-C and hang-up must not reach it.
                start_new_session=True,
                cwd="/",
            )

    async def stop(self) -> tuple[int | None, bool]:
        """Stop the supervising process and its containerd.

        Returns (the supervisor's pid or None, whether anything was stopped):
        a containerd left without its supervisor (the supervisor was killed)
        is adopted and stopped too. Containers keep running. Raises
        Unavailable when it does not stop in time.
        """
        pid = self._supervisor_pid()
        if pid is None:
            return None, await self._stop_orphaned_containerd()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while process_alive(pid):
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"the embedded containerd's supervisor (pid {pid}) did not stop within"
                    f" {self.stop_timeout:g} s; see {self.log_path}"
                )
            await asyncio.sleep(0.05)
        await self._stop_orphaned_containerd()
        return pid, True

    async def _stop_orphaned_containerd(self) -> bool:
        pid = read_pid_file(self.containerd_pid_file)
        if pid is None or not process_alive(pid):
            return False
        # The Supervisor adopts it only if it is our containerd on our config; without
        # a live supervising process it is an orphan of ours: taken over, to stop it.
        supervisor = Supervisor(self.state_dir, self.root_dir, take_over=True)
        await supervisor.start()
        await supervisor.stop()
        return True

    # -- the supervising process itself (``lcd daemon run``) ---------------------------

    async def serve(self, ready_fd: int | None = None) -> int:
        """Run the Supervisor until SIGTERM or SIGINT; returns the process exit status.

        ``ready_fd`` receives one JSON line once containerd answers (or why
        it does not), then is closed.
        """
        report = _Reporter(ready_fd)
        try:
            lock = _open_lock(self.state_dir, self.lock_file)
        except OSError as error:
            report.send(state="error", message=f"cannot use {self.state_dir}: {error.strerror}")
            return 1
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = read_pid_file(self.pid_file)
                report.send(state="running", pid=holder or 0)
                log.info("another supervisor (pid %s) runs in %s", holder, self.state_dir)
                return 0
            _write_pid_file(self.pid_file, os.getpid())
            try:
                return await self._supervise(report)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.pid_file)

    async def _supervise(self, report: _Reporter) -> int:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
        # This process holds the folder's lock: a containerd running there is one a
        # killed predecessor left, and is taken over (restarted, stopped at the end).
        supervisor = Supervisor(self.state_dir, self.root_dir, take_over=True)
        try:
            await supervisor.start()
        except LibcontainerdError as error:
            log.error("cannot start containerd: %s", error)
            report.send(state="error", message=str(error))
            return 1
        log.info(
            "containerd %s is up: pid %s, socket %s; supervising it (pid %d)",
            supervisor.version,
            supervisor.pid,
            supervisor.address,
            os.getpid(),
        )
        report.send(state="ready", containerd_pid=supervisor.pid, version=supervisor.version)
        try:
            await stopping.wait()
        finally:
            log.info("stopping containerd (pid %s)", supervisor.pid)
            await supervisor.stop()
            log.info("containerd stopped; %d restart(s) while supervised", supervisor.restarts)
        return 0


class _Reporter:
    """Writes the one start-up report to the starter's pipe, then closes it."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def send(self, **report: Any) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.write(fd, (json.dumps(report) + "\n").encode())
        except OSError as error:  # the starter gave up waiting: nothing to tell
            log.info("cannot report start-up (%s)", error)
        finally:
            os.close(fd)


def _open_lock(state_dir: str, path: str) -> IO[str]:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    return open(path, "a")  # the caller holds it until the process ends


def _read_report(fd: int, timeout: float) -> dict[str, Any]:
    """The child's one JSON line; {} if it closed the pipe (exited) or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return {}
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    try:
        report = json.loads(data.decode(errors="replace").splitlines()[0]) if data else {}
    except (ValueError, IndexError):
        return {"state": "error", "message": data.decode(errors="replace")}
    return report if isinstance(report, dict) else {}


def _wait_quietly(child: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _write_pid_file(path: str, pid: int) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        file.write(f"{pid}\n")
    os.replace(temporary, path)


def _flock_holders(path: str) -> set[int]:
    """The pids that hold a flock on ``path``, from /proc/locks."""
    try:
        stat = os.stat(path)
        table = Path("/proc/locks").read_text()
    except OSError:
        return set()
    # "1: FLOCK  ADVISORY  WRITE 1234 00:19:5678 0 EOF": pid, then major:minor:inode in hex.
    wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    holders = set()
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            with contextlib.suppress(ValueError):
                holders.add(int(fields[4]))
    return holders


def _started_at(pid: int | None) -> datetime | None:
    if pid is None:
        return None
    info = process_info(pid)
    return info.started_at if info is not None else None
