"""What a container's network costs: ``python -m bench.network [--rounds N]``.

Interleaved, per round: (1) the floor, the same conflist's plugins run for
ADD then DEL (with the loopback plugin, on a namespace pinned the same way)
straight from the plugin runner: no lock, no record, no files; (2) the
library's set-up and teardown of one container's network (record, lock,
ADD, DNS files; DEL, unmount, cleanup); (3) a container create+delete on
containerd with ``network=`` and (4) without. Medians in milliseconds, and
the ratios the issue names (2 over 1: the target is <= 1.3). Starts its own
containerd under /tmp; leaves nothing behind (the bench network is removed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from libcontainerd import AsyncClient, Supervisor, oci, rootfs
from libcontainerd.networks import Attach, NetworkService, Port, _netns
from libcontainerd.networks._attachments import INTERFACE, Attachments
from libcontainerd.networks._cni import Invocation
from libcontainerd.networks._config import read_conflist

from .runner import remove_workdir

NAMESPACE = "bench-network"
LOOPBACK = {"cniVersion": "1.0.0", "name": "lcd-loopback", "plugins": [{"type": "loopback"}]}


async def _measure(rounds: int, workdir: Path) -> dict[str, float]:
    service = NetworkService()
    network = await service.create(f"lcdbench-{os.getpid()}")
    conflist = read_conflist(service.config_dir, network.name)
    assert conflist is not None
    root = rootfs.busybox(workdir / "rootfs")
    spec = oci.default_spec(["/bin/true"], root)
    times: dict[str, list[float]] = {"floor": [], "library": [], "create+delete networked": []}
    times["create+delete bare"] = []
    try:
        async with (
            Supervisor(workdir / "s", workdir / "r") as daemon,
            AsyncClient(daemon.address, NAMESPACE) as client,
        ):
            attachments = Attachments(service, daemon.address, NAMESPACE)
            port = 20000 + os.getpid() % 10000

            async def floor(index: int) -> None:
                path = str(workdir / f"floor-{index}")
                await asyncio.to_thread(_netns.pin_new, path)
                key = f"floor-{os.getpid()}-{index}"
                mapping = {"hostPort": port, "containerPort": 80, "protocol": "tcp"}
                mappings = {"portMappings": [mapping]}
                runner = service.runner
                who = Invocation(key, path, INTERFACE)
                result = None
                try:
                    await runner.add(LOOPBACK, Invocation(key, path, "lo"))
                    result = await runner.add(conflist, who, mappings)
                finally:
                    await runner.delete(conflist, who, result, mappings)
                    await asyncio.to_thread(_netns.unpin, path)

            async def library(index: int) -> None:
                attach = Attach(network.name, ports=[Port(port, 80)])
                made = await attachments.attach(f"lib-{index}", attach, "bench")
                attachments.settle(made)
                await attachments.detach(f"lib-{index}")

            async def networked(index: int) -> None:
                attach = Attach(network.name, ports=[Port(port, 80)])
                await client.create(f"net-{index}", spec, network=attach)
                await client.delete(f"net-{index}")

            async def bare(index: int) -> None:
                await client.create(f"bare-{index}", spec)
                await client.delete(f"bare-{index}")

            steps: dict[str, Callable[[int], Awaitable[None]]] = {
                "floor": floor,
                "library": library,
                "create+delete networked": networked,
                "create+delete bare": bare,
            }
            for index in range(rounds):
                for name, step in steps.items():
                    started = time.perf_counter()
                    await step(index)
                    times[name].append(time.perf_counter() - started)
    finally:
        await service.remove(network.name)
    medians = {name: 1000 * statistics.median(values) for name, values in times.items()}
    medians["library / floor"] = medians["library"] / medians["floor"]
    medians["network per container (create+delete)"] = (
        medians["create+delete networked"] - medians["create+delete bare"]
    )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lcd-bench-network-"))
    try:
        medians = asyncio.run(_measure(arguments.rounds, workdir))
    finally:
        remove_workdir(workdir)
    if arguments.json:
        print(json.dumps(medians, indent=2))
        return
    for name, value in medians.items():
        unit = "" if "/" in name else " ms"
        print(f"{name:40} {value:8.2f}{unit}")


if __name__ == "__main__":
    main()
