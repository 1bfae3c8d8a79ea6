"""The ``lcd`` command (needs the ``cli`` extra: click and rich).

Every command is a short sequence of :class:`AsyncClient` calls. Without
``--address`` (or ``$CONTAINERD_ADDRESS``) a command uses the embedded
containerd and starts it when nothing answers at its socket (saying so on
stderr); ``lcd daemon`` manages that daemon (see :mod:`._embedded`).

Failures are one line on stderr and a non-zero exit status, never a
traceback: 1 for an error, 2 for bad usage, 130 when interrupted. ``lcd run``,
``lcd start -a`` and ``lcd exec`` exit with their process's status instead,
and like ``docker run`` with 125 when lcd itself fails, 126 when the command
cannot be run, 127 when it is not found.

In the foreground lcd copies a process's output to its own stdout and stderr
(and with -i its stdin to the process, with -t through a terminal); a
container it leaves running writes to a log file under the root directory,
which the shim appends to by itself (``lcd logs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import secrets
import select
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar, cast

try:
    import click
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table
except ImportError:  # pragma: no cover - only without the extra
    sys.stderr.write("lcd needs the cli extra: pip install 'libcontainerd[cli]'\n")
    raise SystemExit(2) from None

from . import oci, rootfs
from ._cli_values import parse_env, parse_size, parse_user
from ._embedded import (
    DEFAULT_ROOT_DIR,
    DEFAULT_STATE_DIR,
    ROOT_DIR_ENV,
    STATE_DIR_ENV,
    EmbeddedDaemon,
)
from ._identifiers import check_identifier
from ._procfs import process_info
from ._signals import parse_signal
from .client import DEFAULT_NAMESPACE, AsyncClient, AttachStdio
from .errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
    Unavailable,
)
from .stdio import AttachTerminal, CopyToFiles, LogFile
from .types import INIT_PROCESS_ID, ContainerInfo, EventInfo, EventType, Stats, Status

__all__ = ["cli", "main"]

# Exit statuses of `lcd run` when the container does not run (as docker run's).
EXIT_LCD_FAILED = 125
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130

_ALIVE = (Status.RUNNING, Status.PAUSED, Status.PAUSING, Status.CREATED, Status.UNKNOWN)
# How long rm -f and stop wait for a killed container to be reaped.
_REAP_TIMEOUT = 30.0


class Failure(Exception):
    """A failure to report as one line, with the exit status to use."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code  # None: the command's usual status for a failure


# --- entry point: one line per failure, never a traceback -------------------------


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``lcd`` entry point (also ``python -m libcontainerd``)."""
    try:
        status = cli.main(args=argv, prog_name="lcd", standalone_mode=False)
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else "lcd"
        _fail_line(f"{where}: {_one_line(error.format_message())} (see '{where} --help')")
        sys.exit(error.exit_code)
    except click.ClickException as error:
        _fail_line(f"lcd: {_one_line(error.format_message())}")
        sys.exit(error.exit_code)
    except click.Abort:
        _fail_line("lcd: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Failure as error:
        _fail_line(f"lcd: {_one_line(error.message)}")
        sys.exit(error.exit_code or 1)
    except LibcontainerdError as error:
        _fail_line(f"lcd: {_one_line(str(error))}")
        sys.exit(1)
    except BrokenPipeError:
        # Our reader went away (`lcd ps | head`): nothing left to say, to anyone.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the final flush
        sys.exit(1)
    except OSError as error:
        _fail_line(f"lcd: {_describe_os_error(error)}")
        sys.exit(1)
    except KeyboardInterrupt:
        _fail_line("lcd: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(status if isinstance(status, int) else 0)


def _one_line(message: str) -> str:
    """The first line of a message (a Supervisor's error carries the log's tail below it)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    first = lines[0]
    return first[:-1] if first.endswith(":") else first


def _describe_os_error(error: OSError) -> str:
    if error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return error.strerror or str(error)


def _fail_line(text: str) -> None:
    with contextlib.suppress(OSError):
        click.echo(text, err=True)


# --- settings and output ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """The global options."""

    address: str | None
    namespace: str
    state_dir: str
    root_dir: str

    def daemon(self) -> EmbeddedDaemon:
        return EmbeddedDaemon(self.state_dir, self.root_dir)

    def rootfs_dir(self, container_id: str) -> Path:
        """Where ``lcd run``/``create`` build a container's busybox root filesystem.

        Per namespace, so the same name in two namespaces never shares one.
        """
        return Path(self.root_dir, "rootfs", self.namespace, container_id)

    def log_path(self, container_id: str) -> Path:
        """Where the shim writes the output of a container lcd left running (``lcd logs``)."""
        return Path(self.root_dir, "logs", self.namespace, f"{container_id}.log")


class Output:
    """stdout for results (tables, ids, JSON), stderr for notes and progress."""

    def __init__(self) -> None:
        # A table piped to a file or a program keeps every column whole.
        width = None if sys.stdout.isatty() else 100_000
        self.stdout = Console(width=width, markup=False, highlight=False, emoji=False)
        self.stderr = Console(stderr=True, markup=False, highlight=False, emoji=False)

    def note(self, message: str) -> None:
        click.echo(f"lcd: {message}", err=True)

    def progress(self, message: str) -> contextlib.AbstractContextManager[Any]:
        """A spinner on stderr while something slow happens, only when stderr is a terminal."""
        if self.stderr.is_terminal:
            return self.stderr.status(message)
        return contextlib.nullcontext()

    def render_table(self, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
        table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 3, 0, 0))
        for header in headers:
            table.add_column(header, no_wrap=True, overflow="ignore")
        for row in rows:
            table.add_row(*row)
        return table

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        with self.stdout.capture() as captured:
            self.stdout.print(self.render_table(headers, rows))
        # Columns are padded to their width; the last one needs no padding.
        click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))

    def json(self, document: Any) -> None:
        click.echo(json.dumps(document, default=_json_default))


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _since(moment: datetime | None, now: datetime | None = None) -> float | None:
    if moment is None:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())


def _duration(seconds: float | None) -> str:
    """``42s``, ``3m 20s``, ``2h 5m``, ``3d 4h``."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    for size, unit, next_size, next_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if whole >= size:
            return f"{whole // size}{unit} {(whole % size) // next_size}{next_unit}"
    return f"{whole}s"


def _ago(moment: datetime | None) -> str:
    seconds = _since(moment)
    return "-" if seconds is None else f"{_duration(seconds)} ago"


# --- connecting -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def connect(settings: Settings, out: Output) -> AsyncIterator[AsyncClient]:
    """An open client: on ``--address``, else on the embedded daemon, started if needed."""
    if settings.address is not None:
        async with AsyncClient(settings.address, settings.namespace) as client:
            yield client
        return
    daemon = settings.daemon()
    client = AsyncClient(daemon.address, settings.namespace)
    # Without a socket file there is nothing to try: a failed connection would
    # only put gRPC's shared subchannel for this path into reconnect back-off.
    if not daemon.has_socket() or not await _opened(client):
        with out.progress("starting the embedded containerd"):
            pid, started = await daemon.start()
        if started:
            out.note(
                f"nothing answered at {daemon.address}: started the embedded containerd"
                f" (supervisor pid {pid}); 'lcd daemon stop' stops it"
            )
        await _open_soon(client)
    try:
        yield client
    finally:
        await client.close()


async def _opened(client: AsyncClient) -> bool:
    try:
        await client.open()
    except Unavailable:
        return False
    return True


async def _open_soon(client: AsyncClient, within: float = 10.0) -> None:
    """Open a client on a daemon that just started, riding out gRPC's reconnect back-off."""
    deadline = asyncio.get_running_loop().time() + within
    while not await _opened(client):
        if asyncio.get_running_loop().time() > deadline:
            await client.open()  # raises Unavailable, saying why
        await asyncio.sleep(0.2)


