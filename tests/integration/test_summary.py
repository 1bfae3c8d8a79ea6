"""summary(): one entry per process, with what containerd says about it."""

from __future__ import annotations

import pytest

from libcontainerd.client import AsyncClient

from .containers import ContainerFactory, eventually

pytestmark = pytest.mark.integration


async def test_the_containers_own_processes_carry_no_exec_id(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    # Only an exec'd process has runc ProcessDetails (its exec id); the init
    # process and its children have none.
    container_id = await containers.run(["/bin/sh", "-c", "sleep 300 & wait"])

    async def two_processes() -> bool:
        return len(await client.list_pids(container_id)) == 2

    await eventually(two_processes, "the shell to start its child")
    summary = await client.summary(container_id)
    assert sorted(entry.pid for entry in summary) == sorted(await client.list_pids(container_id))
    assert [entry.info for entry in summary] == [{}, {}]
