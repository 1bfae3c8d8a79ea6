"""wait(timeout=), stop() and remove(): what a job runner needs, as docker stop/rm do it."""

from __future__ import annotations

import asyncio

import pytest

from libcontainerd import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Status,
    oci,
)

from .containers import ContainerFactory

pytestmark = pytest.mark.integration

# The shell as pid 1 ignores a signal it has no trap for: each test says what it traps.
TRAPS_TERM = ("/bin/sh", "-c", "trap 'exit 7' TERM; sleep 300 & wait")
TRAPS_USR1 = ("/bin/sh", "-c", "trap 'exit 8' USR1; sleep 300 & wait")
IGNORES_TERM = ("/bin/sh", "-c", "trap '' TERM; sleep 300 & wait")


async def test_wait_with_a_timeout_raises_deadline_exceeded_and_leaves_the_process_running(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.run(("/bin/sleep", "300"))

    with pytest.raises(DeadlineExceeded, match=r"did not exit within 0\.2 s"):
        await client.wait(container_id, timeout=0.2)

    assert await client.status(container_id) is Status.RUNNING


async def test_wait_with_a_timeout_returns_the_exit_that_comes_in_time(
    containers: ContainerFactory,
) -> None:
    container_id = await containers.run(("/bin/sh", "-c", "exit 4"))
    assert (await containers.client.wait(container_id, timeout=30)).exit_code == 4


async def test_wait_refuses_a_negative_timeout(containers: ContainerFactory) -> None:
    container_id = await containers.run(("/bin/sleep", "300"))
    with pytest.raises(InvalidArgument, match="timeout"):
        await containers.client.wait(container_id, timeout=-1)


async def test_stop_sends_sigterm_and_returns_the_exit(containers: ContainerFactory) -> None:
    client = containers.client
    container_id = await containers.run(TRAPS_TERM)
    await _trap_installed()

    status = await client.stop(container_id)

    assert status.exit_code == 7
    assert await client.status(container_id) is Status.STOPPED  # stopped, not deleted


async def test_stop_kills_what_ignores_its_signal_after_the_grace_period(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.run(IGNORES_TERM)
    await _trap_installed()

    status = await client.stop(container_id, timeout=0.5)

    assert status.exit_code == 137


async def test_stop_uses_the_containers_stop_signal(containers: ContainerFactory) -> None:
    client = containers.client
    container_id = await containers.run(
        TRAPS_USR1, oci.with_annotations({"org.opencontainers.image.stopSignal": "SIGUSR1"})
    )
    await _trap_installed()

    assert (await client.stop(container_id, timeout=30)).exit_code == 8


async def test_stop_sends_the_signal_it_is_given(containers: ContainerFactory) -> None:
    client = containers.client
    container_id = await containers.run(TRAPS_USR1)
    await _trap_installed()

    assert (await client.stop(container_id, timeout=30, signal="SIGUSR1")).exit_code == 8


async def test_stop_of_a_paused_container_delivers_the_signal(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.run(TRAPS_TERM)
    await _trap_installed()
    await client.pause(container_id)

    assert (await client.stop(container_id, timeout=30)).exit_code == 7


async def test_stop_of_a_stopped_task_gives_its_exit(containers: ContainerFactory) -> None:
    client = containers.client
    container_id = await containers.run(("/bin/sh", "-c", "exit 5"))
    await client.wait(container_id)

    assert (await client.stop(container_id)).exit_code == 5


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"timeout": -1}, InvalidArgument),
        ({"timeout": "10"}, InvalidArgument),
        ({"signal": "SIGNOPE"}, InvalidArgument),
    ],
)
async def test_stop_refuses_bad_arguments_before_sending(
    containers: ContainerFactory, arguments: dict[str, object], error: type[Exception]
) -> None:
    container_id = await containers.run(("/bin/sleep", "300"))
    with pytest.raises(error):
        await containers.client.stop(container_id, **arguments)  # type: ignore[arg-type]
    assert await containers.client.status(container_id) is Status.RUNNING


async def test_stop_of_a_missing_container_or_task_raises_not_found(
    containers: ContainerFactory,
) -> None:
    created = await containers.create(("/bin/sleep", "300"))
    with pytest.raises(NotFound, match="no such container"):
        await containers.client.stop("no-such-container")
    with pytest.raises(NotFound, match="no task"):
        await containers.client.stop(created)


async def test_remove_refuses_a_running_container_without_force(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.run(("/bin/sleep", "300"))

    with pytest.raises(FailedPrecondition, match="force=True"):
        await client.remove(container_id)

    assert await client.status(container_id) is Status.RUNNING


@pytest.mark.parametrize("state", ["running", "paused"])
async def test_remove_with_force_kills_and_deletes_everything(
    containers: ContainerFactory, state: str
) -> None:
    client = containers.client
    container_id = await containers.run(("/bin/sleep", "300"))
    if state == "paused":
        await client.pause(container_id)

    await client.remove(container_id, force=True)

    assert container_id not in {info.id for info in await client.list_containers()}


@pytest.mark.parametrize("state", ["never started", "stopped", "task deleted"])
async def test_remove_deletes_a_container_that_does_not_run_without_force(
    containers: ContainerFactory, state: str
) -> None:
    client = containers.client
    if state == "never started":
        container_id = await containers.create(("/bin/true",))
    elif state == "stopped":
        container_id = await containers.run(("/bin/true",))
        await client.wait(container_id)
    else:
        container_id = await containers.run(("/bin/true",))
        await client.wait(container_id)
        await client.delete_task(container_id)

    await client.remove(container_id)

    assert container_id not in {info.id for info in await client.list_containers()}


async def test_remove_of_a_missing_container_raises_not_found(
    containers: ContainerFactory,
) -> None:
    with pytest.raises(NotFound, match="no such container"):
        await containers.client.remove("no-such-container")


async def _trap_installed() -> None:
    """Give the shell a moment to install its trap (it starts in microseconds)."""
    await asyncio.sleep(0.3)