# --- the command group -----------------------------------------------------------

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT, invoke_without_command=True)
@click.option(
    "--address",
    envvar="CONTAINERD_ADDRESS",
    default=None,
    metavar="SOCKET",
    help="containerd's socket [$CONTAINERD_ADDRESS]; default: the embedded daemon,"
    " started when nothing answers",
)
@click.option(
    "--namespace",
    "-n",
    envvar="LIBCONTAINERD_NAMESPACE",
    default=DEFAULT_NAMESPACE,
    show_default=True,
    help="containerd namespace [$LIBCONTAINERD_NAMESPACE]",
)
@click.option(
    "--state-dir",
    envvar=STATE_DIR_ENV,
    default=DEFAULT_STATE_DIR,
    show_default=True,
    metavar="DIR",
    help=f"the embedded daemon's state (socket, pid files, logs) [${STATE_DIR_ENV}]",
)
@click.option(
    "--root-dir",
    envvar=ROOT_DIR_ENV,
    default=DEFAULT_ROOT_DIR,
    show_default=True,
    metavar="DIR",
    help=f"the embedded daemon's data, and lcd's root filesystems [${ROOT_DIR_ENV}]",
)
@click.option(
    "--verbose",
    "-v",
    count=True,
    help="say more on stderr: -v what the library notices, -vv its debugging too",
)
@click.pass_context
def cli(
    ctx: click.Context,
    address: str | None,
    namespace: str,
    state_dir: str,
    root_dir: str,
    verbose: int,
) -> None:
    """Run and supervise containers on containerd.

    \b
    lcd run -- echo hello                 run a busybox container, exit with its status
    lcd run -it -- sh                     an interactive shell in one
    lcd run -d --name web -- httpd -f     run one in the background; lcd logs web
    lcd exec -it web -- sh                a shell beside it
    lcd stats                             live resource use
    lcd ps -a                             list containers; lcd rm -f web removes one
    lcd daemon status                     the embedded containerd
    lcd demo                              the whole contract, step by step
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)
    _configure_logging(verbose)
    check_identifier(namespace, "namespace")
    ctx.obj = Settings(
        address=address or None,
        namespace=namespace,
        state_dir=os.path.abspath(state_dir),
        root_dir=os.path.abspath(root_dir),
    )


def _configure_logging(verbose: int) -> None:
    """Library warnings as one ``lcd: warning: ...`` line each; -v adds info, -vv debug.

    Without this, Python's last-resort handler would print bare messages with
    no hint of where they came from.
    """
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LcdLogFormatter())
    package = logging.getLogger("libcontainerd")
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False


class _LcdLogFormatter(logging.Formatter):
    """One line per record; the traceback only when debugging was asked for (-vv)."""

    def format(self, record: logging.LogRecord) -> str:
        text = _one_line(record.getMessage())
        debugging = logging.getLogger("libcontainerd").getEffectiveLevel() <= logging.DEBUG
        if record.exc_info and debugging:
            text += "\n" + self.formatException(record.exc_info)
        return f"lcd: {record.levelname.lower()}: {text}"


pass_settings = click.pass_obj
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON, for scripts")


# --- lcd daemon --------------------------------------------------------------------


@cli.group(context_settings=CONTEXT)
def daemon() -> None:
    """The embedded containerd, supervised by a background process of lcd.

    Its state lives in --state-dir (socket containerd.sock), its data in
    --root-dir; --address does not apply here. It keeps running after lcd
    exits and is restarted whenever containerd dies; containers keep running
    when it stops.
    """


@daemon.command("start")
@pass_settings
def daemon_start(settings: Settings) -> None:
    """Start the embedded containerd (nothing happens if it runs)."""
    embedded = settings.daemon()
    out = Output()
    with out.progress("starting the embedded containerd"):
        pid, started = asyncio.run(embedded.start())
    state = embedded.state()
    if started:
        click.echo(
            f"started the embedded containerd: supervisor pid {pid}, containerd pid"
            f" {state.containerd_pid}, socket {embedded.address}"
        )
    else:
        click.echo(f"the embedded containerd is already running (supervisor pid {pid})")


@daemon.command("stop")
@pass_settings
def daemon_stop(settings: Settings) -> None:
    """Stop the embedded containerd and its supervisor (containers keep running)."""
    embedded = settings.daemon()
    out = Output()
    with out.progress("stopping the embedded containerd"):
        pid, stopped = asyncio.run(embedded.stop())
    if not stopped:
        click.echo("the embedded containerd is not running")
    elif pid is None:
        click.echo("stopped the embedded containerd (it ran without its supervisor)")
    else:
        click.echo(f"stopped the embedded containerd (supervisor pid {pid})")


@daemon.command("status")
@json_option
@pass_settings
def daemon_status(settings: Settings, as_json: bool) -> None:
    """Show the embedded containerd: pids, version, socket, uptime, containers.

    Exits with 3 when it is not running.
    """
    embedded = settings.daemon()
    state = embedded.state()
    report: dict[str, Any] = {
        "running": state.running,
        "supervisor_pid": state.supervisor_pid,
        "containerd_pid": state.containerd_pid,
        "address": embedded.address,
        "state_dir": embedded.state_dir,
        "root_dir": embedded.root_dir,
        "uptime_seconds": _since(state.supervisor_started_at),
        "containerd_uptime_seconds": _since(state.containerd_started_at),
        "version": None,
        "revision": None,
        "namespace": settings.namespace,
        "containers": None,
        "tasks": None,
        "running_tasks": None,
        "error": None,
    }
    if state.running or state.containerd_pid is not None:
        report.update(asyncio.run(_daemon_facts(embedded.address, settings.namespace)))
    if as_json:
        Output().json(report)
    else:
        _print_daemon_status(report, embedded)
    if not state.running:
        raise SystemExit(3)


async def _daemon_facts(address: str, namespace: str) -> dict[str, Any]:
    try:
        async with AsyncClient(address, namespace, timeout=10) as client:
            version = await client.version()
            listing = await client.list_containers()
    except LibcontainerdError as error:
        return {"error": _one_line(str(error))}
    return {
        "version": version.version,
        "revision": version.revision,
        "containers": len(listing),
        "tasks": sum(1 for info in listing if info.status is not None),
        "running_tasks": sum(1 for info in listing if info.status is Status.RUNNING),
    }


def _print_daemon_status(report: dict[str, Any], embedded: EmbeddedDaemon) -> None:
    if report["running"]:
        click.echo("the embedded containerd is running")
        click.echo(
            f"  supervisor   pid {report['supervisor_pid']}, up"
            f" {_duration(report['uptime_seconds'])}, log {embedded.log_path}"
        )
    elif report["containerd_pid"] is not None:
        click.echo(
            "the embedded containerd runs without its supervisor ('lcd daemon stop' stops it)"
        )
    else:
        click.echo(f"the embedded containerd is not running (state dir {embedded.state_dir})")
        return
    version = report["version"] or "?"
    click.echo(
        f"  containerd   {version}, pid {report['containerd_pid'] or '-'}, up"
        f" {_duration(report['containerd_uptime_seconds'])}, log {embedded.containerd_log_path}"
    )
    click.echo(f"  socket       {report['address']}")
    if report["error"]:
        click.echo(f"  error        {report['error']}")
    else:
        click.echo(
            f"  containers   {report['containers']} in namespace {report['namespace']!r}:"
            f" {report['tasks']} with a task, {report['running_tasks']} running"
        )


@daemon.command("run")
@click.option("--ready-fd", type=int, default=None, hidden=True)
@pass_settings
def daemon_run(settings: Settings, ready_fd: int | None) -> None:
    """Supervise containerd in the foreground until SIGTERM (what 'start' runs, detached)."""
    package = logging.getLogger("libcontainerd")  # into its log file, with times
    package.handlers.clear()
    package.propagate = True
    package.setLevel(logging.NOTSET)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raise SystemExit(asyncio.run(settings.daemon().serve(ready_fd)))


# --- container options shared by run, create and exec -----------------------------


def _size_value(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A size in bytes: 512, 64k, 64m, 1.5g, 64MiB."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except InvalidArgument as error:
        raise click.BadParameter(str(error), ctx, param) from None


def _signal_value(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A signal by name (TERM, SIGTERM) or number."""
    try:
        return parse_signal(value)
    except InvalidArgument as error:
        raise click.BadParameter(str(error), ctx, param) from None


