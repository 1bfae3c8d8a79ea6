"""Decoding a task's metrics: cgroup v1 and v2 into the full message and the common view."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import any_pb2, timestamp_pb2

from libcontainerd import Stats, metrics
from libcontainerd._api.cgroups.stats.v1 import metrics_pb2 as v1
from libcontainerd._api.cgroups.v2.stats import metrics_pb2 as v2
from libcontainerd._api.containerd.api.types import metrics_pb2
from libcontainerd.errors import LibcontainerdError, NotImplemented

READ_AT = timestamp_pb2.Timestamp(seconds=1_780_000_000, nanos=123_456_789)
V1_UNLIMITED = 9223372036854771712  # what a 4 KiB-page kernel reports for "no limit"


def metric(payload: v1.Metrics | v2.Metrics, type_url: str | None = None) -> metrics_pb2.Metric:
    data = any_pb2.Any(
        type_url=type_url or payload.DESCRIPTOR.full_name, value=payload.SerializeToString()
    )
    return metrics_pb2.Metric(timestamp=READ_AT, id="web-1", data=data)


def v1_sample(*, limit: int = 256 << 20, pids_limit: int = 100) -> v1.Metrics:
    """Numbers of the shape a busy cgroup v1 container reports."""
    return v1.Metrics(
        pids=v1.PidsStat(current=7, limit=pids_limit),
        cpu=v1.CPUStat(
            usage=v1.CPUUsage(
                total=8_123_456_789, kernel=1_000_000_000, user=7_000_000_000, per_cpu=[5, 3]
            ),
            throttling=v1.Throttle(periods=10, throttled_periods=2, throttled_time=4_000_000),
        ),
        memory=v1.MemoryStat(
            cache=40 << 20,
            rss=20 << 20,
            total_cache=40 << 20,
            total_rss=20 << 20,
            total_inactive_file=30 << 20,
            total_active_file=10 << 20,
            usage=v1.MemoryEntry(limit=limit, usage=64 << 20, max=80 << 20, failcnt=0),
            swap=v1.MemoryEntry(limit=limit, usage=64 << 20),
        ),
        blkio=v1.BlkIOStat(
            io_service_bytes_recursive=[
                v1.BlkIOEntry(op="Read", major=8, minor=0, value=4096 * 3),
                v1.BlkIOEntry(op="Write", major=8, minor=0, value=4096 * 5),
                v1.BlkIOEntry(op="Sync", major=8, minor=0, value=4096 * 8),
                v1.BlkIOEntry(op="Total", major=8, minor=0, value=4096 * 8),
                v1.BlkIOEntry(op="Read", major=253, minor=1, value=1000),
                v1.BlkIOEntry(op="Write", major=253, minor=1, value=2000),
            ]
        ),
    )


def v2_sample(*, limit: int = 512 << 20, pids_limit: int = 64) -> v2.Metrics:
    return v2.Metrics(
        pids=v2.PidsStat(current=3, limit=pids_limit),
        cpu=v2.CPUStat(usage_usec=2_500_000, user_usec=2_000_000, system_usec=500_000),
        memory=v2.MemoryStat(
            anon=50 << 20,
            file=100 << 20,
            inactive_file=70 << 20,
            active_file=30 << 20,
            usage=160 << 20,
            usage_limit=limit,
            swap_usage=0,
            swap_limit=2**64 - 1,
        ),
        io=v2.IOStat(
            usage=[
                v2.IOEntry(major=8, minor=0, rbytes=1 << 20, wbytes=3 << 20, rios=10, wios=30),
                v2.IOEntry(major=259, minor=0, rbytes=4096, wbytes=8192, rios=1, wios=2),
            ]
        ),
        memory_events=v2.MemoryEvents(max=1, oom=0),
    )


def test_the_read_time_is_the_metrics_timestamp() -> None:
    stats = metrics.decode(metric(v1_sample()))
    assert stats.read == datetime(2026, 5, 28, 20, 26, 40, 123456, tzinfo=UTC)


def test_v1_metrics_give_the_common_view() -> None:
    stats = metrics.decode(metric(v1_sample()))
    assert isinstance(stats, Stats)
    assert stats.cgroup_version == 1
    assert stats.cpu_usage_ns == 8_123_456_789
    assert stats.memory_usage_bytes == (64 << 20) - (30 << 20)
    assert stats.memory_limit_bytes == 256 << 20
    assert (stats.pids_current, stats.pids_limit) == (7, 100)
    assert stats.blkio_read_bytes == 4096 * 3 + 1000
    assert stats.blkio_write_bytes == 4096 * 5 + 2000


def test_v1_metrics_keep_the_whole_message() -> None:
    sample = v1_sample()
    stats = metrics.decode(metric(sample))
    assert stats.metrics == sample
    assert isinstance(stats.metrics, v1.Metrics)
    assert stats.metrics.cpu.throttling.throttled_periods == 2


def test_v1_no_memory_limit_and_no_pids_limit_are_none() -> None:
    stats = metrics.decode(metric(v1_sample(limit=V1_UNLIMITED, pids_limit=0)))
    assert stats.memory_limit_bytes is None
    assert stats.pids_limit is None


def test_v1_no_limit_is_recognised_whatever_the_page_size() -> None:
    with_64k_pages = (2**63 - 1) & ~0xFFFF
    assert metrics.decode(metric(v1_sample(limit=with_64k_pages))).memory_limit_bytes is None


def test_memory_usage_is_not_reduced_below_zero() -> None:
    sample = v1_sample()
    sample.memory.total_inactive_file = sample.memory.usage.usage + 1
    assert metrics.decode(metric(sample)).memory_usage_bytes == sample.memory.usage.usage


def test_v2_metrics_give_the_common_view() -> None:
    stats = metrics.decode(metric(v2_sample()))
    assert stats.cgroup_version == 2
    assert isinstance(stats.metrics, v2.Metrics)
    assert stats.cpu_usage_ns == 2_500_000_000
    assert stats.memory_usage_bytes == (160 << 20) - (70 << 20)
    assert stats.memory_limit_bytes == 512 << 20
    assert (stats.pids_current, stats.pids_limit) == (3, 64)
    assert stats.blkio_read_bytes == (1 << 20) + 4096
    assert stats.blkio_write_bytes == (3 << 20) + 8192


def test_v2_max_limits_are_none() -> None:
    stats = metrics.decode(metric(v2_sample(limit=2**64 - 1, pids_limit=2**64 - 1)))
    assert stats.memory_limit_bytes is None
    assert stats.pids_limit is None


def test_sections_the_runtime_left_out_read_as_zero_and_no_limit() -> None:
    stats = metrics.decode(metric(v2.Metrics()))
    assert (stats.cpu_usage_ns, stats.memory_usage_bytes, stats.pids_current) == (0, 0, 0)
    assert (stats.memory_limit_bytes, stats.pids_limit) == (None, None)
    assert (stats.blkio_read_bytes, stats.blkio_write_bytes) == (0, 0)


def test_a_prefixed_type_url_is_decoded_too() -> None:
    url = "type.googleapis.com/io.containerd.cgroups.v2.Metrics"
    assert metrics.decode(metric(v2_sample(), type_url=url)).cgroup_version == 2


def test_an_unknown_metrics_type_raises_not_implemented_naming_it() -> None:
    unknown = metric(v2_sample(), type_url="io.containerd.cgroups.v3.Metrics")
    with pytest.raises(NotImplemented, match=r"web-1.*io\.containerd\.cgroups\.v3\.Metrics"):
        metrics.decode(unknown)


def test_a_payload_that_does_not_decode_raises_a_library_error() -> None:
    garbage = metrics_pb2.Metric(
        id="web-1", data=any_pb2.Any(type_url=metrics.CGROUPS_V1_METRICS, value=b"\xff\xff\xff")
    )
    with pytest.raises(LibcontainerdError, match="do not decode"):
        metrics.decode(garbage)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", 3),  # v1 memory.oom_control
        ("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n", 2),  # v2 memory.events
        ("oom_kill_disable 0\nunder_oom 0\n", None),  # a kernel before 4.13
        ("oom_kill x\n", None),
    ],
)
def test_the_oom_count_is_read_from_a_cgroup_file(
    tmp_path: Path, text: str, count: int | None
) -> None:
    path = tmp_path / "memory.events"
    path.write_text(text)
    assert metrics.oom_kills_in_file(path) == count


def test_a_cgroup_file_that_is_gone_gives_no_count(tmp_path: Path) -> None:
    assert metrics.oom_kills_in_file(tmp_path / "deleted" / "memory.oom_control") is None
