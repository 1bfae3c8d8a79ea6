"""The ``lcd`` command (needs the ``cli`` extra: click and rich)."""

from __future__ import annotations

import asyncio
import sys

try:
    import click
    from rich.console import Console
except ImportError:  # pragma: no cover - only without the extra
    sys.stderr.write("lcd needs the cli extra: pip install 'libcontainerd[cli]'\n")
    raise SystemExit(2) from None

from .client import AsyncClient
from .errors import LibcontainerdError


@click.group()
def main() -> None:
    """Run and supervise containers on containerd."""


@main.command()
def demo() -> None:
    """Run one real container through the whole contract on an embedded containerd."""
    from ._demo import run_demo

    console = Console(highlight=False)
    try:
        status = asyncio.run(run_demo(console))
    except LibcontainerdError as error:
        console.print(f"[red]error:[/red] {error}")
        status = 1
    raise SystemExit(status)


@main.command()
@click.option("--address", envvar="CONTAINERD_ADDRESS", default=None, help="containerd socket")
def version(address: str | None) -> None:
    """Print containerd's version."""

    async def ask() -> str:
        async with AsyncClient(address) as client:
            reply = await client.version()
            return f"{reply.version} ({reply.revision})"

    try:
        click.echo(asyncio.run(ask()))
    except LibcontainerdError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None
