"""``lcd start``, ``kill``, ``stop``, ``pause``, ``resume`` (``unpause``), ``update``, ``rm``,
``rename`` (refused: a name is a containerd id).

Each takes one or more IDs, prints each id it acted on or one line for each
failure, and exits with 1 if one failed (``lcd start -a`` excepted: it stands
for its one container's process, as ``lcd run`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import click

from .. import oci
from .._identifiers import check_identifier
from .._signals import parse_signal
from ..client import AsyncClient
from ..errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
)
from ..errors import NotImplemented as Unimplemented
from ..types import INIT_PROCESS_ID
from ._app import CONTEXT, Settings, connect, pass_settings
from ._container_options import ContainerRequest, check_against_host, size_value
from ._containers import (
    delete_and_record_exit,
    has_terminal,
    in_foreground,
    make_way_for_a_task,
    recorded_exit,
    remove_container,
    task_state,
)
from ._failures import Failure, fail_line, one_line, process_exit_statuses, start_failure_status
from ._output import Output
from ._signal_forwarder import SignalForwarder
from ._stdio import check_input_terminal, logged_stdio, stdio_for

__all__ = ["COMMANDS"]

ids_argument = click.argument("container_ids", metavar="ID...", nargs=-1, required=True)


def _each(
    settings: Settings,
    ids: Iterable[str],
    action: Callable[[AsyncClient, str], Any],
    *,
    echo_ids: bool = True,
) -> None:
    """Apply ``action`` to each id, printing the id (or what the action prints) or the error;
    exit 1 if one failed."""

    async def work() -> bool:
        ok = True
        async with connect(settings, Output()) as client:
            for container_id in ids:
                try:
                    check_identifier(container_id)
                    await action(client, container_id)
                except LibcontainerdError as error:
                    ok = False
                    fail_line(f"lcd: {one_line(str(error))}")
                else:
                    if echo_ids:
                        click.echo(container_id)
        return ok

    if not asyncio.run(work()):
        raise SystemExit(1)


def _signal_value(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A signal by name (TERM, SIGTERM) or number."""
    try:
        return parse_signal(value)
    except InvalidArgument as error:
        raise click.BadParameter(str(error), ctx, param) from None


