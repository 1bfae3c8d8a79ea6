"""Metrics encoded with containerd's own cgroups definitions decode into the right Stats.

This host has cgroup v1, so the integration suite only ever sees v1 payloads
from a real runtime. Here both versions are encoded with the message classes
built from containerd's .proto files (Debian's golang-github-containerd-cgroups-dev,
compiled by the same protoc as test_proto_conformance.py), in a descriptor pool
of their own, and decoded by the library with its own definitions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import any_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import Message

from libcontainerd import metrics
from libcontainerd._api.cgroups.v2.stats import metrics_pb2 as cgroups_v2
from libcontainerd._api.containerd.api.types import metrics_pb2

from ..ci import missing
from .test_proto_conformance import containerd_files

pytestmark = pytest.mark.conformance

V1_FILE = "github.com/containerd/cgroups/stats/v1/metrics.proto"
V2_FILE = "github.com/containerd/cgroups/v2/stats/metrics.proto"

MessageClass = Callable[..., Message]


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], MessageClass]:
    """containerd's message classes by full name, from a private descriptor pool."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        missing("needs Debian's apt-get and dpkg-deb to fetch containerd's .proto files")
    files, _ = containerd_files([V1_FILE, V2_FILE], tmp_path_factory.mktemp("metrics"))
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)

    def message_class(name: str) -> MessageClass:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    return message_class


def encoded(payload: Message) -> metrics_pb2.Metric:
    return metrics_pb2.Metric(
        timestamp=timestamp_pb2.Timestamp(seconds=1_780_000_000),
        id="db-0",
        data=any_pb2.Any(type_url=payload.DESCRIPTOR.full_name, value=payload.SerializeToString()),
    )


def build(message_class: Callable[[str], MessageClass], name: str, **fields: Any) -> Message:
    return message_class(name)(**fields)


def test_their_v2_metrics_decode_into_the_common_view(
    theirs: Callable[[str], MessageClass],
) -> None:
    ns = "io.containerd.cgroups.v2."
    payload = build(
        theirs,
        ns + "Metrics",
        pids=build(theirs, ns + "PidsStat", current=12, limit=2**64 - 1),
        cpu=build(
            theirs,
            ns + "CPUStat",
            usage_usec=73_512_004,
            user_usec=60_000_000,
            system_usec=13_512_004,
            nr_periods=900,
            nr_throttled=42,
            throttled_usec=1_250_000,
        ),
        memory=build(
            theirs,
            ns + "MemoryStat",
            anon=201_326_592,
            file=94_371_840,
            inactive_file=62_914_560,
            active_file=31_457_280,
            slab=4_194_304,
            pgfault=1_203_441,
            usage=301_989_888,
            usage_limit=536_870_912,
            swap_usage=0,
            swap_limit=2**64 - 1,
        ),
        io=build(
            theirs,
            ns + "IOStat",
            usage=[
                build(
                    theirs,
                    ns + "IOEntry",
                    major=8,
                    minor=0,
                    rbytes=10_485_760,
                    wbytes=52_428_800,
                    rios=320,
                    wios=1_600,
                ),
                build(
                    theirs,
                    ns + "IOEntry",
                    major=259,
                    minor=1,
                    rbytes=4_096,
                    wbytes=0,
                    rios=1,
                    wios=0,
                ),
            ],
        ),
        memory_events=build(theirs, ns + "MemoryEvents", high=3, max=1, oom=0, oom_kill=0),
        hugetlb=[build(theirs, ns + "HugeTlbStat", current=0, max=2**64 - 1, pagesize="2MB")],
    )
    stats = metrics.decode(encoded(payload))
    assert stats.cgroup_version == 2
    assert stats.cpu_usage_ns == 73_512_004_000
    assert stats.memory_usage_bytes == 301_989_888 - 62_914_560
    assert stats.memory_limit_bytes == 536_870_912
    assert (stats.pids_current, stats.pids_limit) == (12, None)
    assert stats.blkio_read_bytes == 10_485_760 + 4_096
    assert stats.blkio_write_bytes == 52_428_800
    # The full message came through field for field.
    assert stats.metrics.SerializeToString() == payload.SerializeToString()
    assert isinstance(stats.metrics, cgroups_v2.Metrics)
    assert stats.metrics.cpu.nr_throttled == 42
    assert stats.metrics.hugetlb[0].pagesize == "2MB"


def test_their_v1_metrics_decode_into_the_common_view(
    theirs: Callable[[str], MessageClass],
) -> None:
    ns = "io.containerd.cgroups.v1."
    payload = build(
        theirs,
        ns + "Metrics",
        pids=build(theirs, ns + "PidsStat", current=4, limit=0),
        cpu=build(
            theirs,
            ns + "CPUStat",
            usage=build(
                theirs, ns + "CPUUsage", total=9_000_000_000, per_cpu=[6_000_000_000, 3_000_000_000]
            ),
        ),
        memory=build(
            theirs,
            ns + "MemoryStat",
            total_inactive_file=8_388_608,
            usage=build(
                theirs,
                ns + "MemoryEntry",
                limit=9223372036854771712,
                usage=33_554_432,
                max=41_943_040,
            ),
        ),
        blkio=build(
            theirs,
            ns + "BlkIOStat",
            io_service_bytes_recursive=[
                build(theirs, ns + "BlkIOEntry", op="Read", major=8, minor=0, value=65_536),
                build(theirs, ns + "BlkIOEntry", op="Write", major=8, minor=0, value=131_072),
                build(theirs, ns + "BlkIOEntry", op="Total", major=8, minor=0, value=196_608),
            ],
        ),
    )
    stats = metrics.decode(encoded(payload))
    assert stats.cgroup_version == 1
    assert stats.cpu_usage_ns == 9_000_000_000
    assert stats.memory_usage_bytes == 33_554_432 - 8_388_608
    assert stats.memory_limit_bytes is None
    assert (stats.pids_current, stats.pids_limit) == (4, None)
    assert (stats.blkio_read_bytes, stats.blkio_write_bytes) == (65_536, 131_072)
    assert stats.metrics.SerializeToString() == payload.SerializeToString()
