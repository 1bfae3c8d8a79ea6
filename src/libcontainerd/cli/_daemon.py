"""``lcd daemon start|stop|status|run``: the embedded containerd (see :mod:`._embedded`)."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import click

from ..client import AsyncClient
from ..errors import LibcontainerdError
from ..types import Status
from ._app import CONTEXT, Settings, json_option, pass_settings
from ._embedded import EmbeddedDaemon
from ._failures import one_line
from ._output import Output, duration, since

__all__ = ["COMMANDS"]


@click.group(context_settings=CONTEXT)
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
        "uptime_seconds": since(state.supervisor_started_at),
        "containerd_uptime_seconds": since(state.containerd_started_at),
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
        return {"error": one_line(str(error))}
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
            f" {duration(report['uptime_seconds'])}, log {embedded.log_path}"
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
        f" {duration(report['containerd_uptime_seconds'])}, log {embedded.containerd_log_path}"
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


COMMANDS: tuple[click.Command, ...] = (daemon,)
