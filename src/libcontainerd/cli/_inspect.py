"""``lcd ps``, ``inspect``, ``top``, ``events``, ``version`` and ``logs``: looking without
changing.

Each prints a table or lines for people, or with --json (``logs`` excepted)
JSON for scripts. containerd does not report processes' details or uptimes:
they come from /proc (:mod:`libcontainerd._procfs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shlex
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import click

from .._identifiers import check_identifier
from .._log_records import STDERR, STDOUT, parse_moment, records
from .._procfs import process_info
from ..client import AsyncClient
from ..errors import NotFound
from ..networks import Port
from ..networks._containers import NETWORK_LABEL
from ..types import ContainerInfo, EventInfo, EventType, Status
from ._app import CONTEXT, Settings, connect, json_option, pass_settings, run_async
from ._container_options import INIT_PATH
from ._containers import ALIVE, recorded_exit, task_state
from ._failures import Failure, fail_line
from ._output import Output, ago, duration, iso, since
from ._output_file import OutputFile

__all__ = ["COMMANDS"]

# lcd logs -f: how often it looks for new output.
_FOLLOW_POLL = 0.2


# --- lcd ps ---------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.option("--all", "-a", "show_all", is_flag=True, help="also containers that are not running")
@click.option("--quiet", "-q", is_flag=True, help="only the ids")
@json_option
@pass_settings
def ps(settings: Settings, show_all: bool, quiet: bool, as_json: bool) -> None:
    """List running containers (-a: all) with command, status, pid, uptime and published ports.

    A container whose task lcd deleted after its exit (run in the foreground,
    start -a, stop) shows that exit, as one whose task stayed does.
    """

    async def work() -> tuple[list[ContainerInfo], dict[str, tuple[Port, ...]]]:
        async with connect(settings, Output(), start_daemon=False) as client:
            containers = await client.list_containers()
            return containers, await _published_ports(client, containers)

    listing, ports = run_async(work())
    if not show_all:
        listing = [info for info in listing if info.status in ALIVE]
    listing = [_with_recorded_exit(info) for info in listing]
    listing.sort(key=lambda info: info.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    out = Output()
    if as_json:
        out.json([_container_record(info, ports.get(info.id, ())) for info in listing])
    elif quiet:
        for info in listing:
            click.echo(info.id)
    else:
        out.table(
            ("ID", "COMMAND", "STATUS", "PID", "CREATED", "UPTIME", "PORTS"),
            (
                (
                    info.id,
                    _command_text(info.command),
                    _status_text(info),
                    str(info.pid) if info.pid and info.status in ALIVE else "-",
                    ago(info.created_at),
                    duration(_uptime(info)),
                    ", ".join(str(port) for port in ports.get(info.id, ())),
                )
                for info in listing
            ),
        )


async def _published_ports(
    client: AsyncClient, listing: list[ContainerInfo]
) -> dict[str, tuple[Port, ...]]:
    """Each networked container's published ports (read from the host: no call to containerd)."""
    found = {}
    for info in listing:
        if NETWORK_LABEL in info.labels:
            with contextlib.suppress(NotFound):  # removed meanwhile
                network = await client.network_info(info.id)
                if network is not None and network.ports:
                    found[info.id] = network.ports
    return found


def _with_recorded_exit(info: ContainerInfo) -> ContainerInfo:
    """Without a task, the exit lcd recorded when it deleted the task, as a stopped task's."""
    recorded = recorded_exit(info.labels) if info.status is None else None
    if recorded is None:
        return info
    code, exited_at = recorded
    return dataclasses.replace(info, status=Status.STOPPED, exit_code=code, exited_at=exited_at)


# As docker ps, a long command is cut (quoted, so what is shown reads as a command).
_COMMAND_WIDTH = 30


def _command_text(command: tuple[str, ...]) -> str:
    if command[:2] == (INIT_PATH, "--"):  # --init's, which docker ps does not show either
        command = command[2:]
    text = shlex.join(command) if command else "-"
    return text if len(text) <= _COMMAND_WIDTH else text[: _COMMAND_WIDTH - 1] + "…"


def _uptime(info: ContainerInfo) -> float | None:
    if info.pid is None or info.status not in (Status.RUNNING, Status.PAUSED, Status.PAUSING):
        return None
    process = process_info(info.pid)
    return since(process.started_at) if process is not None else None


def _status_text(info: ContainerInfo) -> str:
    if info.status is None:
        return "no task"
    if info.status is Status.STOPPED:
        return f"exited ({info.exit_code})"
    return str(info.status)


def _container_record(info: ContainerInfo, ports: tuple[Port, ...] = ()) -> dict[str, Any]:
    return {
        "id": info.id,
        "status": str(info.status) if info.status is not None else None,
        "pid": info.pid,
        "exit_code": info.exit_code,
        "exited_at": iso(info.exited_at),
        "created_at": iso(info.created_at),
        "uptime_seconds": _uptime(info),
        "labels": info.labels,
        "command": list(info.command),
        "image": info.image or None,
        "ports": [dataclasses.asdict(port) for port in ports],
    }


