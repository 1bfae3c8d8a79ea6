"""What a container's network costs: ``python -m bench.network [--rounds N]``.

Interleaved, per round: (1) the floor, the same conflist's plugins run for
ADD then DEL (on a namespace pinned the same way, ``lo`` up) straight from
the plugin runner: no lock, no record, no files; (2) the library's set-up
and teardown of one container's network (record, lock, ADD, DNS files; DEL,
unmount, cleanup); (3) a container create+delete on containerd with
``network=`` and (4) without; (5) a whole lifecycle with a published port
(create, start, wait for ``/bin/true``, delete) through the library, (6) the
same as ``lcd run --rm -p`` and (7) as ``podman run --rm -p`` (Debian's
podman 4.3, CNI backend, the same plugins, on the same busybox root with
``--rootfs``; skipped when podman is not installed). Medians in
milliseconds, and the ratios the issue names (2 over 1: the target is <=
1.3; 5 over 7: <= 0.7). Then what CNI costs a host's throughput:
lifecycles of ``/bin/true`` per second, 4 at a time, networked and bare.
Starts its own containerd under /tmp; leaves nothing behind (the bench
network is removed; podman's state lives in the work folder, its bridge is
deleted when the run made it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from libcontainerd import AsyncClient, Supervisor, oci, rootfs
from libcontainerd.networks import Attach, NetworkService, Port, _netns
from libcontainerd.networks._attachments import INTERFACE, Attachments
from libcontainerd.networks._cni import Invocation
from libcontainerd.networks._config import read_conflist

from .measure import medians_ms, print_medians
from .runner import remove_workdir

NAMESPACE = "bench-network"
LCD = str(Path(sys.executable).with_name("lcd"))
PODMAN_BRIDGE = "cni-podman0"
CONCURRENCY = 4
THROUGHPUT_LIFECYCLES = 40
# podman 4.3 gives a container its own maximum open-file and process limits, which a
# host with lower hard limits refuses (runc: "error setting rlimit"): these fit any.
PODMAN_LIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")


def _podman(workdir: Path) -> list[str] | None:
    """podman with its storage, network configs and events in ``workdir``; None if missing."""
    found = shutil.which("podman")
    if found is None:
        return None
    state = workdir / "podman"
    return [
        found,
        "--root", str(state / "root"),
        "--runroot", str(state / "run"),
        "--network-config-dir", str(state / "networks"),
        "--tmpdir", str(state / "tmp"),
        "--events-backend", "file",
        "--cgroup-manager", "cgroupfs",
    ]  # fmt: skip


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {stderr.decode(errors='replace').strip()}")


async def _measure(rounds: int, workdir: Path) -> dict[str, float]:
    service = NetworkService()
    network = await service.create(f"lcdbench-{os.getpid()}")
    conflist = read_conflist(service.config_dir, network.name)
    assert conflist is not None
    root = rootfs.busybox(workdir / "rootfs")
    spec = oci.default_spec(["/bin/true"], root)
    podman = _podman(workdir)
    podman_bridge_existed = os.path.exists(f"/sys/class/net/{PODMAN_BRIDGE}")
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

            async def lifecycle(index: int) -> None:
                attach = Attach(network.name, ports=[Port(port, 80)])
                await client.create(f"life-{index}", spec, network=attach)
                await client.start(f"life-{index}")
                await client.wait(f"life-{index}")
                await client.delete_task(f"life-{index}")
                await client.delete(f"life-{index}")

            async def lcd_run(index: int) -> None:
                await _run(
                    LCD, "--address", daemon.address, "-n", NAMESPACE,
                    "run", "--rm", "--name", f"cli-{index}", "--network", network.name,
                    "-p", f"{port}:80", "--rootfs", str(root), "--", "/bin/true",
                )  # fmt: skip

            async def podman_run(index: int) -> None:
                assert podman is not None
                await _run(
                    *podman, "run", "--rm", *PODMAN_LIMITS, "-p", f"{port}:80",
                    "--rootfs", str(root), "/bin/true",
                )  # fmt: skip

            steps: dict[str, Callable[[int], Awaitable[None]]] = {
                "floor": floor,
                "library": library,
                "create+delete networked": networked,
                "create+delete bare": bare,
                "lifecycle -p (library)": lifecycle,
                "lcd run --rm -p": lcd_run,
            }
            if podman is not None:
                steps["podman run --rm -p"] = podman_run
            for name in steps:
                times.setdefault(name, [])
            for index in range(rounds):
                for name, step in steps.items():
                    started = time.perf_counter()
                    await step(index)
                    times[name].append(time.perf_counter() - started)
            rates = await _throughput(client, spec, network.name)
    finally:
        await service.remove(network.name)
        if podman is not None and not podman_bridge_existed:
            await _run("ip", "link", "delete", PODMAN_BRIDGE)
    medians = medians_ms(times)
    medians["library / floor"] = medians["library"] / medians["floor"]
    if "podman run --rm -p" in medians:
        anchor = medians["podman run --rm -p"]
        medians["lifecycle -p (library) / podman run --rm -p"] = (
            medians["lifecycle -p (library)"] / anchor
        )
        medians["lcd run --rm -p / podman run --rm -p"] = medians["lcd run --rm -p"] / anchor
    medians["network per container (create+delete)"] = (
        medians["create+delete networked"] - medians["create+delete bare"]
    )
    for kind, per_second in rates.items():
        medians[f"lifecycles/s at concurrency {CONCURRENCY}, {kind}"] = per_second
    medians[f"networked / bare lifecycles/s at concurrency {CONCURRENCY}"] = (
        rates["networked"] / rates["bare"]
    )
    return medians


async def _throughput(
    client: AsyncClient, spec: dict[str, object], network: str, rounds: int = 3
) -> dict[str, float]:
    """Lifecycles of /bin/true per second, CONCURRENCY at a time, on ``network`` and without.

    The median of ``rounds`` rounds of THROUGHPUT_LIFECYCLES each, networked
    and bare alternating: what CNI costs a host that starts many containers.
    """
    serial = iter(range(1 << 30))

    async def one(networked: bool, slots: asyncio.Semaphore) -> None:
        container_id = f"rate-{next(serial)}"
        async with slots:
            attach = Attach(network) if networked else None
            await client.create(container_id, spec, network=attach)
            await client.start(container_id)
            await client.wait(container_id)
            await client.delete_task(container_id)
            await client.delete(container_id)

    rates: dict[str, list[float]] = {"networked": [], "bare": []}
    for _ in range(rounds):
        for kind in rates:
            slots = asyncio.Semaphore(CONCURRENCY)
            started = time.perf_counter()
            await asyncio.gather(
                *(one(kind == "networked", slots) for _ in range(THROUGHPUT_LIFECYCLES))
            )
            rates[kind].append(THROUGHPUT_LIFECYCLES / (time.perf_counter() - started))
    return {kind: statistics.median(values) for kind, values in rates.items()}


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
    print_medians(medians, as_json=arguments.json, width=40)


if __name__ == "__main__":
    main()
