"""The ``lcd`` group: its global options (:class:`Settings`), its logging, and the client
every command opens with :func:`connect`.

Command modules take ``settings`` with :data:`pass_settings`; ``lcd`` itself,
with its commands added, is assembled in the package's ``__init__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from .._identifiers import check_identifier
from .._limits import raise_open_file_limit
from .._paths import (
    DEFAULT_NAMESPACE,
    DEFAULT_ROOT_DIR,
    DEFAULT_STATE_DIR,
    ROOT_DIR_ENV,
    STATE_DIR_ENV,
)
from ..errors import Unavailable
from ._failures import one_line

if TYPE_CHECKING:  # imported where used: a command that never connects never pays for grpc
    from ..client import AsyncClient
    from ._embedded import EmbeddedDaemon
    from ._output import Output

__all__ = [
    "CONTEXT",
    "Settings",
    "WarmClients",
    "cli",
    "connect",
    "json_option",
    "pass_settings",
    "run_async",
]

_T = TypeVar("_T")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass(frozen=True, slots=True)
class Settings:
    """The global options."""

    address: str | None
    namespace: str
    state_dir: str
    root_dir: str

    def daemon(self) -> EmbeddedDaemon:
        from ._embedded import EmbeddedDaemon

        return EmbeddedDaemon(self.state_dir, self.root_dir)

    def rootfs_dir(self, container_id: str) -> Path:
        """Where ``lcd run``/``create`` build a container's busybox root filesystem.

        Per namespace, so the same name in two namespaces never shares one.
        """
        return Path(self.root_dir, "rootfs", self.namespace, container_id)

    def log_path(self, container_id: str) -> Path:
        """Where the shim writes the output of a container lcd left running (``lcd logs``)."""
        return Path(self.root_dir, "logs", self.namespace, f"{container_id}.log")


pass_settings = click.pass_obj


class LazyGroup(click.Group):
    """A group whose commands' modules are imported when one of their commands is asked for.

    ``lazy_commands`` maps a command name to its module in this package (the
    package's ``__init__`` fills it); the module's ``COMMANDS`` are added then.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy_commands.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            for command in importlib.import_module(f"{__package__}.{module}").COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON, for scripts")


@click.group(cls=LazyGroup, context_settings=CONTEXT, invoke_without_command=True)
@click.option(
    "--address",
    envvar="CONTAINERD_ADDRESS",
    default=None,
    metavar="SOCKET",
    help="containerd's socket [$CONTAINERD_ADDRESS]; default: the embedded daemon,"
    " started when nothing answers (read-only commands never start it)",
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
    # As every Go program does at start-up (ctr too): soft open-file limit up to the hard one.
    raise_open_file_limit()
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
        text = one_line(record.getMessage())
        debugging = logging.getLogger("libcontainerd").getEffectiveLevel() <= logging.DEBUG
        if record.exc_info and debugging:
            text += "\n" + self.formatException(record.exc_info)
        return f"lcd: {record.levelname.lower()}: {text}"


# --- connecting -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def connect(
    settings: Settings, out: Output, *, start_daemon: bool = True
) -> AsyncIterator[AsyncClient]:
    """An open client: on ``--address``, else on the embedded daemon, started if needed.

    Read-only commands pass ``start_daemon=False``: with nothing answering
    they fail, saying how to start one, rather than start a daemon (on a
    mistyped ``--state-dir``, a second containerd on the same data). In the
    command helper's warm worker their client stays open for the next one.
    """
    if warm is not None and not start_daemon:
        yield await warm.client(settings, lambda: _open(settings, out, start_daemon=False))
        return
    client = await _open(settings, out, start_daemon=start_daemon)
    try:
        yield client
    finally:
        await client.close()


def run_async(work: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(work)``; in the command helper's warm worker, on its lasting loop."""
    if warm is None:
        return asyncio.run(work)
    return warm.run(work)


class WarmClients(Protocol):
    """What the command helper's warm worker (:mod:`._helper_worker`) lends commands."""

    def run(self, work: Coroutine[Any, Any, _T]) -> _T: ...

    async def client(
        self, settings: Settings, open_client: Callable[[], Awaitable[AsyncClient]]
    ) -> AsyncClient: ...


# Set in the warm worker only: read-only commands' loop and clients outlive one command.
warm: WarmClients | None = None


async def _open(settings: Settings, out: Output, *, start_daemon: bool) -> AsyncClient:
    from ..client import AsyncClient

    if settings.address is not None:
        return await AsyncClient(settings.address, settings.namespace).open()
    daemon = settings.daemon()
    client = AsyncClient(daemon.address, settings.namespace)
    # Without a socket file there is nothing to try: a failed connection would
    # only put gRPC's shared subchannel for this path into reconnect back-off.
    answering = daemon.has_socket() and await _opened(client)
    if not answering and not start_daemon:
        raise Unavailable(
            f"no containerd answers at {daemon.address} (state directory {daemon.state_dir},"
            f" from --state-dir or ${STATE_DIR_ENV}); start one with 'lcd daemon start',"
            " or point --address at a running containerd"
        )
    if not answering:
        with out.progress("starting the embedded containerd"):
            pid, started = await daemon.start()
        if started:
            out.note(
                f"nothing answered at {daemon.address}: started the embedded containerd"
                f" (supervisor pid {pid}); 'lcd daemon stop' stops it"
            )
        await _open_soon(client)
    return client


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