F = TypeVar("F", bound=Callable[..., Any])


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


stdio_options = _options(
    click.option(
        "--interactive", "-i", is_flag=True, help="copy lcd's stdin to the process (EOF ends it)"
    ),
    click.option(
        "--tty", "-t", is_flag=True, help="give the process a terminal, connected to lcd's"
    ),
)

process_options = _options(
    click.option(
        "--env", "-e", multiple=True, metavar="NAME[=VALUE]", help="set a variable (repeatable)"
    ),
    click.option("--workdir", "-w", metavar="DIR", help="working directory inside the container"),
    click.option(
        "--user", "-u", metavar="USER[:GROUP]", help="uid[:gid], or names from the rootfs"
    ),
)

container_options = _options(
    click.option("--name", metavar="ID", help="the container's id (default: a random one)"),
    click.option("--hostname", metavar="NAME", help="the container's hostname"),
    click.option(
        "--memory", "-m", callback=_size_value, metavar="SIZE", help="memory limit, e.g. 64m or 1g"
    ),
    click.option("--cpus", type=float, help="CPU limit in CPUs, e.g. 0.5"),
    click.option("--pids-limit", type=int, help="maximum number of processes"),
    click.option(
        "--rootfs",
        type=click.Path(exists=True, file_okay=False, resolve_path=True),
        help="root filesystem directory (default: a fresh busybox one, removed with the container)",
    ),
)


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    """What run and create were asked for."""

    args: tuple[str, ...]
    name: str | None = None
    hostname: str | None = None
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    rootfs: str | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    terminal: bool = False

    def resource_options(self) -> list[oci.SpecOption]:
        options = []
        for flag, value, build in (
            ("--memory", self.memory, oci.with_memory_limit),
            ("--cpus", self.cpus, oci.with_cpus),
            ("--pids-limit", self.pids_limit, oci.with_pids_limit),
        ):
            if value is not None:
                options.append(_option(flag, build, value))
        return options

    def validate(self) -> None:
        """Refuse a bad value before anything is contacted or built.

        User and group names are checked later, in the root filesystem.
        """
        if self.name is not None:
            check_identifier(self.name)
        self.spec_options(None)

    def spec_options(self, root: Path | None) -> list[oci.SpecOption]:
        """Every spec option; user names are looked up in ``root`` (skipped without one)."""
        options = self.resource_options() + self.process_options(root)
        if self.hostname is not None:
            options.append(_option("--hostname", oci.with_hostname, self.hostname))
        return options

    def process_options(self, root: Path | None) -> list[oci.SpecOption]:
        """The options of the process alone (what an exec takes): env, workdir, user, terminal."""
        options = []
        if self.env:
            options.append(_option("--env", oci.with_env, parse_env(self.env)))
        if self.workdir is not None:
            options.append(_option("--workdir", oci.with_cwd, self.workdir))
        if self.user is not None and (root is not None or _numeric_user(self.user)):
            uid, gid = parse_user(self.user, root)
            options.append(_option("--user", oci.with_user, uid, gid))
        if self.terminal:
            options.append(oci.with_terminal(True))
        return options


def _numeric_user(text: str) -> bool:
    return all(part.isdigit() for part in text.split(":"))


def _option(flag: str, build: Callable[..., oci.SpecOption], *values: Any) -> oci.SpecOption:
    """Build a spec option, naming the command-line flag when the value is refused."""
    try:
        return build(*values)
    except InvalidArgument as error:
        raise InvalidArgument(f"{flag}: {_strip_builder(str(error))}") from None


def _strip_builder(message: str) -> str:
    # "with_cpus: cpus must be ..." -> "must be ..." (the flag names it instead).
    head, _, rest = message.partition(": ")
    _, found, tail = rest.partition(" must be ")
    return f"must be {tail}" if head.startswith("with_") and found else message


@dataclass(frozen=True, slots=True)
class Stdio:
    """How a process's stdio is connected: what start() and exec() are given.

    In the foreground lcd copies the process's output to its own stdout and
    stderr (and, with -i, its stdin to the process); a container left running
    writes to a log file that the shim appends to itself (``lcd logs``).
    """

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
    return Stdio(attach=CopyToFiles(_output_file(1), _output_file(2)))


def logged_stdio(settings: Settings, container_id: str) -> Stdio:
    """The stdio of a container lcd leaves running: its output appended to its log file."""
    return Stdio(attach=LogFile(settings.log_path(container_id)))


