"""A task's metrics, decoded by type URL into :class:`~libcontainerd.types.Stats`.

The runc shim reports the container's cgroup statistics as an ``Any``: a
``io.containerd.cgroups.v1.Metrics`` on a cgroup v1 (or hybrid) host, a
``io.containerd.cgroups.v2.Metrics`` on a unified one. Both are decoded in
full (``Stats.metrics``), and reduced to one common view that means the same
on either, following what ``docker stats`` shows:

- ``cpu_usage_ns``: v1 ``cpu.usage.total`` (cpuacct.usage); v2 ``cpu.usage_usec`` x 1000.
- ``memory_usage_bytes``: v1 ``memory.usage.usage`` (memory.usage_in_bytes) minus
  ``memory.total_inactive_file``; v2 ``memory.usage`` (memory.current) minus
  ``memory.inactive_file``; the usage alone if the subtraction would not leave
  anything.
- ``memory_limit_bytes``: v1 ``memory.usage.limit``, None when unlimited (the
  kernel's "no limit" is the largest page-aligned 63-bit number,
  9223372036854771712 with 4 KiB pages); v2 ``memory.usage_limit``
  (memory.max), None for "max".
- ``pids_current``: ``pids.current`` on both.
- ``pids_limit``: ``pids.limit``, None for "max" (v1 sends it as 0, v2 as 2**64 - 1).
- ``oom_kills``: v1 ``memory_oom_control.oom_kill`` (memory.oom_control); v2
  ``memory_events.oom_kill`` (memory.events): processes the OOM killer killed.
- ``blkio_read_bytes`` / ``blkio_write_bytes``: v1 the sum of the
  ``blkio.io_service_bytes_recursive`` entries with op "Read" / "Write"; v2 the
  sum of ``io.usage[].rbytes`` / ``wbytes``, over all devices.

Memory usage leaves out inactive page cache because the kernel reclaims it
before it would fail an allocation; this is what ``docker stats`` has shown
since Docker 20.10 (older versions subtracted all of ``cache``). The raw
numbers stay in ``Stats.metrics``. A counter the runtime did not report is
0; a limit it did not report is None.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from google.protobuf.message import DecodeError

from . import _typeurl, errors
from ._api.cgroups.stats.v1 import metrics_pb2 as cgroups_v1
from ._api.cgroups.v2.stats import metrics_pb2 as cgroups_v2
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.types import metrics_pb2
from .types import Stats

__all__ = [
    "CGROUPS_V1_METRICS",
    "CGROUPS_V2_METRICS",
    "decode",
    "from_v1",
    "from_v2",
    "oom_kills_in",
    "oom_kills_in_file",
]

CGROUPS_V1_METRICS: Final = cgroups_v1.Metrics.DESCRIPTOR.full_name
CGROUPS_V2_METRICS: Final = cgroups_v2.Metrics.DESCRIPTOR.full_name

# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes: 2**63 - 1
# rounded down to the page size (9223372036854771712 with 4 KiB pages). No
# real limit comes near 2**62 bytes, whatever the page size.
_V1_UNLIMITED_FROM: Final = 2**62
# cgroup v2's "max", as containerd's cgroups package reports it.
_V2_MAX: Final = 2**64 - 1

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def decode(metric: metrics_pb2.Metric) -> Stats:
    """The Stats in one ``Metric`` of a Tasks.Metrics reply.

    Raises NotImplemented for a metrics type this library does not know (the
    message names it), LibcontainerdError for a payload that does not decode.
    """
    read = _EPOCH + timedelta(
        seconds=metric.timestamp.seconds, microseconds=metric.timestamp.nanos // 1000
    )
    kind = _typeurl.type_name(metric.data)
    decoder = {CGROUPS_V1_METRICS: _decode_v1, CGROUPS_V2_METRICS: _decode_v2}.get(kind)
    if decoder is None:
        raise errors.NotImplemented(
            f"metrics of container {metric.id!r} are of type {kind or '(none)'!r}, which this"
            f" library cannot decode (it knows {CGROUPS_V1_METRICS} and {CGROUPS_V2_METRICS})"
        )
    try:
        return decoder(read, metric.data.value)
    except DecodeError as error:
        raise errors.LibcontainerdError(
            f"metrics of container {metric.id!r} do not decode as {kind}: {error}"
        ) from None


def _decode_v1(read: datetime, value: bytes) -> Stats:
    return from_v1(read, cgroups_v1.Metrics.FromString(value))


def _decode_v2(read: datetime, value: bytes) -> Stats:
    return from_v2(read, cgroups_v2.Metrics.FromString(value))


def from_v1(read: datetime, metrics: cgroups_v1.Metrics) -> Stats:
    """The common view of cgroup v1 metrics (see the module's table)."""
    memory = metrics.memory
    limit = memory.usage.limit
    blkio = metrics.blkio.io_service_bytes_recursive
    return Stats(
        read=read,
        metrics=metrics,
        cpu_usage_ns=metrics.cpu.usage.total,
        memory_usage_bytes=_without_inactive_file(memory.usage.usage, memory.total_inactive_file),
        memory_limit_bytes=None if limit == 0 or limit >= _V1_UNLIMITED_FROM else limit,
        pids_current=metrics.pids.current,
        pids_limit=metrics.pids.limit or None,
        blkio_read_bytes=sum(e.value for e in blkio if e.op.lower() == "read"),
        blkio_write_bytes=sum(e.value for e in blkio if e.op.lower() == "write"),
        oom_kills=metrics.memory_oom_control.oom_kill,
    )


def from_v2(read: datetime, metrics: cgroups_v2.Metrics) -> Stats:
    """The common view of cgroup v2 metrics (see the module's table)."""
    memory = metrics.memory
    return Stats(
        read=read,
        metrics=metrics,
        cpu_usage_ns=metrics.cpu.usage_usec * 1000,
        memory_usage_bytes=_without_inactive_file(memory.usage, memory.inactive_file),
        memory_limit_bytes=_v2_limit(memory.usage_limit),
        pids_current=metrics.pids.current,
        pids_limit=_v2_limit(metrics.pids.limit),
        blkio_read_bytes=sum(entry.rbytes for entry in metrics.io.usage),
        blkio_write_bytes=sum(entry.wbytes for entry in metrics.io.usage),
        oom_kills=metrics.memory_events.oom_kill,
    )


def oom_kills_in(reply: tasks_pb2.MetricsResponse, container_id: str) -> int | None:
    """The container's OOM kill count in a Tasks.Metrics reply; None when it is not there."""
    for metric in reply.metrics:
        if metric.id == container_id:
            try:
                return decode(metric).oom_kills
            except errors.LibcontainerdError:
                return None
    return None


def oom_kills_in_file(path: Path) -> int | None:
    """The ``oom_kill`` count in a cgroup's memory.oom_control (v1) or memory.events (v2).

    The same figure as Tasks.Metrics reports, read on this host without a
    call; None when the file is gone (the task was deleted) or has no such
    line (kernels before 4.13).
    """
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def _without_inactive_file(usage: int, inactive_file: int) -> int:
    # docker stats' rule: subtract only when it leaves something.
    return usage - inactive_file if inactive_file < usage else usage


def _v2_limit(value: int) -> int | None:
    # 0: the file was missing (not reported); 2**64 - 1: "max".
    return None if value in (0, _V2_MAX) else value
