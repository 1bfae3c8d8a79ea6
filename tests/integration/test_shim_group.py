"""oci.with_shim_group: the containers of a group share one runc shim, and it goes with the last."""

from __future__ import annotations

from pathlib import Path

import pytest

from libcontainerd import INIT_PROCESS_ID, AsyncClient, oci

from .containers import ContainerFactory, eventually, process_alive

pytestmark = pytest.mark.integration


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


async def test_a_group_shares_one_shim_that_ends_with_its_last_task(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    group = oci.with_shim_group(containers.new_id("group"))
    first = await containers.create(["/bin/sh", "-c", "sleep 300"], group)
    second = await containers.create(["/bin/sh", "-c", "sleep 300"], group)
    alone = await containers.create(["/bin/sh", "-c", "sleep 300"])
    pids = {cid: await client.start(cid) for cid in (first, second, alone)}

    shim = parent_of(pids[first])
    assert parent_of(pids[second]) == shim
    assert parent_of(pids[alone]) != shim

    # Each container of the group is still its own: signalled, waited and deleted alone.
    await client.signal_process(first, INIT_PROCESS_ID, "KILL")
    assert (await client.wait(first))[0] == 137
    await client.delete_task(first)
    assert process_alive(shim)  # the group's other task still needs it
    assert (await client.status(second)).value == "running"

    await client.signal_process(second, INIT_PROCESS_ID, "KILL")
    assert (await client.wait(second))[0] == 137
    await client.delete_task(second)
    await eventually(lambda: not process_alive(shim), "the group's shim to exit with its last task")
    assert (await client.status(alone)).value == "running"