class _OutputFile:
    """One of lcd's output descriptors, as a copy target; once its reader is gone, output is
    dropped, so the process never waits on a full FIFO (``lcd run -- seq 1 100000 | head -1``).

    Writes go straight to the descriptor: nothing stays buffered to fail at exit.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._gone = False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view and not self._gone:
            try:
                view = view[os.write(self._fd, view) :]
            except BrokenPipeError:
                self._gone = True
            except BlockingIOError:  # someone made the descriptor non-blocking
                select.select([], [self._fd], [])
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


def _output_file(fd: int) -> IO[bytes]:
    return cast(IO[bytes], _OutputFile(fd))


# --- lcd run / create ----------------------------------------------------------


def _request(args: tuple[str, ...], tty: bool, options: dict[str, Any]) -> ContainerRequest:
    if not args:
        raise click.UsageError("missing the command to run, e.g. 'lcd run -- echo hello'")
    request = ContainerRequest(
        args=args,
        name=options["name"],
        hostname=options["hostname"],
        memory=options["memory"],
        cpus=options["cpus"],
        pids_limit=options["pids_limit"],
        rootfs=options["rootfs"],
        env=tuple(options["env"]),
        workdir=options["workdir"],
        user=options["user"],
        terminal=tty,
    )
    request.validate()
    return request


COMMAND_CONTEXT = {**CONTEXT, "allow_interspersed_args": False}


@cli.command(context_settings=COMMAND_CONTEXT)
@click.option("--detach", "-d", is_flag=True, help="print the id and leave it running")
@click.option("--rm", "remove", is_flag=True, help="remove the container when it exits")
@stdio_options
@container_options
@process_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[--] COMMAND [ARG]...")
@pass_settings
def run(
    settings: Settings,
    /,
    args: tuple[str, ...],
    detach: bool,
    remove: bool,
    interactive: bool,
    tty: bool,
    **options: Any,
) -> None:
    """Run ARGS in a new container; exit with its exit status (128+N for signal N).

    Without --rootfs the container gets a fresh busybox root filesystem,
    removed with the container. Without -d, lcd copies the container's stdout
    and stderr to its own, waits for it and forwards the signals it receives
    to it (Ctrl-C twice kills it); the container's task is then deleted, and
    with --rm the container too. -i copies lcd's stdin to the container (its
    end is the container's EOF); -t gives the container a terminal connected
    to lcd's (with -i: an interactive shell). With -d the output goes to a
    log file ('lcd logs').

    \b
    Exit status: the container's; 125 when lcd fails, 126 when ARGS cannot
    be run, 127 when the program is not found.
    """
    with _process_exit_statuses():
        request = _request(args, tty, options)
        check_stdio(interactive, tty, detach)
        if detach and remove:
            raise click.UsageError(
                "--rm with -d is not supported: nothing would be left to remove the container"
                " when it exits (use 'lcd rm -f' later)"
            )
        status = asyncio.run(_run(settings, request, detach, remove, interactive, tty))
    raise SystemExit(status)


@contextlib.contextmanager
def _process_exit_statuses() -> Iterator[None]:
    """For commands that exit with their process's status: lcd's own failures exit with 125.

    Usage errors keep their 2, and a failure that names its status (126, 127) keeps it.
    """
    try:
        yield
    except (LibcontainerdError, OSError) as error:
        message = str(error) if isinstance(error, LibcontainerdError) else _describe_os_error(error)
        raise Failure(message, EXIT_LCD_FAILED) from None
    except Failure as error:
        raise Failure(error.message, error.exit_code or EXIT_LCD_FAILED) from None


async def _run(
    settings: Settings,
    request: ContainerRequest,
    detach: bool,
    remove: bool,
    interactive: bool,
    tty: bool,
) -> int:
    out = Output()
    container_id = request.name or secrets.token_hex(6)
    async with connect(settings, out) as client:
        if detach:
            stdio = logged_stdio(settings, container_id)
            await _create_and_start(client, settings, out, request, container_id, stdio)
            click.echo(container_id)
            return 0
        stdio = stdio_for(client, interactive, tty)
        # Installed first, so a signal that comes early waits for the container to run.
        with SignalForwarder(client, out) as forwarder:
            await _create_and_start(client, settings, out, request, container_id, stdio)
            exit_code = await _in_foreground(client, forwarder, stdio, container_id)
        if remove:
            await _remove(client, settings, container_id, force=True)
        else:
            with contextlib.suppress(NotFound):
                await client.delete_task(container_id)
        return exit_code


async def _in_foreground(
    client: AsyncClient, forwarder: SignalForwarder, stdio: Stdio, container_id: str
) -> int:
    """Forward signals to a started process, wait for its exit and the end of its output.

    Returns its exit status as a process's (at most 255).
    """
    forwarder.forward_to(container_id)
    exit_code, _ = await client.wait(container_id, forwarder.process_id)
    await forwarder.drain()
    await stdio.finish()
    return min(exit_code, 255)


async def _create_and_start(
    client: AsyncClient,
    settings: Settings,
    out: Output,
    request: ContainerRequest,
    container_id: str,
    stdio: Stdio,
) -> None:
    """Create and start the container; one that cannot start is removed again."""
    await _create(client, settings, out, request, container_id)
    try:
        await client.start(container_id, with_stdin=stdio.with_stdin, attach_stdio=stdio.attach)
    except LibcontainerdError as error:
        with contextlib.suppress(LibcontainerdError):
            await _remove(client, settings, container_id, force=True)
        raise Failure(str(error), _start_failure_status(str(error))) from None


def _start_failure_status(message: str) -> int:
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return EXIT_NOT_FOUND
    if "permission denied" in lowered:
        return EXIT_CANNOT_RUN
    return EXIT_LCD_FAILED


class SignalForwarder:
    """Forwards the signals lcd receives to a container's process; Ctrl-C twice kills it.

    Installed before the process exists, so a signal that arrives while it
    is being created or started is held and forwarded once it runs.
    ``process_id`` is the main process's (``init``) or an exec's.
    """

    FORWARDED = (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    )

    def __init__(self, client: AsyncClient, out: Output, process_id: str = INIT_PROCESS_ID) -> None:
        self._client = client
        self._out = out
        self._container_id: str | None = None
        self.process_id = process_id
        self._held: list[int] = []
        self._interrupts = 0
        self._sending: set[asyncio.Task[None]] = set()

    def __enter__(self) -> SignalForwarder:
        loop = asyncio.get_running_loop()
        for signum in self.FORWARDED:
            loop.add_signal_handler(signum, self._received, signum)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self.FORWARDED:
            loop.remove_signal_handler(signum)

    def forward_to(self, container_id: str) -> None:
        """Forward from now on to the process in that container, starting with what was held."""
        self._container_id = container_id
        held, self._held = self._held, []
        for signum in held:
            self._send(signum)

    async def drain(self) -> None:
        """Wait for the signals being sent."""
        if self._sending:
            await asyncio.wait(list(self._sending))

    def _received(self, signum: int) -> None:
        if signum == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts == 1:
                target = (
                    "the container (its main process ignores signals it does not handle)"
                    if self.process_id == INIT_PROCESS_ID
                    else f"exec {self.process_id}"
                )
                self._out.note(f"sent SIGINT to {target}; press Ctrl-C again to kill it")
            else:
                signum = signal.SIGKILL
        if self._container_id is None:
            self._held.append(signum)
        else:
            self._send(signum)

    def _send(self, signum: int) -> None:
        task = asyncio.get_running_loop().create_task(self._signal(signum))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _signal(self, signum: int) -> None:
        assert self._container_id is not None
        with contextlib.suppress(LibcontainerdError):
            await self._client.signal_process(self._container_id, self.process_id, signum)


@cli.command(context_settings=COMMAND_CONTEXT)
@stdio_options
@container_options
@process_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[--] COMMAND [ARG]...")
@pass_settings
def create(
    settings: Settings, /, args: tuple[str, ...], interactive: bool, tty: bool, **options: Any
) -> None:
    """Create a container that runs ARGS when started ('lcd start'); print its id.

    -t gives it a terminal: start it with 'lcd start -ai ID'.
    """
    request = _request(args, tty, options)
    if interactive:
        raise click.UsageError(
            "-i applies when the container starts: 'lcd start -ai ID' attaches its stdin"
        )
    container_id = request.name or secrets.token_hex(6)

    async def work() -> None:
        async with connect(settings, Output()) as client:
            await _create(client, settings, Output(), request, container_id)

    asyncio.run(work())
    click.echo(container_id)


async def _create(
    client: AsyncClient,
    settings: Settings,
    out: Output,
    request: ContainerRequest,
    container_id: str,
) -> None:
    """Create the container (and its busybox root filesystem).

    A log file left by an earlier container of that name is removed: a new
    container starts a new log.
    """
    check_identifier(container_id)
    if request.rootfs is not None:
        root = Path(request.rootfs)
        spec = oci.default_spec(list(request.args), root, *request.spec_options(root))
        await client.create(container_id, spec)
    else:
        root = _claim_rootfs(settings, container_id)
        try:
            with out.progress("building a busybox root filesystem"):
                rootfs.busybox(root)
            spec = oci.default_spec(list(request.args), root, *request.spec_options(root))
            await client.create(container_id, spec)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    settings.log_path(container_id).unlink(missing_ok=True)


def _claim_rootfs(settings: Settings, container_id: str) -> Path:
    """Make the container's rootfs directory; refuse one that exists (it may be in use)."""
    root = settings.rootfs_dir(container_id)
    root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        root.mkdir(mode=0o755)
    except FileExistsError:
        raise AlreadyExists(
            f"container {container_id!r} already exists in namespace {settings.namespace!r},"
            f" or a previous run left its root filesystem {root} behind"
            f" ('lcd rm -f {container_id}' removes either)"
        ) from None
    return root


