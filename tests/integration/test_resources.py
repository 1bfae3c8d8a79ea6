"""update_resources on a real containerd: each kind of resource reaches the container's cgroup."""

from __future__ import annotations

from typing import Any

import pytest

from libcontainerd import oci
from libcontainerd.client import AsyncClient
from libcontainerd.errors import InvalidArgument, NotFound
from libcontainerd.types import Status

from .containers import ContainerFactory, cgroup_file, eventually, read_cgroup
from .recorder import record_calls

pytestmark = pytest.mark.integration

# What cgroup v1 reports for "no memory limit" with 4 KiB pages.
V1_NO_MEMORY_LIMIT = "9223372036854771712"


async def test_a_memory_limit_reaches_the_cgroup_and_the_stats(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.update_resources(container_id, {"memory": {"limit": 48 << 20}})
    assert read_cgroup("memory", container_id, "memory.limit_in_bytes") == str(48 << 20)
    assert (await client.stats(container_id)).memory_limit_bytes == 48 << 20


async def test_a_memory_limit_of_minus_one_removes_the_limit(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run(["/bin/sleep", "300"], oci.with_memory_limit(64 << 20))
    await client.update_resources(container_id, {"memory": {"limit": -1}})
    assert read_cgroup("memory", container_id, "memory.limit_in_bytes") == V1_NO_MEMORY_LIMIT
    assert (await client.stats(container_id)).memory_limit_bytes is None


async def test_a_pids_limit_reaches_the_cgroup_and_the_stats(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.update_resources(container_id, {"pids": {"limit": 17}})
    assert read_cgroup("pids", container_id, "pids.max") == "17"
    assert (await client.stats(container_id)).pids_limit == 17
    await client.update_resources(container_id, {"pids": {"limit": -1}})
    assert read_cgroup("pids", container_id, "pids.max") == "max"
    assert (await client.stats(container_id)).pids_limit is None


async def test_cpu_shares_reach_the_cgroup(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.update_resources(container_id, {"cpu": {"shares": 256}})
    assert read_cgroup("cpu", container_id, "cpu.shares") == "256"


async def test_a_cpu_quota_and_period_reach_the_cgroup(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.update_resources(container_id, {"cpu": {"quota": 25_000, "period": 50_000}})
    assert read_cgroup("cpu", container_id, "cpu.cfs_period_us") == "50000"
    assert read_cgroup("cpu", container_id, "cpu.cfs_quota_us") == "25000"


async def test_a_cpuset_reaches_the_cgroup(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.update_resources(container_id, {"cpu": {"cpus": "0", "mems": "0"}})
    assert read_cgroup("cpuset", container_id, "cpuset.cpus") == "0"
    assert read_cgroup("cpuset", container_id, "cpuset.mems") == "0"


async def test_a_blkio_weight_reaches_the_cgroup(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    # Without CFQ the kernel offers BFQ's weight file instead (runc picks what exists).
    names = [
        n
        for n in ("blkio.weight", "blkio.bfq.weight")
        if cgroup_file("blkio", container_id, n).exists()
    ]
    if not names:
        pytest.skip("this kernel's blkio controller has no weight file (neither CFQ nor BFQ)")
    await client.update_resources(container_id, {"blockIO": {"weight": 321}})
    # BFQ's file reads "default 321".
    assert read_cgroup("blkio", container_id, names[0]).split()[-1] == "321"


async def test_several_resources_change_in_one_update(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.update_resources(
        container_id,
        {"memory": {"limit": 80 << 20}, "pids": {"limit": 30}, "cpu": {"shares": 700}},
    )
    stats = await client.stats(container_id)
    assert (stats.memory_limit_bytes, stats.pids_limit) == (80 << 20, 30)
    assert read_cgroup("cpu", container_id, "cpu.shares") == "700"


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"memory": {"limit": 0}}, r"memory\.limit"),
        ({"cpu": {"shares": 1}}, r"cpu\.shares"),
        ({"cpu": {"quota": 10}}, r"cpu\.quota"),
        ({"cpu": {"period": 100}}, r"cpu\.period"),
        ({"cpu": {"cpus": "1-0"}}, r"cpu\.cpus"),
        ({"blockIO": {"weight": 5}}, r"blockIO\.weight"),
        ({"pids": {}}, r"pids\.limit"),
    ],
)
async def test_malformed_resources_are_refused_before_sending(
    client: AsyncClient, containers: ContainerFactory, resources: dict[str, Any], field: str
) -> None:
    container_id = await containers.run(["/bin/sleep", "300"], oci.with_pids_limit(40))
    calls = record_calls(client)
    with pytest.raises(InvalidArgument, match=field):
        await client.update_resources(container_id, resources)
    assert calls == []  # nothing was sent
    assert read_cgroup("pids", container_id, "pids.max") == "40"


async def test_a_cpuset_the_host_lacks_is_refused_with_the_runtimes_reason(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    before = read_cgroup("cpuset", container_id, "cpuset.cpus")
    with pytest.raises(InvalidArgument, match=r"refused.*cpuset\.cpus") as raised:
        await client.update_resources(container_id, {"cpu": {"cpus": "0-4095"}})
    assert not raised.value.message.endswith("unknown")
    assert read_cgroup("cpuset", container_id, "cpuset.cpus") == before
    assert await client.status(container_id) is Status.RUNNING


async def test_a_memory_limit_below_the_usage_is_refused_and_the_old_one_kept(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run(
        ["/bin/sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=8; sleep 300"],
        oci.with_memory_limit(64 << 20),
    )

    async def filled() -> bool:
        return (await client.stats(container_id)).memory_usage_bytes >= 8 << 20

    await eventually(filled, "the container to fill 8 MiB of /dev/shm")
    with pytest.raises(InvalidArgument, match="memory limit"):
        await client.update_resources(container_id, {"memory": {"limit": 1 << 20}})
    assert (await client.stats(container_id)).memory_limit_bytes == 64 << 20
    assert await client.status(container_id) is Status.RUNNING


async def test_resources_of_a_container_without_a_task_raise_not_found(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create()
    with pytest.raises(NotFound, match="has no task"):
        await client.update_resources(container_id, {"pids": {"limit": 5}})
