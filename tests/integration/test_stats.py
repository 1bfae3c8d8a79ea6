"""Stats on a real containerd: one sample, and a live stream that ends with the task."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from libcontainerd import Stats, oci
from libcontainerd._api.cgroups.stats.v1 import metrics_pb2 as cgroups_v1
from libcontainerd.client import AsyncClient
from libcontainerd.errors import InvalidArgument, NotFound
from libcontainerd.types import INIT_PROCESS_ID

from .containers import ContainerFactory, eventually, read_cgroup

pytestmark = pytest.mark.integration

BUSY = ["/bin/sh", "-c", "while true; do :; done"]


async def wait_for(path: Path) -> None:
    """Wait until the container has created ``path`` (a marker in a bind-mounted folder)."""
    await eventually(path.exists, f"the container to create {path.name}")


async def test_stats_read_the_containers_cgroup_v1(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()

    async def settled() -> bool:
        # runc's set-up processes count in the pids cgroup until they are reaped.
        return (await client.stats(container_id)).pids_current == 1

    await eventually(settled, "the container's only process to be counted")
    stats = await client.stats(container_id)
    assert isinstance(stats, Stats)
    assert stats.cgroup_version == 1
    assert isinstance(stats.metrics, cgroups_v1.Metrics)
    assert abs(datetime.now(UTC) - stats.read) < timedelta(minutes=1)
    assert stats.metrics.memory.usage.usage > 0
    assert 0 < stats.memory_usage_bytes <= stats.metrics.memory.usage.usage
    assert stats.cpu_usage_ns == stats.metrics.cpu.usage.total > 0
    assert stats.pids_current == 1


async def test_stats_report_the_memory_and_pids_limits_of_the_spec(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run(
        ["/bin/sleep", "300"], oci.with_memory_limit(96 << 20), oci.with_pids_limit(21)
    )
    stats = await client.stats(container_id)
    assert stats.memory_limit_bytes == 96 << 20
    assert stats.pids_limit == 21


async def test_a_container_without_limits_reports_none(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    stats = await client.stats(container_id)
    assert read_cgroup("pids", container_id, "pids.max") == "max"
    assert stats.pids_limit is None
    assert stats.memory_limit_bytes is None
    # The kernel's own "no limit" stays visible in the full message.
    assert isinstance(stats.metrics, cgroups_v1.Metrics)
    assert stats.metrics.memory.usage.limit >= 2**62


async def test_stats_count_every_process_of_the_container(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run(["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"])

    async def three_processes() -> bool:
        return len(await client.list_pids(container_id)) == 3

    await eventually(three_processes, "the shell to start its two children")
    assert (await client.stats(container_id)).pids_current == 3


async def test_memory_usage_grows_when_the_container_fills_memory(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path
) -> None:
    # /dev/shm is tmpfs: what is written there is charged to the container and
    # cannot be reclaimed as inactive page cache.
    container_id = await containers.run(
        [
            "/bin/sh",
            "-c",
            "touch /out/ready; while [ ! -e /out/go ]; do sleep 0.02; done;"
            " dd if=/dev/zero of=/dev/shm/fill bs=1M count=32; touch /out/done; sleep 300",
        ],
        oci.with_bind_mount(str(tmp_path), "/out"),
    )
    await wait_for(tmp_path / "ready")
    before = await client.stats(container_id)
    (tmp_path / "go").write_text("go\n")
    await wait_for(tmp_path / "done")
    after = await client.stats(container_id)
    # 32 MiB more, give or take what the shell's own processes freed meanwhile.
    assert after.memory_usage_bytes - before.memory_usage_bytes > 28 << 20
    assert after.read >= before.read


async def test_cpu_usage_grows_while_the_container_works(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run(BUSY)
    first = await client.stats(container_id)

    async def more_cpu_used() -> bool:
        return (await client.stats(container_id)).cpu_usage_ns > first.cpu_usage_ns

    await eventually(more_cpu_used, "the busy loop to use more CPU time")


async def test_stats_of_a_container_without_a_task_raise_not_found(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    with pytest.raises(NotFound, match="no such container"):
        await client.stats("no-such-container")
    container_id = await containers.create()
    with pytest.raises(NotFound, match="has no task"):
        await client.stats(container_id)


async def test_a_stats_stream_follows_the_task_and_ends_when_it_exits(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    samples: list[Stats] = []
    async with asyncio.timeout(30):
        async with contextlib.aclosing(client.stats_stream(container_id, interval=0.05)) as stream:
            async for sample in stream:
                samples.append(sample)
                if len(samples) == 3:
                    await client.signal_process(container_id, INIT_PROCESS_ID, "SIGKILL")
    # The loop ended by itself: the stream saw the exit.
    assert len(samples) >= 3
    assert [s.read for s in samples] == sorted(s.read for s in samples)
    assert (await client.wait(container_id))[0] == 137


async def test_a_stats_stream_of_an_unknown_container_raises_not_found(
    client: AsyncClient,
) -> None:
    with pytest.raises(NotFound, match="no such container"):
        async for _ in client.stats_stream("no-such-container"):
            pass


@pytest.mark.parametrize("interval", [0, -1.0, "1", True])
async def test_a_stats_stream_refuses_an_interval_that_is_not_positive(
    client: AsyncClient, interval: object
) -> None:
    with pytest.raises(InvalidArgument, match="interval"):
        async for _ in client.stats_stream("any", interval=interval):  # type: ignore[arg-type]
            pass