# --- lifecycle commands ----------------------------------------------------------


ids_argument = click.argument("container_ids", metavar="ID...", nargs=-1, required=True)


def _each(
    settings: Settings, ids: Iterable[str], action: Callable[[AsyncClient, str], Any]
) -> None:
    """Apply ``action`` to each id, printing the id or the error; exit 1 if one failed."""

    async def work() -> bool:
        ok = True
        async with connect(settings, Output()) as client:
            for container_id in ids:
                try:
                    check_identifier(container_id)
                    await action(client, container_id)
                except LibcontainerdError as error:
                    ok = False
                    _fail_line(f"lcd: {_one_line(str(error))}")
                else:
                    click.echo(container_id)
        return ok

    if not asyncio.run(work()):
        raise SystemExit(1)


@cli.command(context_settings=CONTEXT)
@click.option(
    "--attach",
    "-a",
    is_flag=True,
    help="copy its output to lcd's, wait for it, and exit with its status",
)
@click.option("--interactive", "-i", is_flag=True, help="also copy lcd's stdin to it (implies -a)")
@ids_argument
@pass_settings
def start(
    settings: Settings, attach: bool, interactive: bool, container_ids: tuple[str, ...]
) -> None:
    """Start created or stopped containers (a stopped task is deleted first).

    Their output goes to their log file ('lcd logs'). With -a or -i, lcd
    attaches to the one container given instead, as 'lcd run' does (its
    terminal, if it was created with -t), and exits with its status; a
    container with a terminal can only be started so.
    """
    if attach or interactive:
        if len(container_ids) != 1:
            raise click.UsageError("-a and -i attach to one container: give one ID")
        with _process_exit_statuses():
            check_identifier(container_ids[0])
            status = asyncio.run(_start_attached(settings, container_ids[0], interactive))
        raise SystemExit(status)

    async def action(client: AsyncClient, container_id: str) -> None:
        await _make_way_for_a_task(client, container_id)
        if _has_terminal(await client.spec(container_id)):
            raise FailedPrecondition(
                f"container {container_id!r} has a terminal, which needs lcd attached:"
                f" start it with 'lcd start -ai {container_id}'"
            )
        stdio = logged_stdio(settings, container_id)
        await client.start(container_id, with_stdin=stdio.with_stdin, attach_stdio=stdio.attach)

    _each(settings, container_ids, action)


async def _start_attached(settings: Settings, container_id: str, interactive: bool) -> int:
    """``lcd start -a``: start with lcd's stdio, wait, delete the task; the exit status."""
    out = Output()
    async with connect(settings, out) as client:
        await _make_way_for_a_task(client, container_id)
        tty = _has_terminal(await client.spec(container_id))
        stdio = stdio_for(client, interactive, tty)
        with SignalForwarder(client, out) as forwarder:
            try:
                await client.start(
                    container_id, with_stdin=stdio.with_stdin, attach_stdio=stdio.attach
                )
            except LibcontainerdError as error:
                raise Failure(str(error), _start_failure_status(str(error))) from None
            exit_code = await _in_foreground(client, forwarder, stdio, container_id)
        with contextlib.suppress(NotFound):
            await client.delete_task(container_id)
        return exit_code


async def _make_way_for_a_task(client: AsyncClient, container_id: str) -> None:
    """Delete the container's stopped task, refuse a live one (FailedPrecondition); NotFound."""
    state = await _task_state(client, container_id)
    if state is Status.STOPPED:
        await client.delete_task(container_id)
    elif state is not None:
        raise FailedPrecondition(f"container {container_id!r} is already {state}")


def _has_terminal(spec: dict[str, Any]) -> bool:
    return bool(spec.get("process", {}).get("terminal", False))


async def _task_state(client: AsyncClient, container_id: str) -> Status | None:
    """The task's status; None when the container has no task. Raises NotFound without one."""
    try:
        return await client.status(container_id)
    except NotFound as error:
        # status() says which is missing (it costs a Containers.Get only on failure).
        if "no such container" in str(error):
            raise NotFound(f"no such container: {container_id!r}") from None
        return None


@cli.command(context_settings=CONTEXT)
@click.option(
    "--signal",
    "-s",
    "signum",
    callback=_signal_value,
    metavar="SIGNAL",
    default="KILL",
    show_default=True,
    help="the signal",
)
@ids_argument
@pass_settings
def kill(settings: Settings, signum: int, container_ids: tuple[str, ...]) -> None:
    """Send a signal to containers' main processes.

    A container's main process ignores signals it has no handler for, except KILL.
    """

    async def action(client: AsyncClient, container_id: str) -> None:
        try:
            await client.signal_process(container_id, INIT_PROCESS_ID, signum)
        except NotFound:
            # Say which is missing: the container, its task, or (below) its process.
            if await _task_state(client, container_id) is None:
                raise NotFound(
                    f"container {container_id!r} is not running (it has no task)"
                ) from None
            raise

    _each(settings, container_ids, action)


@cli.command(context_settings=CONTEXT)
@click.option(
    "--time",
    "-t",
    "grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="seconds to wait after TERM before KILL",
)
@ids_argument
@pass_settings
def stop(settings: Settings, grace: float, container_ids: tuple[str, ...]) -> None:
    """Stop containers: TERM, then KILL after --time seconds; their tasks are deleted."""

    async def action(client: AsyncClient, container_id: str) -> None:
        state = await _task_state(client, container_id)
        if state is None:
            return
        if state is not Status.STOPPED:
            await _signal_and_reap(client, container_id, state, signal.SIGTERM, grace)
        with contextlib.suppress(NotFound):
            await client.delete_task(container_id)

    _each(settings, container_ids, action)


async def _signal_and_reap(
    client: AsyncClient, container_id: str, state: Status, signum: int, grace: float
) -> None:
    """Send ``signum`` (then KILL after ``grace`` seconds) and wait for the exit."""
    for current, wait_for in ((signum, grace), (signal.SIGKILL, _REAP_TIMEOUT)):
        with contextlib.suppress(NotFound):
            await client.signal_process(container_id, INIT_PROCESS_ID, current)
        if state in (Status.PAUSED, Status.PAUSING):
            # A frozen process only receives its signals once thawed.
            with contextlib.suppress(LibcontainerdError):
                await client.resume(container_id)
        try:
            async with asyncio.timeout(wait_for):
                await client.wait(container_id)
            return
        except TimeoutError:
            if current == signal.SIGKILL:
                raise DeadlineExceeded(
                    f"container {container_id!r} did not exit within {wait_for:g} s of SIGKILL"
                ) from None


@cli.command(context_settings=CONTEXT)
@ids_argument
@pass_settings
def pause(settings: Settings, container_ids: tuple[str, ...]) -> None:
    """Freeze every process of containers."""
    _each(settings, container_ids, lambda client, cid: client.pause(cid))


@cli.command(context_settings=CONTEXT)
@ids_argument
@pass_settings
def resume(settings: Settings, container_ids: tuple[str, ...]) -> None:
    """Thaw paused containers."""
    _each(settings, container_ids, lambda client, cid: client.resume(cid))


