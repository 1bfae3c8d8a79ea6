"""The client's memory and descriptors with 1,000 attached containers: ``bench.attached_scale``.

    .venv/bin/python -m bench.attached_scale [--containers 1000] [--concurrency 8] [--json PATH]

Starts a private containerd (a Supervisor in a fresh folder under /tmp), then
``--containers`` containers that print one line and sleep, each with its
output attached (``CollectOutput``), and reports, with all of them running:
the client's descriptors and resident memory per attached container (against
the client before the first start), its open-file limits before and after
(the client raises its soft limit before its first FIFOs), containerd's own
descriptors and memory, and the shims' memory (proportional set size, so
their shared code counts once). Then it kills and deletes every container,
checks each one's output arrived, and stops and removes all it started. Run
it under a low limit (``prlimit --nofile=1024: .venv/bin/python -m
bench.attached_scale``) to see the raise at work. Not part of ``bench/run``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from libcontainerd import AsyncClient, CollectOutput, Supervisor, oci, rootfs
from libcontainerd.types import INIT_PROCESS_ID

from .runner import remove_cgroup_parents, remove_workdir

NAMESPACE = "bench-attached"


def _open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _status_kib(pid: int | str, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _shims_of(address: str) -> list[int]:
    """The pids of the runc shims serving the daemon at ``address``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            words = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if words[0].endswith(b"containerd-shim-runc-v2") and address.encode() in words:
            found.append(int(entry))
    return found


def _nofile() -> list[int]:
    return list(resource.getrlimit(resource.RLIMIT_NOFILE))


async def measure(containers: int, concurrency: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lcdatt-", dir="/tmp"))
    supervisor = Supervisor(workdir / "s", workdir / "r")
    results: dict[str, Any] = {"containers": containers, "concurrency": concurrency}
    outputs: dict[str, CollectOutput] = {}
    gate = asyncio.Semaphore(concurrency)
    try:
        root = rootfs.busybox(workdir / "rootfs")
        spec = oci.default_spec(["/bin/sh", "-c", "echo ready; exec sleep 3600"], root)
        await supervisor.start()
        assert supervisor.pid is not None
        async with AsyncClient(supervisor.address, namespace=NAMESPACE) as client:
            results["client_nofile_before"] = _nofile()
            fds_before, rss_before = _open_fds(), _status_kib("self", "VmRSS")

            async def start(index: int) -> None:
                container_id = f"att-{index}"
                async with gate:
                    await client.create(container_id, spec)
                    outputs[container_id] = output = CollectOutput()
                    await client.start(container_id, attach_stdio=output)

            started = time.monotonic()
            try:
                await asyncio.gather(*(start(index) for index in range(containers)))
                results["start_seconds"] = round(time.monotonic() - started, 1)
                fds, rss = _open_fds(), _status_kib("self", "VmRSS")
                shims = _shims_of(supervisor.address)
                results.update(
                    client_nofile_after=_nofile(),
                    client_fds=[fds_before, fds],
                    client_fds_per_container=round((fds - fds_before) / containers, 2),
                    client_rss_mib=[round(rss_before / 1024, 1), round(rss / 1024, 1)],
                    client_rss_kib_per_container=round((rss - rss_before) / containers, 1),
                    containerd_fds=_open_fds(supervisor.pid),
                    containerd_rss_mib=round(_status_kib(supervisor.pid, "VmRSS") / 1024, 1),
                    shims=len(shims),
                    shims_pss_mib=round(sum(_pss_kib(pid) for pid in shims) / 1024, 1),
                )
            finally:
                removed = time.monotonic()
                stdouts = await _remove_all(client, outputs, gate)
                results["remove_seconds"] = round(time.monotonic() - removed, 1)
            results["outputs_arrived"] = sum(out == b"ready\n" for out in stdouts)
            results["client_fds_after_removal"] = _open_fds()
        results["client_peak_rss_mib"] = round(_status_kib("self", "VmHWM") / 1024, 1)
    finally:
        await supervisor.stop()
        remove_workdir(workdir)
        remove_cgroup_parents((NAMESPACE,))
    return results


async def _remove_all(
    client: AsyncClient, outputs: dict[str, CollectOutput], gate: asyncio.Semaphore
) -> list[bytes]:
    async def remove(container_id: str, output: CollectOutput) -> bytes:
        async with gate:
            try:
                await client.signal_process(container_id, INIT_PROCESS_ID, signal.SIGKILL)
                await client.wait(container_id)
                await client.delete_task(container_id)
            finally:
                await client.delete(container_id)
        stdout, _ = await output
        return stdout

    return await asyncio.gather(*(remove(cid, out) for cid, out in outputs.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", help="also write the results to this file")
    options = parser.parse_args(argv)
    result = asyncio.run(measure(options.containers, options.concurrency))
    text = json.dumps(result, indent=1)
    print(text)
    if options.json:
        Path(options.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