# --- lcd inspect ----------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.argument("container_ids", metavar="ID...", nargs=-1, required=True)
@pass_settings
def inspect(settings: Settings, container_ids: tuple[str, ...]) -> None:
    """Print containers as a JSON array: record, labels, task state, spec, image, network.

    As docker inspect: the ones found are printed, each one missing is a line
    on stderr, and the status is 1 if one was.
    """
    for container_id in container_ids:
        check_identifier(container_id)

    async def work() -> tuple[list[dict[str, Any]], list[str]]:
        async with connect(settings, Output(), start_daemon=False) as client:
            listing = {info.id: info for info in await client.list_containers()}
            found, missing = [], []
            for container_id in container_ids:
                info = listing.get(container_id)
                if info is None:
                    missing.append(container_id)
                    continue
                try:
                    found.append(await _inspection(client, settings, info))
                except NotFound:  # removed meanwhile
                    missing.append(container_id)
            return found, missing

    found, missing = run_async(work())
    Output().json(found)
    for container_id in missing:
        fail_line(f"lcd: no such container: {container_id!r}")
    if missing:
        raise SystemExit(1)


async def _inspection(
    client: AsyncClient, settings: Settings, info: ContainerInfo
) -> dict[str, Any]:
    """One container as ``lcd inspect`` shows it.

    ``image`` and ``network`` are what the library records (None for a
    container on a root directory, or without a network of its own).
    """
    spec = await client.spec(info.id)
    network = await client.network_info(info.id)
    shown = _with_recorded_exit(info)
    root = spec.get("root", {}).get("path") if isinstance(spec.get("root"), dict) else None
    log_path = settings.log_path(info.id)
    return {
        "id": info.id,
        "created_at": iso(info.created_at),
        "command": list(info.command),
        "labels": info.labels,
        "image": info.image or None,
        "state": {
            "status": str(shown.status) if shown.status is not None else None,
            "pid": info.pid if info.status in ALIVE else None,
            "exit_code": shown.exit_code,
            "exited_at": iso(shown.exited_at),
            # The task is gone; its exit is the one lcd recorded when it deleted it.
            "recorded": info.status is None and shown.status is not None,
        },
        "task": None
        if info.status is None
        else {
            "status": str(info.status),
            "pid": info.pid,
            "exit_code": info.exit_code,
            "exited_at": iso(info.exited_at),
        },
        "root": root,
        "log_path": str(log_path) if log_path.exists() else None,
        "network": dataclasses.asdict(network) if network is not None else None,
        "spec": spec,
    }