@cli.command(context_settings=CONTEXT)
@click.option(
    "--memory", "-m", callback=_size_value, metavar="SIZE", help="memory limit, e.g. 64m or 1g"
)
@click.option("--cpus", type=float, help="CPU limit in CPUs, e.g. 0.5")
@click.option("--pids-limit", type=int, help="maximum number of processes")
@ids_argument
@pass_settings
def update(
    settings: Settings,
    memory: int | None,
    cpus: float | None,
    pids_limit: int | None,
    container_ids: tuple[str, ...],
) -> None:
    """Change running containers' resource limits."""
    request = ContainerRequest(args=(), memory=memory, cpus=cpus, pids_limit=pids_limit)
    options = request.resource_options()
    if not options:
        raise click.UsageError("give at least one of --memory, --cpus, --pids-limit")
    resources = oci.apply({}, *options).get("linux", {}).get("resources", {})
    _each(settings, container_ids, lambda client, cid: client.update_resources(cid, resources))


@cli.command(context_settings=CONTEXT)
@click.option("--force", "-f", is_flag=True, help="kill running containers first")
@ids_argument
@pass_settings
def rm(settings: Settings, force: bool, container_ids: tuple[str, ...]) -> None:
    """Remove containers, their tasks, and the root filesystems and logs lcd made for them."""

    async def action(client: AsyncClient, container_id: str) -> None:
        await _remove(client, settings, container_id, force=force)

    _each(settings, container_ids, action)


async def _remove(client: AsyncClient, settings: Settings, container_id: str, force: bool) -> None:
    """Delete the task (killing it with ``force``), the container, lcd's rootfs and log for it."""
    rootfs_dir = settings.rootfs_dir(container_id)
    log_path = settings.log_path(container_id)
    try:
        state = await _task_state(client, container_id)
    except NotFound:
        if rootfs_dir.is_dir():  # left behind by an interrupted run: nothing else to remove
            shutil.rmtree(rootfs_dir, ignore_errors=True)
            log_path.unlink(missing_ok=True)
            return
        raise NotFound(f"no such container: {container_id!r}") from None
    if state in _ALIVE:
        if not force:
            raise FailedPrecondition(
                f"container {container_id!r} is {state}: stop it first, or use 'lcd rm -f'"
            )
        assert state is not None
        await _signal_and_reap(client, container_id, state, signal.SIGKILL, _REAP_TIMEOUT)
    if state is not None:
        with contextlib.suppress(NotFound):
            await client.delete_task(container_id)
    await client.delete(container_id)
    shutil.rmtree(rootfs_dir, ignore_errors=True)
    log_path.unlink(missing_ok=True)


# --- listings -----------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--all", "-a", "show_all", is_flag=True, help="also containers that are not running")
@click.option("--quiet", "-q", is_flag=True, help="only the ids")
@json_option
@pass_settings
def ps(settings: Settings, show_all: bool, quiet: bool, as_json: bool) -> None:
    """List running containers (-a: all) with status, pid and uptime."""

    async def work() -> list[ContainerInfo]:
        async with connect(settings, Output()) as client:
            return await client.list_containers()

    listing = asyncio.run(work())
    if not show_all:
        listing = [info for info in listing if info.status in _ALIVE]
    listing.sort(key=lambda info: info.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    out = Output()
    if as_json:
        out.json([_container_record(info) for info in listing])
    elif quiet:
        for info in listing:
            click.echo(info.id)
    else:
        out.table(
            ("ID", "STATUS", "PID", "CREATED", "UPTIME"),
            (
                (
                    info.id,
                    _status_text(info),
                    str(info.pid) if info.pid and info.status in _ALIVE else "-",
                    _ago(info.created_at),
                    _duration(_uptime(info)),
                )
                for info in listing
            ),
        )


def _uptime(info: ContainerInfo) -> float | None:
    if info.pid is None or info.status not in (Status.RUNNING, Status.PAUSED, Status.PAUSING):
        return None
    process = process_info(info.pid)
    return _since(process.started_at) if process is not None else None


def _status_text(info: ContainerInfo) -> str:
    if info.status is None:
        return "no task"
    if info.status is Status.STOPPED:
        return f"exited ({info.exit_code})"
    return str(info.status)


def _container_record(info: ContainerInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "status": str(info.status) if info.status is not None else None,
        "pid": info.pid,
        "exit_code": info.exit_code,
        "exited_at": _iso(info.exited_at),
        "created_at": _iso(info.created_at),
        "uptime_seconds": _uptime(info),
        "labels": info.labels,
    }


@cli.command(context_settings=CONTEXT)
@json_option
@click.argument("container_id", metavar="ID")
@pass_settings
def top(settings: Settings, container_id: str, as_json: bool) -> None:
    """List a container's processes (from containerd, details from /proc)."""

    async def work() -> list[tuple[int, str | None]]:
        async with connect(settings, Output()) as client:
            summaries = await client.summary(container_id)
        return [(summary.pid, summary.info.get("exec_id")) for summary in summaries]

    check_identifier(container_id)
    processes: list[dict[str, Any]] = []
    for pid, exec_id in asyncio.run(work()):
        info = process_info(pid)
        processes.append(
            {
                "pid": pid,
                "exec_id": exec_id,
                "ppid": info.ppid if info else None,
                "uid": info.uid if info else None,
                "state": info.state if info else None,
                "started_at": _iso(info.started_at) if info else None,
                "cpu_seconds": info.cpu_seconds if info else None,
                "command": info.command if info else None,
            }
        )
    out = Output()
    if as_json:
        out.json(processes)
        return
    out.table(
        ("PID", "PPID", "UID", "STATE", "STARTED", "TIME", "COMMAND"),
        (
            (
                str(process["pid"]),
                _text(process["ppid"]),
                _text(process["uid"]),
                _text(process["state"]),
                _clock(process["started_at"]),
                _cpu_time(process["cpu_seconds"]),
                _text(process["command"]),
            )
            for process in processes
        ),
    )


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _clock(iso: str | None) -> str:
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")


def _cpu_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


@cli.command(context_settings=CONTEXT)
@json_option
@click.argument("container_ids", metavar="[ID]...", nargs=-1)
@pass_settings
def events(settings: Settings, container_ids: tuple[str, ...], as_json: bool) -> None:
    """Print task events as they happen (of the given containers, or all), until Ctrl-C.

    --json prints one JSON object per line.
    """
    for container_id in container_ids:
        check_identifier(container_id)
    wanted = set(container_ids)

    async def work() -> None:
        out = Output()
        async with connect(settings, out) as client:
            subscription = client.events()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, subscription.end)
            out.note(f"listening for events in namespace {settings.namespace!r}; Ctrl-C stops")
            async for container_id, event, info in subscription:
                if not wanted or container_id in wanted:
                    _print_event(container_id, event, info, as_json)

    asyncio.run(work())


def _print_event(container_id: str, event: EventType, info: EventInfo, as_json: bool) -> None:
    now = datetime.now(UTC)
    if as_json:
        record = {
            "time": _iso(now),
            "type": str(event),
            "container_id": container_id,
            "process_id": info.process_id,
            "pid": info.pid,
            "exit_code": info.exit_code if event is EventType.EXIT else None,
            "exited_at": _iso(info.exited_at),
            "oom_killed": info.oom_killed,
            "error": info.error,
        }
        click.echo(json.dumps(record))
        return
    details = []
    if info.process_id and info.process_id != container_id:
        details.append(f"process={info.process_id}")
    if info.pid:
        details.append(f"pid={info.pid}")
    if event is EventType.EXIT:
        details.append(f"exit_code={info.exit_code}")
    if info.oom_killed:
        details.append("oom_killed")
    if info.error:
        details.append(f"error={info.error!r}")
    stamp = now.astimezone().isoformat(timespec="milliseconds")
    click.echo(f"{stamp} {event!s:<12} {container_id} {' '.join(details)}".rstrip())


