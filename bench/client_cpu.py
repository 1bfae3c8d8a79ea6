"""The client's own CPU per operation, and its gRPC calls: ``python -m bench.client_cpu``.

    .venv/bin/python -m bench.client_cpu [--iterations N] [--profile PATH]

Wall-clock time on a shared machine moves by tens of percent; CPU time spent
by this process (``time.process_time``: the event loop, grpc's C-core threads
and the event stream, not containerd) moves much less, and it is what an
optimisation of the client removes. For each step of a lifecycle (create,
start, wait, delete_task, delete) and for pause and resume of a long-running
container, this prints the median CPU microseconds over ``N`` iterations, the
share of the event-loop thread (``time.thread_time``), and the gRPC calls
each step makes (counted by a second client with an interceptor, so the
timed client carries none). It starts its own containerd in a folder under
/tmp and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from libcontainerd import AsyncClient, EventInfo, EventType, Supervisor, oci, rootfs

from .runner import remove_cgroup_parents, remove_workdir
from .systems import _CallCounter, _channels_with

NAMESPACE = "bench-cpu"
STEPS = ("create", "start", "wait", "delete_task", "delete")


class _NoOpBackend:
    async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        return None


async def _timed(
    action: Callable[[], Awaitable[Any]], into: dict[str, list[float]], name: str
) -> None:
    cpu, loop_cpu = time.process_time(), time.thread_time()
    await action()
    into[name].append((time.process_time() - cpu) * 1e6)
    into[f"{name} (loop thread)"].append((time.thread_time() - loop_cpu) * 1e6)


async def _lifecycle(
    client: AsyncClient, container_id: str, root: Path, into: dict[str, list[float]]
) -> None:
    spec = oci.default_spec(["/bin/true"], root)
    steps: dict[str, Callable[[], Awaitable[Any]]] = {
        "create": lambda: client.create(container_id, spec),
        "start": lambda: client.start(container_id),
        "wait": lambda: client.wait(container_id),
        "delete_task": lambda: client.delete_task(container_id),
        "delete": lambda: client.delete(container_id),
    }
    cpu = time.process_time()
    for name in STEPS:
        await _timed(steps[name], into, name)
    # Let the lifecycle's last events arrive, so they are counted in it.
    await asyncio.sleep(0.02)
    into["lifecycle (incl. events after it)"].append((time.process_time() - cpu) * 1e6)


async def _count_calls(address: str, root: Path, long_id: str) -> dict[str, dict[str, int]]:
    counter = _CallCounter()
    counting = AsyncClient(address, namespace=NAMESPACE)
    with _channels_with(counter):
        await counting.open()
    calls: dict[str, dict[str, int]] = {}
    try:
        counter.take()
        container_id = "count-calls"
        spec = oci.default_spec(["/bin/true"], root)
        for name, action in (
            ("create", lambda: counting.create(container_id, spec)),
            ("start", lambda: counting.start(container_id)),
            ("wait", lambda: counting.wait(container_id)),
            ("delete_task", lambda: counting.delete_task(container_id)),
            ("delete", lambda: counting.delete(container_id)),
            ("pause", lambda: counting.pause(long_id)),
            ("resume", lambda: counting.resume(long_id)),
        ):
            await action()
            calls[name] = counter.take()
    finally:
        await counting.close()
    return calls


async def measure(iterations: int, profile: str | None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lcdcpu-", dir="/tmp"))
    supervisor = Supervisor(workdir / "s", workdir / "r")
    results: dict[str, Any] = {"iterations": iterations}
    try:
        root = rootfs.busybox(workdir / "rootfs")
        await supervisor.start()
        async with AsyncClient(
            supervisor.address, namespace=NAMESPACE, backend=_NoOpBackend()
        ) as client:
            long_id = "long-running"
            await client.create(long_id, oci.default_spec(["/bin/sleep", "3600"], root))
            await client.start(long_id)
            try:
                samples: dict[str, list[float]] = {
                    name: []
                    for step in (*STEPS, "pause", "resume")
                    for name in (step, f"{step} (loop thread)")
                }
                samples["lifecycle (incl. events after it)"] = []
                for warm in range(3):
                    await _lifecycle(client, f"warm-{warm}", root, samples)
                for values in samples.values():
                    values.clear()
                profiler = cProfile.Profile() if profile else None
                if profiler is not None:
                    profiler.enable()
                for iteration in range(iterations):
                    await _lifecycle(client, f"cpu-{iteration}", root, samples)
                    await _timed(lambda: client.pause(long_id), samples, "pause")
                    await _timed(lambda: client.resume(long_id), samples, "resume")
                if profiler is not None and profile:
                    profiler.disable()
                    profiler.dump_stats(profile)
                results["cpu_us_median"] = {
                    name: round(statistics.median(values), 1) for name, values in samples.items()
                }
                results["grpc_calls"] = await _count_calls(supervisor.address, root, long_id)
            finally:
                await client.signal_process(long_id, "init", "SIGKILL")
                await client.wait(long_id)
                await client.delete_task(long_id)
                await client.delete(long_id)
    finally:
        await supervisor.stop()
        remove_workdir(workdir)
        remove_cgroup_parents((NAMESPACE,))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--profile", help="write a cProfile of the timed part here")
    options = parser.parse_args(argv)
    result = asyncio.run(measure(options.iterations, options.profile))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