# --- lcd top --------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@json_option
@click.argument("container_id", metavar="ID")
@pass_settings
def top(settings: Settings, container_id: str, as_json: bool) -> None:
    """List a container's processes (from containerd, details from /proc)."""

    async def work() -> list[tuple[int, str | None]]:
        async with connect(settings, Output(), start_daemon=False) as client:
            summaries = await client.summary(container_id)
        return [(summary.pid, summary.info.get("exec_id")) for summary in summaries]

    check_identifier(container_id)
    processes: list[dict[str, Any]] = []
    for pid, exec_id in run_async(work()):
        info = process_info(pid)
        processes.append(
            {
                "pid": pid,
                "exec_id": exec_id,
                "ppid": info.ppid if info else None,
                "uid": info.uid if info else None,
                "state": info.state if info else None,
                "started_at": iso(info.started_at) if info else None,
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


def _clock(iso_moment: str | None) -> str:
    if iso_moment is None:
        return "-"
    return datetime.fromisoformat(iso_moment).astimezone().strftime("%H:%M:%S")


def _cpu_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


# --- lcd events -----------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
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
        async with connect(settings, out, start_daemon=False) as client:
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
            "time": iso(now),
            "type": str(event),
            "container_id": container_id,
            "process_id": info.process_id,
            "pid": info.pid,
            "exit_code": info.exit_code if event is EventType.EXIT else None,
            "exited_at": iso(info.exited_at),
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


# --- lcd version ----------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@json_option
@pass_settings
def version(settings: Settings, as_json: bool) -> None:
    """Print lcd's and containerd's versions."""

    async def work() -> tuple[str, str, str]:
        async with connect(settings, Output(), start_daemon=False) as client:
            reply = await client.version()
            return reply.version, reply.revision, client.address

    containerd, revision, address = run_async(work())
    from importlib import metadata  # here: it costs ps and logs ~15 ms to import

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


# --- lcd logs -------------------------------------------------------------------------


def _tail_value(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    if value == "all":
        return None
    if not value.isdigit():
        raise click.BadParameter(f"{value!r} is not a number of lines or 'all'", ctx, param)
    return int(value)


def _since_value(ctx: click.Context, param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return parse_moment(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None


class _LogView:
    """Prints a log's records: each stream to lcd's own, from ``since`` on, with ``-t``'s times.

    A line that is not a record (a log an older lcd wrote) has no time: --since
    keeps it, -t prints it as it is.
    """

    def __init__(self, since: bytes | None, timestamps: bool) -> None:
        self._since = since
        self._timestamps = timestamps
        self._outputs = {STDOUT: OutputFile(1), STDERR: OutputFile(2)}
        # Whether each stream's next text starts a line (-t marks only those).
        self._line_start = {STDOUT: True, STDERR: True}

    def show(self, data: bytes) -> None:
        """Print the records of ``data``, whole lines of the log, a stream's run in one write."""
        stream, pieces = STDOUT, list[bytes]()
        for record in records(data):
            moment = record.moment
            if self._since is not None and moment is not None and moment < self._since:
                continue
            if record.stream != stream and pieces:
                self._outputs[stream].write(b"".join(pieces))
                pieces = []
            stream = record.stream
            if self._timestamps and record.moment is not None and self._line_start[stream]:
                pieces.append(record.moment + b" ")
            pieces.append(record.text + b"\n" if record.full else record.text)
            self._line_start[stream] = record.full
        if pieces:
            self._outputs[stream].write(b"".join(pieces))


@click.command(context_settings=CONTEXT)
@click.option(
    "--follow", "-f", is_flag=True, help="go on printing new output until the container stops"
)
@click.option(
    "--tail",
    "-n",
    "lines",
    default="all",
    show_default=True,
    callback=_tail_value,
    metavar="N",
    help="only the last N lines (then, with -f, what follows)",
)
@click.option(
    "--since",
    metavar="TIME",
    callback=_since_value,
    help="only what was written since TIME: RFC 3339, Unix seconds, or a duration (10m, 1h30m)",
)
@click.option("--timestamps", "-t", is_flag=True, help="start each line with when it was written")
@click.argument("container_id", metavar="ID")
@pass_settings
def logs(
    settings: Settings,
    container_id: str,
    follow: bool,
    lines: int | None,
    since: bytes | None,
    timestamps: bool,
) -> None:
    """Print the output of a container lcd kept (run -d, run in the foreground without
    --rm and without -i/-t, start, restore): its stdout to stdout, its stderr to stderr.

    Each line is kept with the moment lcd (or the log writer the shim runs
    beside a container left running) read it: -t prints it first on the line
    (RFC 3339, nanoseconds, UTC), --since skips what came before. -f goes on
    until the container stops, or Ctrl-C.
    """
    check_identifier(container_id)
    path = settings.log_path(container_id)

    async def work() -> None:
        async with connect(settings, Output(), start_daemon=False) as client:
            state = await task_state(client, container_id)
            if not path.exists():
                raise Failure(
                    f"container {container_id!r} has no log: lcd keeps the output of"
                    " containers it leaves running (lcd run -d, lcd start, lcd restore)"
                    " and of those run in the foreground without -i, -t or --rm"
                )
            shown = _LogView(since, timestamps)
            await _print_log(client, container_id, path, follow and state in ALIVE, lines, shown)

    asyncio.run(work())


def tail_offset(log: BinaryIO, lines: int, block: int = 64 * 1024) -> int:
    """Where the last ``lines`` lines of ``log`` start (a last line without its newline counts)."""
    end = log.seek(0, os.SEEK_END)
    if lines == 0:
        return end
    position = end
    newlines = 0
    # A final newline ends the last line; it does not start another.
    log.seek(max(end - 1, 0))
    skip_last = end > 0 and log.read(1) == b"\n"
    while position > 0:
        start = max(position - block, 0)
        log.seek(start)
        chunk = log.read(position - start)
        if skip_last and position == end:
            chunk = chunk[:-1]
        index = len(chunk)
        while (index := chunk.rfind(b"\n", 0, index)) != -1:
            newlines += 1
            if newlines == lines:
                return start + index + 1
        position = start
    return 0


async def _print_log(
    client: AsyncClient,
    container_id: str,
    path: Path,
    follow: bool,
    lines: int | None,
    shown: _LogView,
) -> None:
    stop = asyncio.Event()
    if follow:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    pending = b""
    with open(path, "rb") as log:  # noqa: ASYNC230 - a local file, read in small steps
        log.seek(tail_offset(log, lines) if lines is not None else 0)
        while True:
            chunk = log.read(64 * 1024)
            if chunk:
                # Whole records only: a writer may be between two writes of one line.
                pending += chunk
                end = pending.rfind(b"\n") + 1
                shown.show(pending[:end])
                pending = pending[end:]
                continue
            if not follow or stop.is_set():
                if pending:  # a last line without its newline (a log an older lcd wrote)
                    shown.show(pending + b"\n")
                return
            # The shim may still be writing what the container wrote last: one more pass.
            follow = await task_state(client, container_id) in ALIVE
            if follow:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _FOLLOW_POLL)


COMMANDS: tuple[click.Command, ...] = (ps, inspect, top, events, version, logs)