@cli.command(context_settings=CONTEXT)
@json_option
@pass_settings
def version(settings: Settings, as_json: bool) -> None:
    """Print lcd's and containerd's versions."""

    async def work() -> tuple[str, str, str]:
        async with connect(settings, Output()) as client:
            reply = await client.version()
            return reply.version, reply.revision, client.address

    containerd, revision, address = asyncio.run(work())
    ours = metadata.version("libcontainerd")
    if as_json:
        Output().json(
            {
                "libcontainerd": ours,
                "containerd": containerd,
                "revision": revision,
                "address": address,
                "namespace": settings.namespace,
            }
        )
        return
    click.echo(f"libcontainerd {ours}")
    click.echo(f"containerd {containerd} ({revision}) at {address}")


# --- exec -----------------------------------------------------------------------------


@cli.command("exec", context_settings=COMMAND_CONTEXT)
@click.option(
    "--detach", "-d", is_flag=True, help="print the exec id and leave it running, without stdio"
)
@stdio_options
@process_options
@click.argument("container_id", metavar="ID")
@click.argument(
    "args", nargs=-1, type=click.UNPROCESSED, required=True, metavar="[--] COMMAND [ARG]..."
)
@pass_settings
def exec_(
    settings: Settings,
    /,
    container_id: str,
    args: tuple[str, ...],
    detach: bool,
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    workdir: str | None,
    user: str | None,
) -> None:
    """Run ARGS in a running container; exit with its exit status.

    The process starts as the container's own (its environment, user and
    working directory), changed by -e, -w and -u; -i and -t work as in 'lcd
    run', and so do the output and the signals lcd receives. Its id is
    generated ('exec-' and 12 hex digits).

    \b
    Exit status: the process's; 125 when lcd fails, 126 when ARGS cannot be
    run, 127 when the program is not found.
    """
    if args[:1] == ("--",):  # after ID, click keeps the "--" among the arguments
        args = args[1:]
    if not args:
        raise click.UsageError("missing the command to run, e.g. 'lcd exec ID -- ls'")
    with _process_exit_statuses():
        check_identifier(container_id)
        check_stdio(interactive, tty, detach)
        request = ContainerRequest(args=args, env=env, workdir=workdir, user=user, terminal=tty)
        request.validate()
        status = asyncio.run(_exec(settings, container_id, request, detach, interactive))
    raise SystemExit(status)


async def _exec(
    settings: Settings,
    container_id: str,
    request: ContainerRequest,
    detach: bool,
    interactive: bool,
) -> int:
    out = Output()
    exec_id = f"exec-{secrets.token_hex(6)}"
    async with connect(settings, out) as client:
        process = await _exec_process(client, container_id, request)
        if detach:
            await _start_exec(client, container_id, exec_id, process, Stdio())
            click.echo(exec_id)
            return 0
        stdio = stdio_for(client, interactive, request.terminal)
        with SignalForwarder(client, out, exec_id) as forwarder:
            await _start_exec(client, container_id, exec_id, process, stdio)
            return await _in_foreground(client, forwarder, stdio, container_id)


async def _exec_process(
    client: AsyncClient, container_id: str, request: ContainerRequest
) -> dict[str, Any]:
    """The exec's OCI process: the container's own, running ARGS, with -e, -w, -u and -t applied.

    User names are looked up in the container's root filesystem when its path is on this host.
    """
    spec = await client.spec(container_id)
    root_path = spec.get("root", {}).get("path")
    root = Path(root_path) if isinstance(root_path, str) and os.path.isabs(root_path) else None
    document = {"process": copy.deepcopy(spec.get("process") or {})}
    oci.apply(
        document,
        oci.with_args(list(request.args)),
        oci.with_terminal(request.terminal),
        *request.process_options(root),
    )
    return document["process"]


async def _start_exec(
    client: AsyncClient, container_id: str, exec_id: str, process: dict[str, Any], stdio: Stdio
) -> None:
    try:
        await client.exec(container_id, exec_id, process, stdio.with_stdin, stdio.attach)
    except LibcontainerdError as error:
        raise Failure(str(error), _start_failure_status(str(error))) from None


# --- stats ------------------------------------------------------------------------------

_WITH_METRICS = (Status.RUNNING, Status.PAUSED, Status.PAUSING)
# --no-stream: the time between its two samples, so that CPU % has something to compare.
_NO_STREAM_GAP = 0.5


