"""Run by test_fd_limits.py as a program of its own, under the open-file limits the test sets.

    python fd_limits_child.py PLAN_JSON

PLAN_JSON is a file holding ``{"containers": N, "namespace": ..., "prefix": ...,
"rootfs": ..., "address": ...}`` (a running containerd), or ``"containerd"``,
``"state_dir"`` and ``"root_dir"`` instead of ``"address"`` (a Supervisor of its
own, started and stopped here). Starts N containers that print ``ready`` and
sleep, each with its output attached (``CollectOutput``), 8 at a time; stops at
the first start that fails; then kills, deletes and collects every one it
started, and prints one JSON line: what started, what failed and why, the
limits (its own before and after, containerd's), its descriptors, and what is
left. Library warnings go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from libcontainerd import (
    AsyncClient,
    CollectOutput,
    LibcontainerdError,
    NotFound,
    Supervisor,
    oci,
)
from libcontainerd.types import INIT_PROCESS_ID

CONCURRENCY = 8


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def limits_of(pid: int | str) -> dict[str, list[str]]:
    """The open-file and process limits of a process, as /proc shows them."""
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        for label, name in (("Max open files", "nofile"), ("Max processes", "nproc")):
            if line.startswith(label):
                found[name] = line[len(label) :].split()[:2]
    return found


async def run_containers(address: str, plan: dict[str, Any], report: dict[str, Any]) -> None:
    count, prefix = plan["containers"], plan["prefix"]
    spec = oci.default_spec(["/bin/sh", "-c", "echo ready; exec sleep 600"], plan["rootfs"])
    outputs: dict[str, CollectOutput] = {}
    failures: list[str] = []
    left_behind: list[str] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    async with AsyncClient(address, namespace=plan["namespace"]) as client:
        report["fds_before"] = open_fds()

        async def start(index: int) -> None:
            container_id = f"{prefix}-{index}"
            async with gate:
                if failures:
                    return
                await client.create(container_id, spec)
                output = outputs[container_id] = CollectOutput()
                try:
                    await client.start(container_id, attach_stdio=output)
                except LibcontainerdError as error:
                    failures.append(f"{type(error).__name__}: {error}")
                    # What a failed start left: its FIFO folder, a task.
                    left_behind.extend(fifo_folders(client, plan["namespace"], container_id))
                    left_behind.extend(
                        [container_id] if await has_task(client, container_id) else []
                    )

        try:
            await asyncio.gather(*(start(index) for index in range(count)))
            report["started"] = sum([await has_task(client, cid) for cid in outputs])
            report["failed_starts_left"] = left_behind
            report["fds_running"] = open_fds()
            report["limits_running"] = limits_of("self")
        finally:
            report["failures"] = failures
            collected = await remove_all(client, outputs)
        report["ready_outputs"] = sum(out == b"ready\n" for out in collected)
        # Every container's FIFO folder goes with its task, or with its failed start.
        report["fifo_folders_left"] = fifo_folders(client, plan["namespace"], f"{prefix}-*")
        report["containers_left"] = sorted(
            info.id for info in await client.list_containers() if info.id.startswith(prefix)
        )
    report["fds_after"] = open_fds()


def fifo_folders(client: AsyncClient, namespace: str, pattern: str) -> list[str]:
    """The client's FIFO folders of containers whose id matches ``pattern``."""
    return sorted(path.name for path in Path(client.fifo_dir, namespace).glob(pattern))


async def has_task(client: AsyncClient, container_id: str) -> bool:
    try:
        await client.status(container_id)
    except NotFound:
        return False
    return True


async def remove_all(client: AsyncClient, outputs: dict[str, CollectOutput]) -> list[bytes]:
    """Kill, reap and delete every container the run created; the stdout each wrote."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def remove(container_id: str, output: CollectOutput) -> bytes:
        async with gate:
            try:
                await client.signal_process(container_id, INIT_PROCESS_ID, signal.SIGKILL)
                await client.wait(container_id)
                await client.delete_task(container_id)
            except LibcontainerdError:
                pass  # its start failed: no task
            await client.delete(container_id)
        try:
            async with asyncio.timeout(30):
                stdout, _ = await output
        except (LibcontainerdError, TimeoutError):
            return b""
        return stdout

    return await asyncio.gather(*(remove(cid, out) for cid, out in outputs.items()))


async def main(plan: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {"limits_at_start": limits_of("self")}
    address = plan.get("address")
    if address is not None:
        await run_containers(address, plan, report)
        return report
    async with Supervisor(
        plan["state_dir"], plan["root_dir"], containerd=plan["containerd"]
    ) as daemon:
        assert daemon.pid is not None
        report["containerd_limits"] = limits_of(daemon.pid)
        if plan["containers"]:
            await run_containers(daemon.address, plan, report)
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    result = asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
    result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result), flush=True)
