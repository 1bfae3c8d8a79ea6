"""``lcd pull``, ``lcd push``, ``lcd login`` and ``lcd logout``: images to and from registries.

References are Docker's (``busybox``, ``host:5000/a/b:tag``). Registry
settings (plain HTTP, CAs, mirrors) come from containerd's ``certs.d``
layout (``--hosts-dir``, default ``/etc/containerd/certs.d``); credentials
from ``--user``/``--password-stdin``, else from Docker's ``config.json``,
which ``lcd login`` writes. Pulls and pushes show a live bar per blob
(phase, bytes, speed) on a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import click

from .. import images
from ..images import Progress, ProgressCallback
from ._app import CONTEXT, Settings, connect, pass_settings
from ._failures import Failure
from ._output import Output

__all__ = ["COMMANDS"]

_hosts_dir = click.option(
    "--hosts-dir",
    metavar="DIR",
    help="containerd's certs.d folder: <host>/hosts.toml (default /etc/containerd/certs.d)",
)


@contextlib.contextmanager
def _transfer_bars(out: Output) -> Iterator[ProgressCallback | None]:
    """A bar per blob: phase, bytes done of total, speed (a terminal only)."""
    if not out.stderr.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn
    from rich.progress import Progress as Bars

    bars = Bars(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=out.stderr,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def show(step: Progress) -> None:
        task = tasks.get(step.item)
        label = step.item.removeprefix("sha256:")[:12]
        if task is None:
            task = tasks[step.item] = bars.add_task("", total=step.total)
        bars.update(
            task, description=f"{step.phase:8} {label}", completed=step.done, total=step.total
        )

    with bars:
        yield show


def _credentials(user: str | None, password_stdin: bool) -> tuple[str, str] | None:
    """``--user NAME[:PASSWORD]``, the password from stdin or a prompt when not given."""
    if user is None:
        if password_stdin:
            raise click.UsageError("--password-stdin needs --user")
        return None
    name, colon, password = user.partition(":")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not colon:
        password = click.prompt("Password", hide_input=True, err=True)
    return name, password


_user = click.option("--user", "-u", metavar="NAME[:PASSWORD]", help="registry credentials")
_password_stdin = click.option(
    "--password-stdin", is_flag=True, help="read the password from stdin"
)


@click.command(context_settings=CONTEXT)
@click.option("--platform", metavar="OS/ARCH", help="the platform to pull (default: this one)")
@click.option("--no-unpack", is_flag=True, help="leave the layers packed until a container runs")
@click.option(
    "--transfer/--no-transfer",
    default=None,
    help="containerd pulls (its Transfer service, 2.x) / this program pulls"
    " (default: containerd when that helps)",
)
@_user
@_password_stdin
@_hosts_dir
@click.argument("reference", metavar="NAME[:TAG|@DIGEST]")
@pass_settings
def pull(
    settings: Settings,
    reference: str,
    platform: str | None,
    no_unpack: bool,
    transfer: bool | None,
    user: str | None,
    password_stdin: bool,
    hosts_dir: str | None,
) -> None:
    """Pull an image from its registry."""
    auth = _credentials(user, password_stdin)
    out = Output()

    async def work() -> Any:
        async with connect(settings, out) as client:
            with _transfer_bars(out) as progress:
                return await client.images.pull(
                    reference,
                    platform=platform,
                    auth=auth,
                    hosts_dir=hosts_dir,
                    progress=progress,
                    unpack=not no_unpack,
                    transfer=transfer,
                )

    image = asyncio.run(work())
    click.echo(f"Digest: {image.digest}")
    click.echo(image.name)


@click.command(context_settings=CONTEXT)
@click.option("--platform", metavar="OS/ARCH", help="the platform to push (default: this one)")
@_user
@_password_stdin
@_hosts_dir
@click.argument("name", metavar="IMAGE")
@click.argument("reference", required=False, metavar="[TARGET]")
@pass_settings
def push(
    settings: Settings,
    name: str,
    reference: str | None,
    platform: str | None,
    user: str | None,
    password_stdin: bool,
    hosts_dir: str | None,
) -> None:
    """Push an image to a registry (to its own name, or to TARGET)."""
    auth = _credentials(user, password_stdin)
    out = Output()

    async def work() -> str:
        async with connect(settings, out, start_daemon=False) as client:
            with _transfer_bars(out) as progress:
                return await client.images.push(
                    name,
                    reference,
                    auth=auth,
                    hosts_dir=hosts_dir,
                    progress=progress,
                    platform=platform,
                )

    click.echo(f"Digest: {asyncio.run(work())}")


@click.command(context_settings=CONTEXT)
@_user
@click.option("--password", "-p", metavar="PASSWORD", help="the password (prefer --password-stdin)")
@_password_stdin
@_hosts_dir
@click.argument("server", required=False, default="docker.io", metavar="[SERVER]")
def login(
    server: str,
    user: str | None,
    password: str | None,
    password_stdin: bool,
    hosts_dir: str | None,
) -> None:
    """Log in to a registry: check the credentials, keep them in Docker's config.json."""
    if user is None:
        user = click.prompt("Username", err=True)
    if password is not None:
        if password_stdin:
            raise click.UsageError("--password and --password-stdin are exclusive")
        user = f"{user.partition(':')[0]}:{password}"
    auth = _credentials(user, password_stdin)
    if auth is None:  # pragma: no cover - user is set above
        raise Failure("lcd login: no user name")
    path = asyncio.run(images.login(server, auth, hosts_dir=hosts_dir))
    click.echo(f"Login Succeeded (credentials kept in {path})")


@click.command(context_settings=CONTEXT)
@click.argument("server", required=False, default="docker.io", metavar="[SERVER]")
def logout(server: str) -> None:
    """Forget the credentials Docker's config.json keeps for a registry."""
    if images.logout(server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")


COMMANDS: tuple[click.Command, ...] = (pull, push, login, logout)