def _optional_signal(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    return None if value is None else _signal_value(ctx, param, value)


@click.command(context_settings=CONTEXT)
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
        with process_exit_statuses():
            check_identifier(container_ids[0])
            status = asyncio.run(_start_attached(settings, container_ids[0], interactive))
        raise SystemExit(status)

    async def action(client: AsyncClient, container_id: str) -> None:
        await make_way_for_a_task(client, container_id)
        if has_terminal(await client.spec(container_id)):
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
        await make_way_for_a_task(client, container_id)
        tty = has_terminal(await client.spec(container_id))
        check_input_terminal(interactive, tty)
        stdio = stdio_for(client, interactive, tty, settings.log_path(container_id))
        with SignalForwarder(client, out) as forwarder:
            try:
                await client.start(
                    container_id, with_stdin=stdio.with_stdin, attach_stdio=stdio.attach
                )
            except LibcontainerdError as error:
                raise Failure(str(error), start_failure_status(str(error))) from None
            exit_code = await in_foreground(client, forwarder, stdio, container_id)
        await delete_and_record_exit(client, container_id)
        return exit_code


@click.command(context_settings=CONTEXT)
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
            if await task_state(client, container_id) is None:
                raise NotFound(
                    f"container {container_id!r} is not running (it has no task)"
                ) from None
            raise

    _each(settings, container_ids, action)


@click.command(context_settings=CONTEXT)
@click.option(
    "--time",
    "-t",
    "grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="seconds to wait after TERM before KILL",
)
@click.option(
    "--signal",
    "-s",
    "signum",
    callback=_optional_signal,
    metavar="SIGNAL",
    help="the signal to send first (default: the container's stop signal, else TERM)",
)
@ids_argument
@pass_settings
def stop(
    settings: Settings, grace: float, signum: int | None, container_ids: tuple[str, ...]
) -> None:
    """Stop containers: their stop signal, then KILL after --time seconds; their tasks are
    deleted, and their exit kept ('lcd ps -a')."""

    async def action(client: AsyncClient, container_id: str) -> None:
        if await task_state(client, container_id) is None:
            return
        with contextlib.suppress(NotFound):
            await client.stop(container_id, timeout=grace, signal=signum)
        await delete_and_record_exit(client, container_id)

    _each(settings, container_ids, action)


@click.command(context_settings=CONTEXT)
@ids_argument
@pass_settings
def wait(settings: Settings, container_ids: tuple[str, ...]) -> None:
    """Wait for containers to stop; print each one's exit code, as docker wait does.

    A container that has already stopped prints its exit at once (its task's,
    or the one lcd recorded when it deleted the task); one that was never
    started is refused.
    """

    async def action(client: AsyncClient, container_id: str) -> None:
        state = await task_state(client, container_id)
        if state is None:
            listing = await client.list_containers()
            labels = next((info.labels for info in listing if info.id == container_id), {})
            recorded = recorded_exit(labels)
            if recorded is None:
                raise FailedPrecondition(f"container {container_id!r} has not been started")
            click.echo(recorded[0])
            return
        exit_code, _ = await client.wait(container_id)
        click.echo(exit_code)

    _each(settings, container_ids, action, echo_ids=False)


@click.command(context_settings=CONTEXT)
@ids_argument
@pass_settings
def pause(settings: Settings, container_ids: tuple[str, ...]) -> None:
    """Freeze every process of containers."""
    _each(settings, container_ids, lambda client, cid: client.pause(cid))


@click.command(context_settings=CONTEXT)
@ids_argument
@pass_settings
def resume(settings: Settings, container_ids: tuple[str, ...]) -> None:
    """Thaw paused containers (also 'lcd unpause', as Docker names it)."""
    _each(settings, container_ids, lambda client, cid: client.resume(cid))


unpause = click.Command(
    "unpause",
    context_settings=CONTEXT,
    callback=resume.callback,
    params=resume.params,
    help="Thaw paused containers (the same as 'lcd resume').",
)


@click.command(context_settings=CONTEXT)
@click.option(
    "--memory", "-m", callback=size_value, metavar="SIZE", help="memory limit, e.g. 64m or 1g"
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
    check_against_host(cpus, memory)
    request = ContainerRequest(args=(), memory=memory, cpus=cpus, pids_limit=pids_limit)
    options = request.resource_options()
    if not options:
        raise click.UsageError("give at least one of --memory, --cpus, --pids-limit")
    resources = oci.apply({}, *options).get("linux", {}).get("resources", {})
    _each(settings, container_ids, lambda client, cid: client.update_resources(cid, resources))


@click.command(context_settings=CONTEXT)
@click.option("--force", "-f", is_flag=True, help="kill running containers first")
@ids_argument
@pass_settings
def rm(settings: Settings, force: bool, container_ids: tuple[str, ...]) -> None:
    """Remove containers, their tasks, and the root filesystems and logs lcd made for them."""

    async def action(client: AsyncClient, container_id: str) -> None:
        await remove_container(client, settings, container_id, force=force)

    _each(settings, container_ids, action)


@click.command(context_settings=CONTEXT)
@click.argument("old", metavar="CONTAINER")
@click.argument("new", metavar="NEW_NAME")
@pass_settings
def rename(settings: Settings, old: str, new: str) -> None:
    """Refused, saying why: a container's name is its containerd id, which cannot change.

    containerd has no rename, and lcd keeps no name beside the id (--name
    sets the id). After checking both names (no such CONTAINER, NEW_NAME
    taken or malformed), it fails with NotImplemented; to get NEW_NAME,
    create the container again with --name NEW_NAME.
    """
    check_identifier(old)
    check_identifier(new)

    async def work() -> None:
        async with connect(settings, Output(), start_daemon=False) as client:
            await task_state(client, old)  # NotFound: no such container
            if new != old:
                with contextlib.suppress(NotFound):
                    await task_state(client, new)
                    raise AlreadyExists(f"the name {new!r} is already in use by a container")
        raise Unimplemented(
            f"cannot rename container {old!r}: lcd's container names are containerd"
            " container ids, which cannot change; create it again with"
            f" --name {new} (then 'lcd rm {old}')"
        )

    asyncio.run(work())


COMMANDS: tuple[click.Command, ...] = (
    start,
    kill,
    stop,
    wait,
    pause,
    resume,
    unpause,
    update,
    rm,
    rename,
)
