"""list_containers: every container of the namespace with its task's state, in two requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libcontainerd.client import AsyncClient
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import ContainerInfo, Status

from .containers import ContainerFactory

pytestmark = pytest.mark.integration


def _by_id(listing: list[ContainerInfo]) -> dict[str, ContainerInfo]:
    return {info.id: info for info in listing}


async def test_a_container_without_a_task_has_no_status_and_no_pid(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    container_id = await containers.create()
    info = _by_id(await client.list_containers())[container_id]
    assert info.status is None
    assert info.pid is None
    assert info.exit_code is None
    assert info.created_at is not None
    assert before <= info.created_at <= datetime.now(UTC) + timedelta(seconds=5)


async def test_a_running_container_shows_its_status_and_pid(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create()
    pid = await client.start(container_id)
    info = _by_id(await client.list_containers())[container_id]
    assert info.status is Status.RUNNING
    assert info.pid == pid
    assert info.exit_code is None


async def test_a_stopped_container_shows_its_exit_code(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run(["/bin/sh", "-c", "exit 7"])
    await client.wait(container_id)
    info = _by_id(await client.list_containers())[container_id]
    assert info.status is Status.STOPPED
    assert info.exit_code == 7
    assert info.exited_at is not None


async def test_a_paused_container_is_listed_as_paused(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.pause(container_id)
    try:
        assert _by_id(await client.list_containers())[container_id].status is Status.PAUSED
    finally:
        await client.resume(container_id)


async def test_a_deleted_container_is_no_longer_listed(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create()
    await client.delete(container_id)
    assert container_id not in _by_id(await client.list_containers())


async def test_containers_of_another_namespace_are_not_listed(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor
) -> None:
    container_id = await containers.create()
    async with AsyncClient(supervisor.address, namespace="lcdtest-elsewhere") as other:
        assert container_id not in _by_id(await other.list_containers())
