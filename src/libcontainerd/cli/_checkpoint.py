"""``lcd checkpoint`` and ``lcd restore``: a running container saved to a folder with CRIU,
and started again from it, its processes going on where they were.
"""

from __future__ import annotations

import asyncio
import os

import click

from .._identifiers import check_identifier
from ._app import CONTEXT, Settings, connect, pass_settings
from ._containers import REAP_TIMEOUT, make_way_for_a_task
from ._output import Output
from ._stdio import logged_output

__all__ = ["COMMANDS"]


@click.command(context_settings=CONTEXT)
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
                    async with asyncio.timeout(REAP_TIMEOUT):
                        await client.wait(container_id)

    asyncio.run(work())
    click.echo(container_id)


@click.command(context_settings=CONTEXT)
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
            await make_way_for_a_task(client, container_id)
            with out.progress(f"restoring {container_id}"):
                await client.start(
                    container_id,
                    checkpoint_dir=source,
                    attach_stdio=logged_output(settings, container_id),
                )

    asyncio.run(work())
    click.echo(container_id)


COMMANDS: tuple[click.Command, ...] = (checkpoint, restore)