@cli.command(context_settings=CONTEXT)
@click.option("--no-stream", is_flag=True, help="print one sample and exit")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="seconds between samples",
)
@json_option
@click.argument("container_ids", metavar="[ID]...", nargs=-1)
@pass_settings
def stats(
    settings: Settings,
    container_ids: tuple[str, ...],
    no_stream: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Show containers' resource use, live, until Ctrl-C (of the running ones without IDs).

    CPU % is the CPU time used since the previous sample over the time between
    the two (100% = one CPU busy), as docker stats shows it; memory leaves out
    inactive page cache (see libcontainerd.metrics). --json prints one JSON
    object per container and sample, one per line.
    """
    for container_id in container_ids:
        check_identifier(container_id)
    asyncio.run(_stats(settings, container_ids, no_stream, interval, as_json))


class StatsSampler:
    """Samples containers' metrics, each compared with the previous sample of the same container."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._previous: dict[str, tuple[Stats, float]] = {}

    async def targets(self, container_ids: Sequence[str]) -> list[str]:
        """The given ids, or without any, every container with metrics now (running or paused)."""
        if container_ids:
            return list(container_ids)
        listing = await self._client.list_containers()
        return [info.id for info in listing if info.status in _WITH_METRICS]

    async def sample(self, container_ids: Sequence[str], *, named: bool) -> list[dict[str, Any]]:
        """One record per container; NotFound for a named container that does not exist.

        A named container without metrics (no task, or stopped) gets a record
        of nulls; one found by listing that has gone since is left out.
        """
        records = await asyncio.gather(*(self._record(cid, named) for cid in container_ids))
        return [record for record in records if record is not None]

    async def _record(self, container_id: str, named: bool) -> dict[str, Any] | None:
        try:
            sample = await self._client.stats(container_id)
        except (NotFound, FailedPrecondition) as error:
            self._previous.pop(container_id, None)
            if named and isinstance(error, NotFound) and "no such container" in str(error):
                raise NotFound(f"no such container: {container_id!r}") from None
            return _stats_record(container_id, None, None) if named else None
        now = time.monotonic()
        cpu_percent = None
        previous = self._previous.get(container_id)
        if previous is not None:
            before, before_at = previous
            elapsed = (sample.read - before.read).total_seconds()
            if elapsed <= 0:  # a runtime without read times: our own clock
                elapsed = now - before_at
            if elapsed > 0:
                used = max(0, sample.cpu_usage_ns - before.cpu_usage_ns)
                cpu_percent = used / (elapsed * 1e9) * 100
        self._previous[container_id] = (sample, now)
        return _stats_record(container_id, sample, cpu_percent)


def _stats_record(
    container_id: str, sample: Stats | None, cpu_percent: float | None
) -> dict[str, Any]:
    if sample is None:
        return {"id": container_id, "read": None, "cpu_percent": None} | dict.fromkeys(
            (
                "cpu_usage_ns",
                "memory_usage_bytes",
                "memory_limit_bytes",
                "memory_percent",
                "pids_current",
                "pids_limit",
                "blkio_read_bytes",
                "blkio_write_bytes",
                "cgroup_version",
            )
        )
    limit = sample.memory_limit_bytes
    return {
        "id": container_id,
        "read": _iso(sample.read),
        "cpu_percent": None if cpu_percent is None else round(cpu_percent, 2),
        "cpu_usage_ns": sample.cpu_usage_ns,
        "memory_usage_bytes": sample.memory_usage_bytes,
        "memory_limit_bytes": limit,
        "memory_percent": round(sample.memory_usage_bytes / limit * 100, 2) if limit else None,
        "pids_current": sample.pids_current,
        "pids_limit": sample.pids_limit,
        "blkio_read_bytes": sample.blkio_read_bytes,
        "blkio_write_bytes": sample.blkio_write_bytes,
        "cgroup_version": sample.cgroup_version,
    }


_STATS_HEADERS = ("ID", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "BLOCK I/O")


def _stats_row(record: dict[str, Any]) -> tuple[str, ...]:
    if record["read"] is None:
        return (record["id"], "-", "- / -", "-", "-", "- / -")
    cpu = record["cpu_percent"]
    memory = record["memory_percent"]
    return (
        record["id"],
        "-" if cpu is None else f"{cpu:.2f}%",
        f"{_size(record['memory_usage_bytes'])} / {_size(record['memory_limit_bytes'])}",
        "-" if memory is None else f"{memory:.2f}%",
        str(record["pids_current"]),
        f"{_size(record['blkio_read_bytes'])} / {_size(record['blkio_write_bytes'])}",
    )


def _size(count: int | None) -> str:
    """``512B``, ``1.5KiB``, ``64MiB``; ``-`` for no value (no limit)."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{count}B" if unit == "B" else f"{value:.4g}{unit}"
        value /= 1024
    return f"{value:.4g}TiB"


async def _stats(
    settings: Settings,
    container_ids: tuple[str, ...],
    no_stream: bool,
    interval: float,
    as_json: bool,
) -> None:
    out = Output()
    named = bool(container_ids)
    async with connect(settings, out) as client:
        sampler = StatsSampler(client)
        if no_stream:
            targets = await sampler.targets(container_ids)
            await sampler.sample(targets, named=named)
            await asyncio.sleep(_NO_STREAM_GAP)
            records = await sampler.sample(targets, named=named)
            if as_json:
                for record in records:
                    out.json(record)
            else:
                out.table(_STATS_HEADERS, [_stats_row(record) for record in records])
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        with _StatsDisplay(out, as_json) as display:
            while not stop.is_set():
                records = await sampler.sample(await sampler.targets(container_ids), named=named)
                display.show(records)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)


class _StatsDisplay:
    """Where live stats go: a table redrawn in place on a terminal, else one after another."""

    def __init__(self, out: Output, as_json: bool) -> None:
        self._out = out
        self._as_json = as_json
        self._live: Live | None = None
        if not as_json and out.stdout.is_terminal:
            self._live = Live(console=out.stdout, auto_refresh=False)

    def __enter__(self) -> _StatsDisplay:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()

    def show(self, records: list[dict[str, Any]]) -> None:
        if self._as_json:
            for record in records:
                self._out.json(record)
        elif self._live is not None:
            self._live.update(
                self._out.render_table(_STATS_HEADERS, map(_stats_row, records)), refresh=True
            )
        else:
            self._out.table(_STATS_HEADERS, [_stats_row(record) for record in records])
            click.echo()


# --- checkpoints --------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--exit", "leave_exited", is_flag=True, help="stop the container once checkpointed")
@click.argument("container_id", metavar="ID")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@pass_settings
def checkpoint(settings: Settings, container_id: str, directory: str, leave_exited: bool) -> None:
    """Checkpoint a running container into DIR with CRIU; print its id.

    DIR must be new or empty; it must be on this host (containerd's runc
    writes it). The container keeps running, or with --exit stops once
    checkpointed (lcd waits for that). 'lcd restore ID DIR' starts it again
    from DIR, its processes going on where they were.
    """
    check_identifier(container_id)
    target = os.path.abspath(directory)

    async def work() -> None:
        out = Output()
        async with connect(settings, out) as client:
            with out.progress(f"checkpointing {container_id}"):
                await client.create_checkpoint(container_id, target, exit=leave_exited)
                if leave_exited:
                    async with asyncio.timeout(_REAP_TIMEOUT):
                        await client.wait(container_id)

    asyncio.run(work())
    click.echo(container_id)


@cli.command(context_settings=CONTEXT)
@click.argument("container_id", metavar="ID")
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@pass_settings
def restore(settings: Settings, container_id: str, directory: str) -> None:
    """Start a container from its checkpoint in DIR ('lcd checkpoint'); print its id.

    Its processes go on where they were; a stopped task is deleted first. Its
    output is appended to its log ('lcd logs').
    """
    check_identifier(container_id)
    source = os.path.abspath(directory)

    async def work() -> None:
        out = Output()
        async with connect(settings, out) as client:
            await _make_way_for_a_task(client, container_id)
            with out.progress(f"restoring {container_id}"):
                await client.start(
                    container_id,
                    checkpoint_dir=source,
                    attach_stdio=LogFile(settings.log_path(container_id)),
                )

    asyncio.run(work())
    click.echo(container_id)


# --- logs -----------------------------------------------------------------------------------

_FOLLOW_POLL = 0.2


@cli.command(context_settings=CONTEXT)
@click.option(
    "--follow", "-f", is_flag=True, help="go on printing new output until the container stops"
)
@click.argument("container_id", metavar="ID")
@pass_settings
def logs(settings: Settings, container_id: str, follow: bool) -> None:
    """Print the output of a container lcd left running (run -d, start, restore).

    stdout and stderr share one file, each in its own order. -f goes on until
    the container stops, or Ctrl-C.
    """
    check_identifier(container_id)
    path = settings.log_path(container_id)

    async def work() -> None:
        async with connect(settings, Output()) as client:
            state = await _task_state(client, container_id)
            if not path.exists():
                raise Failure(
                    f"container {container_id!r} has no log: lcd keeps the output of"
                    " containers it leaves running (lcd run -d, lcd start, lcd restore)"
                )
            await _print_log(client, container_id, path, follow and state in _ALIVE)

    asyncio.run(work())


async def _print_log(client: AsyncClient, container_id: str, path: Path, follow: bool) -> None:
    stop = asyncio.Event()
    if follow:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    output = _OutputFile(1)
    with open(path, "rb") as log:  # noqa: ASYNC230 - a local file, read in small steps
        while True:
            chunk = log.read(64 * 1024)
            if chunk:
                output.write(chunk)
                continue
            if not follow or stop.is_set():
                return
            # The shim may still be writing what the container wrote last: one more pass.
            follow = await _task_state(client, container_id) in _ALIVE
            if follow:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _FOLLOW_POLL)


# --- the demo --------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@pass_settings
def demo(settings: Settings) -> None:
    """Walk real containers through the whole contract, printing each event as it arrives.

    Create, start with attached output, exec, pause and resume, stats, update,
    checkpoint and restore (when CRIU works), signal, exit, delete. It uses
    the containerd at --address, or the embedded one of --state-dir, started
    for the demo (and stopped after it) when it is not running.
    """
    from ._demo import DemoSettings, run_demo

    console = Console(highlight=False, soft_wrap=True)
    where = DemoSettings(
        address=settings.address,
        namespace=settings.namespace,
        state_dir=settings.state_dir,
        root_dir=settings.root_dir,
    )
    raise SystemExit(asyncio.run(run_demo(console, where)))
