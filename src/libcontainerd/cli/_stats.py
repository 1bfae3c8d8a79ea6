"""``lcd stats``: containers' resource use, live (a table redrawn in place) or one sample.

The sampling, and CPU % between samples, is :class:`StatsSampler`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import click
from rich.live import Live

from .._identifiers import check_identifier
from ._app import CONTEXT, Settings, connect, json_option, pass_settings
from ._output import Output
from ._stats_sampler import StatsSampler

__all__ = ["COMMANDS"]

# --no-stream: the time between its two samples, so that CPU % has something to compare.
_NO_STREAM_GAP = 0.5


@click.command(context_settings=CONTEXT)
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
    async with connect(settings, out, start_daemon=False) as client:
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


COMMANDS: tuple[click.Command, ...] = (stats,)
