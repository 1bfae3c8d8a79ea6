"""Supervisor: runs a private containerd, restarts it when it dies, stops it on request.

Everything the daemon writes stays under two folders chosen by the caller::

    <state_dir>/containerd.toml     config, rewritten at every start
    <state_dir>/containerd.sock     gRPC socket (``.address``); ``.ttrpc`` beside it
    <state_dir>/containerd.pid      pid file, so a later Supervisor can adopt the daemon
    <state_dir>/containerd.log      containerd's stdout and stderr
    <state_dir>/daemon/             containerd's state (task bundles)
    <state_dir>/runc/               runc's root for our tasks (``.runc_root``)
    <state_dir>/bin/criu            a working CRIU, first on containerd's PATH (if one is found)
    <root_dir>/daemon/              containerd's root (content, metadata, snapshots)
    <root_dir>/opt/                 the "opt" plugin's folder (else /opt/containerd)

Two exceptions are containerd's, not ours: the shims' sockets always live in
``/run/containerd/s/`` (named by a hash of the daemon's address, so daemons do
not collide), and runc keeps its state in ``/run/containerd/runc/<namespace>``
unless the task's runtime options name a root -- the client passes
``.runc_root`` for that reason.

Limits: containerd runs with a fixed open-file limit of 1048576 (soft and
hard, never infinity) and no cap on processes, whatever the limits of the
program that starts it, as containerd's own systemd unit does; each shim costs
it a few descriptors, so an inherited 1024 stops it at ~250 containers. Its
shims inherit that; containers get the rlimits of their spec (the default
spec: 1024 open files). Raising a hard limit needs CAP_SYS_RESOURCE: without
it containerd gets the caller's hard limit, and the log says so (a warning
below 16384, room for ~4,000 containers). The pids
limit of the cgroup the program runs in (systemd's ``TasksMax``) still
applies to containerd and its shims.

Compared with Docker's supervisor, this one adopts a pid from the pid file only
when that process really is its containerd, caps its restart back-off, never
restarts in a tight loop, and uses a new session instead of a parent-death
signal (containerd outlives a crashed Python program; the pid file lets the
next Supervisor adopt it).

A Supervisor stops only what it started. A live containerd that it finds in
its folders (another Supervisor's: ``lcd daemon``'s, another program's) is
*adopted*: used, never restarted and never stopped (:attr:`Supervisor.adopted`
is True, and a warning says so). Taking such a daemon over, to restart and
stop it as one's own, is explicit: ``take_over=True`` (``lcd daemon`` does it
for the containerd its killed predecessor left).

Blocking code uses the same object with ``with``: the async methods then run
on an event loop of the Supervisor's own, in a background thread, which also
does the restarting (see :meth:`Supervisor.start_blocking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from . import _paths, checkpoint
from ._commands import output_of
from ._daemon_config import render_config
from ._limits import daemon_argv, warn_if_daemon_limited
from ._loop_thread import LoopThread
from ._procfs import process_stat, read_pid_file
from ._rpc import answers
from .errors import FailedPrecondition, InvalidArgument, Unavailable

__all__ = ["MAX_SOCKET_PATH", "Supervisor", "render_config"]

log = logging.getLogger(__name__)

# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107

_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
_LOG_TAIL_LINES = 15


class Supervisor:
    """Runs a private containerd in ``state_dir`` / ``root_dir`` and keeps it running.

    In async code use it as ``async with Supervisor(...) as daemon:`` or call
    ``await start()`` and ``await stop()``. In blocking code use it as ``with
    Supervisor(...) as daemon:`` or call ``start_blocking()`` and
    ``stop_blocking()``: the same work then runs on a background thread. A
    containerd that dies is restarted with capped exponential back-off; running
    containers survive both restarts and stopping. The properties may be read
    from any thread.

    Raises ``InvalidArgument`` for a bad argument (socket path too long, unknown
    log level, non-positive timeout) or a directory that cannot be used;
    ``Unavailable`` when containerd cannot be found, started or reached (the
    message says why and where the log is); ``FailedPrecondition`` when started
    twice, when a blocking method is called inside a running event loop, and
    when one form stops or waits for a Supervisor the other form started.

    A containerd already running in these folders (named by the pid file,
    this binary, this config) is adopted: used as it is, and left running
    at :meth:`stop`; if it dies it is not restarted and this Supervisor stops
    too. With ``take_over=True`` it is this Supervisor's from then on:
    restarted when it dies, stopped by :meth:`stop`.
    """

    # Restart back-off: first retry after the minimum, doubling up to the
    # maximum, back to the minimum once a daemon has stayed up long enough.
    restart_delay_min = 0.1
    restart_delay_max = 5.0
    stable_after = 10.0
    # How often an adopted daemon (not our child, so we cannot wait for it) is checked.
    adopted_poll_interval = 0.5

    def __init__(
        self,
        state_dir: str | os.PathLike[str] = _paths.DEFAULT_STATE_DIR,
        root_dir: str | os.PathLike[str] = _paths.DEFAULT_ROOT_DIR,
        *,
        containerd: str | os.PathLike[str] = "containerd",
        log_level: str = "info",
        start_timeout: float = 15.0,
        stop_timeout: float = 15.0,
        take_over: bool = False,
    ) -> None:
        self._state_dir = os.path.abspath(os.fspath(state_dir))
        self._root_dir = os.path.abspath(os.fspath(root_dir))
        self._containerd = os.fspath(containerd)
        if log_level not in _LOG_LEVELS:
            raise InvalidArgument(
                f"log_level {log_level!r} is not one of containerd's: {', '.join(_LOG_LEVELS)}"
            )
        self._log_level = log_level
        for name, value in (("start_timeout", start_timeout), ("stop_timeout", stop_timeout)):
            if not value > 0:
                raise InvalidArgument(f"{name} must be a positive number of seconds, not {value!r}")
        self._start_timeout = float(start_timeout)
        self._stop_timeout = float(stop_timeout)
        for socket_path in (self.address, self._ttrpc_address):
            size = len(os.fsencode(socket_path))
            if size > MAX_SOCKET_PATH:
                raise InvalidArgument(
                    f"socket path {socket_path} is {size} bytes long; unix sockets allow at"
                    f" most {MAX_SOCKET_PATH}: choose a shorter state_dir"
                )

        self._binary: str | None = None
        self._binary_real: str | None = None  # what /proc/<pid>/exe shows for it
        self._version: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._pid: int | None = None
        self._adopted_start_ticks: int | None = None  # set while the daemon is adopted
        self._take_over = take_over
        self._owned = False  # whether the running daemon is ours to restart and stop
        self._running = False
        self._ready = False
        self._restarts = 0
        self._monitor: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._loop_thread: LoopThread | None = None  # while started by start_blocking()

    # -- what callers read -------------------------------------------------

    @property
    def state_dir(self) -> str:
        """The folder for sockets, pid file, config, log and runc state."""
        return self._state_dir

    @property
    def root_dir(self) -> str:
        """The folder for containerd's persistent data."""
        return self._root_dir

    @property
    def containerd(self) -> str:
        """The containerd binary: as given until ``start()`` finds it, then its full path."""
        return self._binary or self._containerd

    @property
    def address(self) -> str:
        """containerd's gRPC socket path."""
        return _paths.containerd_socket(self._state_dir)

    @property
    def runc_root(self) -> str:
        """runc's root for tasks of this daemon: always ``<dirname(address)>/runc``."""
        return _paths.runc_root(self.address)

    @property
    def log_path(self) -> str:
        """The file that receives containerd's stdout and stderr."""
        return _paths.containerd_log(self._state_dir)

    @property
    def config_path(self) -> str:
        """The config file written at each start."""
        return _paths.containerd_config(self._state_dir)

    @property
    def pid_file(self) -> str:
        """The file holding the running containerd's pid."""
        return _paths.containerd_pid_file(self._state_dir)

    @property
    def pid(self) -> int | None:
        """containerd's pid while it runs; None before start, after stop, and between restarts."""
        return self._pid

    @property
    def version(self) -> str | None:
        """What ``containerd --version`` reported (e.g. ``1.6.20~ds1``); None before start."""
        return self._version

    @property
    def adopted(self) -> bool:
        """Whether the containerd in use was running already and is not ours: left running.

        False once this Supervisor started it itself, or took it over (``take_over=True``).
        """
        return self._running and not self._owned

    @property
    def restarts(self) -> int:
        """How many times containerd was restarted successfully after it died."""
        return self._restarts

    @property
    def _ttrpc_address(self) -> str:
        return self.address + ".ttrpc"

    @property
    def _criu_folder(self) -> str:
        """Where the link to a working CRIU goes: first on containerd's PATH."""
        return os.path.join(self._state_dir, "bin")

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start (or adopt) containerd and return once it answers; then keep it running."""
        if self._running:
            raise FailedPrecondition(f"this Supervisor already runs containerd (pid {self._pid})")
        self._running = True
        try:
            self._binary = self._find_binary()
            self._version, series = await self._detect_version(self._binary)
            self._prepare_directories()
            await self._offer_criu()
            self._write_config(series)
            self._owned = True
            if await self._adopt_from_pid_file():
                self._owned = self._take_over
            else:
                await self._refuse_a_stranger_on_our_socket()
                await self._launch()
        except BaseException:
            # Whatever we spawned was killed by _launch; an adopted daemon is left alone.
            self._forget_process()
            self._running = False
            self._notify()
            raise
        self._set_ready()
        if not self._owned:
            log.warning(
                "containerd pid %s already runs in %s: using it; this Supervisor did not start"
                " it, so it neither restarts nor stops it (take_over=True makes it its own)",
                self._pid,
                self.state_dir,
            )
            self._monitor = asyncio.create_task(self._watch_adopted(), name=f"watch {self.address}")
            return
        self._monitor = asyncio.create_task(self._watch(), name=f"supervise {self.address}")

    async def stop(self) -> None:
        """Stop containerd: SIGTERM, SIGKILL after ``stop_timeout``. Containers keep running.

        An adopted containerd (:attr:`adopted`) is left running: only the watch ends.
        """
        if not self._running:
            return
        self._refuse_a_foreign_loop("stop()", "stop_blocking()")
        self._running = False
        self._ready = False
        self._notify()
        if self._monitor is not None:
            self._monitor.cancel()
            # asyncio.wait neither raises the task's cancellation nor swallows ours.
            await asyncio.wait([self._monitor])
            self._monitor = None
        if not self._owned:
            log.info("leaving the adopted containerd (pid %s) running", self._pid)
            self._forget_process()
            return
        if self._pid is not None:
            await self._terminate(self._stop_timeout)
        self._remove_runtime_files()

    async def wait_ready(self, *, min_restarts: int = 0) -> None:
        """Wait until containerd answers and has been restarted at least ``min_restarts`` times.

        Tests pass ``min_restarts=supervisor.restarts + 1`` (read before killing
        the daemon) to wait for the next restart; bound the wait with
        ``asyncio.timeout()``. Raises ``Unavailable`` if the supervisor is or
        becomes stopped.
        """
        self._refuse_a_foreign_loop("wait_ready()", "wait_ready_blocking()")
        while self._running and not (self._ready and self._restarts >= min_restarts):
            await self._changed.wait()
        if not self._running:
            raise Unavailable(
                f"the Supervisor for {self.address} is not running; call start() first"
            )

    # -- the same, from blocking code ------------------------------------------

    def __enter__(self) -> Supervisor:
        self.start_blocking()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_blocking()

    def start_blocking(self) -> None:
        """``start()`` for code without an event loop; supervises on a background thread.

        Returns once containerd answers; a thread of the Supervisor's own then
        runs the event loop that watches and restarts it until
        ``stop_blocking()``. Raises what ``start()`` raises, and
        ``FailedPrecondition`` when called inside a running event loop (use
        ``await start()`` there).
        """
        _refuse_inside_an_event_loop("start_blocking()", "await start()")
        thread = LoopThread(
            f"libcontainerd-supervisor {self._state_dir}",
            refusal="a Supervisor's blocking methods cannot be called from its own loop thread",
        )
        try:
            thread.run(self.start())
        except BaseException:
            thread.stop()
            raise
        self._loop_thread = thread

    def stop_blocking(self) -> None:
        """``stop()`` for a Supervisor started with ``start_blocking()``; then ends its thread.

        Does nothing when it is not running. Raises ``FailedPrecondition`` when
        it was started with ``await start()`` (stop it with ``await stop()``) or
        when called inside a running event loop.
        """
        _refuse_inside_an_event_loop("stop_blocking()", "await stop()")
        thread, self._loop_thread = self._loop_thread, None
        if thread is None:
            if self._running:
                raise FailedPrecondition(
                    f"the Supervisor for {self.address} was started with start(): stop it"
                    " with await stop()"
                )
            return
        try:
            thread.run(self.stop())
        finally:
            thread.stop()

    def wait_ready_blocking(self, *, min_restarts: int = 0, timeout: float | None = None) -> None:
        """``wait_ready()`` for a Supervisor started with ``start_blocking()``.

        Raises ``TimeoutError`` after ``timeout`` seconds, ``Unavailable`` if the
        supervisor is or becomes stopped, and ``FailedPrecondition`` when it was
        started with ``await start()`` or inside a running event loop.
        """
        _refuse_inside_an_event_loop("wait_ready_blocking()", "await wait_ready()")
        thread = self._loop_thread
        if thread is None:
            if self._running:
                raise FailedPrecondition(
                    f"the Supervisor for {self.address} was started with start(): use"
                    " await wait_ready()"
                )
            raise Unavailable(
                f"the Supervisor for {self.address} is not running; call start_blocking() first"
            )
        thread.run(self._wait_ready_within(timeout, min_restarts))

    async def _wait_ready_within(self, seconds: float | None, min_restarts: int) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self.wait_ready(min_restarts=min_restarts)
        except TimeoutError:
            raise TimeoutError(
                f"containerd on {self.address} was not ready after {min_restarts} restart(s)"
                f" within {seconds:g} s (it has had {self._restarts})"
            ) from None

    def _refuse_a_foreign_loop(self, method: str, twin: str) -> None:
        """Refuse an async call from another loop than start_blocking()'s, which supervises."""
        thread = self._loop_thread
        if thread is not None and asyncio.get_running_loop() is not thread.loop:
            raise FailedPrecondition(
                f"the Supervisor for {self.address} was started with start_blocking():"
                f" call {twin}, not {method}"
            )

    # -- start-up steps ------------------------------------------------------

    def _find_binary(self) -> str:
        name = self._containerd
        if os.sep in name:
            path: str | None = os.path.abspath(name)
            if not (os.path.isfile(name) and os.access(name, os.X_OK)):
                path = None
        else:
            path = shutil.which(name)
        if path is None:
            where = "" if os.sep in name else f" on PATH ({os.environ.get('PATH', os.defpath)})"
            raise Unavailable(
                f"cannot start containerd: {name!r} is not an executable file{where};"
                " nothing was started, so there is no log"
            )
        self._binary_real = os.path.realpath(path)
        return path

    async def _detect_version(self, binary: str) -> tuple[str, tuple[int, int]]:
        """Ask the binary its version: the config depends on (major, minor)."""
        try:
            async with asyncio.timeout(self._start_timeout):
                status, text = await output_of(binary, "--version")
        except OSError as err:
            raise Unavailable(f"cannot run {binary} --version: {err.strerror}") from err
        except TimeoutError:
            raise Unavailable(
                f"{binary} --version did not answer within {self._start_timeout} s"
            ) from None
        # "containerd github.com/containerd/containerd[/v2] 1.6.20~ds1 <revision>"
        match = re.search(r"(?:^|\s)v?((\d+)\.(\d+)\.\d+\S*)", text)
        if status != 0 or match is None:
            raise Unavailable(
                f"{binary} --version did not report a containerd version"
                f" (exit status {status}, output {text[:200]!r})"
            )
        return match.group(1), (int(match.group(2)), int(match.group(3)))

    def _prepare_directories(self) -> None:
        for path in (self._state_dir, self._root_dir, self.runc_root):
            try:
                # A user-namespaced container's root passes through the state folder to
                # its bundle (and lcd's roots live in the root folder): others may enter
                # them, not list them, as containerd's own /run/containerd and /var/lib/containerd.
                os.makedirs(path, mode=0o700 if path == self.runc_root else 0o711, exist_ok=True)
            except OSError as err:
                raise InvalidArgument(
                    f"cannot use {path} as a containerd directory: {err.strerror}"
                ) from err

    async def _offer_criu(self) -> None:
        """Link a working CRIU (found as :mod:`checkpoint` says) as ``criu`` first on PATH.

        runc looks ``criu`` up on its PATH, containerd's, whenever no
        ``criu_path`` reaches it: on containerd 2.x and runc 1.2+ always, and
        for containers created without one. The host's own may not work.
        """
        criu = await checkpoint.usable_criu()
        if not criu:
            log.info("no working CRIU found; checkpoints will fail with CheckpointUnsupported")
        _link_criu(self._criu_folder, criu)

    def _write_config(self, series: tuple[int, int]) -> None:
        """Write the config for this containerd version (2.x reads format 3, 1.x format 2)."""
        text = render_config(
            version=self._version or "",
            series=series,
            root=os.path.join(self._root_dir, "daemon"),
            state=os.path.join(self._state_dir, "daemon"),
            address=self.address,
            ttrpc_address=self._ttrpc_address,
            log_level=self._log_level,
            opt_dir=os.path.join(self._root_dir, "opt"),
        )
        try:
            _write_atomically(self.config_path, text, mode=0o600)
        except OSError as err:
            raise InvalidArgument(
                f"cannot write containerd's config {self.config_path}: {err.strerror}"
            ) from err

    async def _adopt_from_pid_file(self) -> bool:
        """Adopt the daemon the pid file names, only if it is this binary running our config.

        Docker adopted any live pid, and then waited forever for a process that
        was not containerd; here anything else is ignored and later overwritten.
        """
        pid = read_pid_file(self.pid_file)
        if pid is None:
            _warn_unless_missing(self.pid_file)
            return False
        identity = _process_identity(pid)
        if identity is None:
            log.info("pid file %s names pid %d, which is gone; ignoring it", self.pid_file, pid)
            return False
        exe, argv, start_ticks = identity
        names_our_config = os.fsencode(self.config_path) in argv
        if not names_our_config:
            log.warning(
                "pid file %s names pid %d (%s), which is not this supervisor's containerd;"
                " ignoring it",
                self.pid_file,
                pid,
                exe,
            )
            return False
        if exe != self._binary_real:
            # Starting a second daemon on the same folders would wait on its
            # database lock; better to say so.
            raise Unavailable(
                f"pid {pid} ({exe}) is already running containerd with {self.config_path},"
                f" but this Supervisor runs {self._binary}; stop that process first"
            )
        log.info("adopting containerd pid %d from %s", pid, self.pid_file)
        self._proc = None
        self._pid = pid
        self._adopted_start_ticks = start_ticks
        try:
            await self._wait_until_answering()
        except Unavailable as err:
            if not self._take_over:
                self._forget_process()
                raise Unavailable(
                    f"containerd pid {pid} runs on {self.config_path} but does not answer"
                    f" ({err.message.splitlines()[0]}); it is not this Supervisor's to stop:"
                    " stop it, or pass take_over=True to replace it"
                ) from None
            # Ours to take over (same binary, same config) but it does not answer: replace it.
            log.warning("adopted containerd pid %d does not answer (%s); replacing it", pid, err)
            await self._terminate(self._stop_timeout)
            return False
        return True

    async def _refuse_a_stranger_on_our_socket(self) -> None:
        """Refuse to start when a daemon the pid file does not name answers on our socket.

        It would be a containerd on our folders; a second one would only wait
        for its database lock until ``start_timeout``.
        """
        if _exists(self.address) and await answers(self.address, 1.0):
            raise Unavailable(
                f"a containerd that {self.pid_file} does not name already answers on"
                f" {self.address}; stop it first"
            )

    async def _launch(self) -> None:
        """Spawn containerd and wait until it answers; raises Unavailable if it does not."""
        assert self._binary is not None
        for path in (self.address, self._ttrpc_address):
            _remove_file(path)
        try:
            log_file, log_offset = self._open_log()
        except OSError as err:
            raise Unavailable(
                f"cannot open containerd's log {self.log_path}: {err.strerror}"
            ) from err
        try:
            with log_file:
                proc = await asyncio.create_subprocess_exec(
                    # Through a trampoline that sets its limits: a fixed high
                    # open-file limit, whatever ours are (see _limits).
                    *daemon_argv([self._binary, "--config", self.config_path]),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self._environment(),
                    # Its own session: a terminal's Ctrl-C or our process group's
                    # signals must not reach the daemon (never preexec_fn: grpc threads).
                    start_new_session=True,
                )
        except OSError as err:
            raise Unavailable(
                f"cannot start containerd {self._binary}: {err.strerror}; log: {self.log_path}"
            ) from err
        self._proc = proc
        self._pid = proc.pid
        self._adopted_start_ticks = None
        try:
            try:
                _write_atomically(self.pid_file, f"{proc.pid}\n", mode=0o644)
            except OSError as err:
                # Without a pid file a later Supervisor could not adopt it: refuse.
                raise Unavailable(
                    f"cannot write the pid file {self.pid_file}: {err.strerror}"
                ) from err
            await self._wait_until_answering(log_offset)
        except BaseException:
            await self._kill_now()
            _remove_file(self.pid_file)
            raise
        log.info("containerd %s is up: pid %d, socket %s", self._version, proc.pid, self.address)
        warn_if_daemon_limited(proc.pid)

    def _open_log(self) -> tuple[BinaryIO, int]:
        """The log, opened to append, with a line marking this start; and where that line is."""
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - the caller closes it
        offset = log_file.tell()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        log_file.write(
            f"--- libcontainerd {stamp}: starting {self._binary}"
            f" --config {self.config_path}\n".encode()
        )
        log_file.flush()
        return log_file, offset

    def _environment(self) -> dict[str, str]:
        """The daemon's environment: our CRIU link, then the binary's own folder first on PATH.

        Its shims, and the runc they run, inherit it.
        """
        assert self._binary is not None
        env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
        folders = [self._criu_folder, os.path.dirname(self._binary)]
        real = os.path.dirname(os.path.realpath(self._binary))
        if real not in folders:
            folders.append(real)
        env["PATH"] = os.pathsep.join([*folders, env.get("PATH", os.defpath)])
        return env

    async def _wait_until_answering(self, log_offset: int = 0) -> None:
        """Poll the Version RPC until it answers, the process exits, or ``start_timeout`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        pause = 0.02
        while True:
            status = self._exit_status()
            if status is not None:
                raise Unavailable(
                    f"containerd (pid {self._pid}) {status} during start-up;"
                    f" log {self.log_path} ends with:\n{self._log_tail(log_offset)}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(
                    f"containerd (pid {self._pid}) did not answer on {self.address} within"
                    f" {self._start_timeout} s; log {self.log_path} ends with:\n"
                    f"{self._log_tail(log_offset)}"
                )
            if _exists(self.address) and await answers(self.address, min(1.0, remaining)):
                return
            await asyncio.sleep(min(pause, max(remaining, 0.0)))
            pause = min(pause * 2, 0.25)

    def _log_tail(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(offset)
                data = log_file.read()
        except OSError as err:
            return f"    (cannot read the log: {err.strerror})"
        lines = data.decode(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(f"    {line}" for line in lines) or "    (nothing)"

    # -- watching and restarting ---------------------------------------------

    async def _watch(self) -> None:
        """Restart containerd whenever it dies, with capped exponential back-off."""
        loop = asyncio.get_running_loop()
        delay = self.restart_delay_min
        while True:
            up_since = loop.time()
            status = await self._wait_for_exit()
            pid = self._pid
            self._forget_process()
            if loop.time() - up_since >= self.stable_after:
                delay = self.restart_delay_min
            log.warning(
                "containerd (pid %s) %s; restarting it in %.1f s (log: %s)",
                pid,
                status,
                delay,
                self.log_path,
            )
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.restart_delay_max)
                try:
                    await self._launch()
                except Unavailable as err:
                    log.error("restarting containerd failed, next try in %.1f s: %s", delay, err)
                except Exception:
                    # Never let the monitor die: a daemon left dead helps nobody.
                    log.exception("restarting containerd failed, next try in %.1f s", delay)
                else:
                    break
            self._restarts += 1
            log.warning("containerd restarted: pid %s (restart %d)", self._pid, self._restarts)
            self._set_ready()

    async def _watch_adopted(self) -> None:
        """An adopted daemon that dies is not ours to restart: this Supervisor stops too."""
        status = await self._wait_for_exit()
        log.warning(
            "the adopted containerd (pid %s) %s; not restarting it (this Supervisor did not"
            " start it)",
            self._pid,
            status,
        )
        self._forget_process()
        self._running = False
        self._monitor = None
        self._notify()

    async def _wait_for_exit(self) -> str:
        """Wait until the current daemon exits; return how it ended, for the log."""
        if self._proc is not None:
            await self._proc.wait()
            status = self._exit_status()
            return status or "exited"
        await self._poll_until_gone(self.adopted_poll_interval)
        return "exited (adopted, status unknown)"

    async def _poll_until_gone(self, interval: float) -> None:
        # An adopted daemon is not our child: there is nothing to wait on but its
        # /proc entry (checked with its start time, so a reused pid is not it).
        while self._exit_status() is None:  # noqa: ASYNC110
            await asyncio.sleep(interval)

    def _exit_status(self) -> str | None:
        """None while the daemon runs, else a phrase saying how it ended."""
        if self._proc is not None:
            code = self._proc.returncode
            if code is None:
                return None
            if code < 0:
                return f"was killed by {_signal_name(-code)}"
            return f"exited with status {code}"
        if self._pid is None:
            return "is not running"
        identity = _process_identity(self._pid)
        if identity is None or identity[2] != self._adopted_start_ticks:
            return "exited"
        return None

    def _forget_process(self) -> None:
        self._proc = None
        self._pid = None
        self._adopted_start_ticks = None
        self._ready = False
        self._notify()

    def _set_ready(self) -> None:
        self._ready = True
        self._notify()

    def _notify(self) -> None:
        # Wake every waiter once; each re-checks its own condition.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- stopping ------------------------------------------------------------

    async def _terminate(self, grace: float) -> None:
        """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL; reap our child."""
        self._signal(signal.SIGTERM)
        if not await self._exited_within(grace):
            log.warning(
                "containerd (pid %s) did not stop within %.1f s; killing it", self._pid, grace
            )
            self._signal(signal.SIGKILL)
            await self._exited_within(None)
        self._forget_process()

    async def _kill_now(self) -> None:
        """SIGKILL a daemon that never became ready, and reap it."""
        self._signal(signal.SIGKILL)
        await self._exited_within(None)
        self._forget_process()

    def _signal(self, signum: signal.Signals) -> None:
        if self._exit_status() is not None or self._pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self._proc is not None:
                self._proc.send_signal(signum)
            else:
                os.kill(self._pid, signum)

    async def _exited_within(self, seconds: float | None) -> bool:
        """Wait for the daemon to be gone (reaped, for our child); False if it takes longer."""
        try:
            async with asyncio.timeout(seconds):
                if self._proc is not None:
                    await self._proc.wait()
                else:
                    await self._poll_until_gone(0.05)
        except TimeoutError:
            return False
        return True

    def _remove_runtime_files(self) -> None:
        for path in (self.address, self._ttrpc_address, self.pid_file):
            _remove_file(path)


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _warn_unless_missing(pid_file: str) -> None:
    """Log a pid file that exists but holds no pid (read_pid_file said None)."""
    try:
        text = Path(pid_file).read_text(errors="replace")[:32]
    except FileNotFoundError:
        return
    except OSError as err:
        log.warning("cannot read pid file %s (%s); ignoring it", pid_file, err.strerror)
        return
    log.warning("pid file %s holds %r, not a pid; ignoring it", pid_file, text)


def _process_identity(pid: int) -> tuple[str, list[bytes], int] | None:
    """(executable, argv, start time in ticks) of a live process, or None if gone or a zombie.

    The start time tells a process from a later one that reuses its pid.
    """
    proc = f"/proc/{pid}"
    try:
        exe = os.readlink(f"{proc}/exe")
        argv = Path(f"{proc}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    stat = process_stat(pid)
    if stat is None or stat.exited:
        return None
    return exe, argv, stat.start_ticks


def _write_atomically(path: str, text: str, *, mode: int) -> None:
    temporary = f"{path}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _link_criu(folder: str, criu: str) -> None:
    """Make ``folder/criu`` a link to ``criu``, or remove it when ``criu`` is ""."""
    link = os.path.join(folder, "criu")
    _remove_file(link)
    if not criu:
        return
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.symlink(os.path.abspath(criu), link)
    except OSError as err:
        log.warning("cannot link CRIU %s as %s: %s", criu, link, err.strerror)


def _remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _refuse_inside_an_event_loop(method: str, instead: str) -> None:
    """Raise FailedPrecondition when a blocking method would stall a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise FailedPrecondition(
        f"Supervisor.{method} (and 'with Supervisor(...)') would block the running event"
        f" loop: use {instead} (or 'async with Supervisor(...)') in async code"
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
