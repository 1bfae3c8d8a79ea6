"""Benchmarks that need a process of their own: ``python -m bench.inprocess WHAT ...``.

- ``events COUNT``: the event pipeline (protobuf decode of serialized
  Envelopes, :func:`libcontainerd.events.decode`, ordered dispatch through
  :class:`libcontainerd.events.EventDispatcher`), pinned to one core.
- ``memory ADDRESS ROOTFS COUNT LIFECYCLES``: client memory per tracked
  container, and what a finished lifecycle leaves behind.

Each prints one JSON object on stdout. :func:`import_times` runs fresh
interpreters from the runner.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from google.protobuf import any_pb2, timestamp_pb2

from libcontainerd import AsyncClient, EventInfo, EventType, oci
from libcontainerd._api.containerd.api.events import task_pb2 as events_pb2
from libcontainerd._api.containerd.api.services.events.v1 import events_pb2 as service_pb2
from libcontainerd.events import EventDispatcher, decode

# -- event pipeline ---------------------------------------------------------------------


def _event(step: int, container_id: str, serial: int) -> tuple[str, Any]:
    """The ``step``-th event of a container's synthetic life (8 steps, then again)."""
    exec_id = f"exec-{serial}"
    stamp = timestamp_pb2.Timestamp(seconds=1_700_000_000 + serial, nanos=serial % 1_000_000_000)
    events: list[tuple[str, Any]] = [
        ("create", events_pb2.TaskCreate(container_id=container_id, bundle="/run/b", pid=1000)),
        ("start", events_pb2.TaskStart(container_id=container_id, pid=1000)),
        ("exec-added", events_pb2.TaskExecAdded(container_id=container_id, exec_id=exec_id)),
        (
            "exec-started",
            events_pb2.TaskExecStarted(container_id=container_id, exec_id=exec_id, pid=2000),
        ),
        (
            "exit",
            events_pb2.TaskExit(
                container_id=container_id, id=exec_id, pid=2000, exit_status=0, exited_at=stamp
            ),
        ),
        ("paused", events_pb2.TaskPaused(container_id=container_id)),
        ("resumed", events_pb2.TaskResumed(container_id=container_id)),
        (
            "exit",
            events_pb2.TaskExit(
                container_id=container_id, id=container_id, pid=1000, exit_status=3, exited_at=stamp
            ),
        ),
    ]
    return events[step % len(events)]


def synthetic_envelopes(count: int, containers: int = 1000) -> list[bytes]:
    """``count`` serialized task-event Envelopes, containers interleaved as on a busy host."""
    blobs = []
    now = timestamp_pb2.Timestamp(seconds=1_700_000_000)
    for serial in range(count):
        container_id = f"c{serial % containers}"
        topic, message = _event(serial // containers, container_id, serial)
        envelope = service_pb2.Envelope(
            timestamp=now,
            namespace="bench",
            topic=f"/tasks/{topic}",
            event=any_pb2.Any(
                type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString()
            ),
        )
        blobs.append(envelope.SerializeToString())
    return blobs


def _pin_to_one_core() -> int:
    """Run on one core only (the last one allowed); returns it."""
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[-1]})
    return cores[-1]


async def _pipeline(
    blobs: list[bytes], *, plain_handler: bool, dispatch: bool, chunk: int = 64
) -> dict[str, float]:
    handled = 0

    async def handle_async(container_id: str, event: EventType, info: EventInfo) -> None:
        nonlocal handled
        handled += 1

    def handle_plain(container_id: str, event: EventType, info: EventInfo) -> None:
        nonlocal handled
        handled += 1

    dispatcher = EventDispatcher(handle_plain if plain_handler else handle_async)
    from_string = service_pb2.Envelope.FromString
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    # In chunks, yielding between them, as a stream hands over its messages.
    for offset in range(0, len(blobs), chunk):
        for blob in blobs[offset : offset + chunk]:
            decoded = decode(from_string(blob))
            if decoded is not None and dispatch:
                event, info = decoded
                dispatcher.dispatch(info.container_id, event, info)
        await asyncio.sleep(0)
    await dispatcher.drain()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await dispatcher.close()
    if dispatch and handled != len(blobs):
        raise RuntimeError(f"handled {handled} of {len(blobs)} events")
    return {
        "events": len(blobs),
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "events_per_second": len(blobs) / elapsed,
    }


def event_pipeline(count: int) -> dict[str, Any]:
    core = _pin_to_one_core()
    blobs = synthetic_envelopes(count)
    results: dict[str, Any] = {"core": core}
    for name, plain, dispatch in (
        ("decode_only", False, False),
        ("async_backend", False, True),
        ("plain_backend", True, True),
    ):
        runs = [
            asyncio.run(_pipeline(blobs, plain_handler=plain, dispatch=dispatch)) for _ in range(3)
        ]
        best = max(runs, key=lambda run: run["events_per_second"])
        results[name] = {**best, "all_events_per_second": [r["events_per_second"] for r in runs]}
    return results


# -- client memory ----------------------------------------------------------------------


class _NoOpBackend:
    async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        return None


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def lifecycle(client: AsyncClient, container_id: str, spec: Any) -> None:
    """One container through the library: create, start, wait, delete_task, delete."""
    await client.create(container_id, spec)
    await client.start(container_id)
    await client.wait(container_id)
    await client.delete_task(container_id)
    await client.delete(container_id)


async def _in_batches(ids: list[str], action: Any, batch: int = 16) -> None:
    for offset in range(0, len(ids), batch):
        await asyncio.gather(*(action(i) for i in ids[offset : offset + batch]))


async def _memory(address: str, rootfs: str, count: int, lifecycles: int) -> dict[str, Any]:
    spec = oci.default_spec(["/bin/true"], rootfs)
    results: dict[str, Any] = {"containers": count, "lifecycles": lifecycles}
    async with AsyncClient(address, namespace="bench-mem", backend=_NoOpBackend()) as client:

        async def create(container_id: str) -> None:
            await client.create(container_id, spec)

        one_lifecycle = functools.partial(lifecycle, client, spec=spec)
        await _in_batches([f"warm-{i}" for i in range(20)], create)
        await _in_batches([f"warm-{i}" for i in range(20)], client.delete)
        await _in_batches([f"warm-l{i}" for i in range(4)], one_lifecycle, batch=4)

        # Pass 1: resident memory, nothing else running in the process.
        ids = [f"rss-{i}" for i in range(count)]
        gc.collect()
        before = _rss()
        await _in_batches(ids, create)
        gc.collect()
        results["rss_bytes_per_container"] = (_rss() - before) / count
        await _in_batches(ids, client.delete)

        # Pass 2: what Python allocates and keeps per container (tracemalloc).
        ids = [f"tm-{i}" for i in range(count)]
        gc.collect()
        tracemalloc.start(1)
        base = tracemalloc.get_traced_memory()[0]
        await _in_batches(ids, create)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        snapshot = tracemalloc.take_snapshot()
        await _in_batches(ids, client.delete)
        gc.collect()
        after_delete = tracemalloc.get_traced_memory()[0] - base
        results["traced_bytes_per_container"] = held / count
        results["traced_bytes_left_after_delete_per_container"] = after_delete / count
        results["top_allocations"] = [
            f"{stat.traceback[0].filename.split('site-packages/')[-1]}:"
            f"{stat.traceback[0].lineno} {stat.size} B in {stat.count}"
            for stat in snapshot.statistics("lineno")[:8]
        ]

        # Pass 3: what each finished lifecycle leaves behind in a long-lived client.
        if lifecycles:
            base = tracemalloc.get_traced_memory()[0]
            await _in_batches([f"life-{i}" for i in range(lifecycles)], one_lifecycle, batch=4)
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - base
            results["traced_bytes_kept_per_finished_lifecycle"] = kept / lifecycles
        tracemalloc.stop()
    return results


def memory(address: str, rootfs: str, count: int, lifecycles: int) -> dict[str, Any]:
    return asyncio.run(_memory(address, rootfs, count, lifecycles))


# -- import time ------------------------------------------------------------------------

_IMPORT_PROBE = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


def import_times(runs: int) -> dict[str, Any]:
    """Import time of libcontainerd and grpc in fresh interpreters, interleaved.

    As a user's machine has them: with bytecode caches (pip writes grpc's at
    install; an unset ``PYTHONDONTWRITEBYTECODE`` and a first import write ours).
    """
    environment = {
        key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"
    }
    subprocess.run([sys.executable, "-c", "import libcontainerd"], check=True, env=environment)
    samples: dict[str, list[float]] = {"libcontainerd": [], "grpc": []}
    for _ in range(runs):
        for module in samples:
            done = subprocess.run(
                [sys.executable, "-c", _IMPORT_PROBE.format(module=module)],
                capture_output=True,
                text=True,
                check=True,
                env=environment,
            )
            samples[module].append(float(done.stdout))
    # Where the time goes, by top-level package (one run, -X importtime).
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import libcontainerd"],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    cumulative: dict[str, int] = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 1:
            cumulative[name.strip()] = max(cumulative.get(name.strip(), 0), int(parts[1]))
    heaviest = sorted(cumulative.items(), key=lambda item: -item[1])[:12]
    return {
        "samples": samples,
        "median": {module: statistics.median(values) for module, values in samples.items()},
        "heaviest_us": dict(heaviest),
    }


def main(argv: list[str]) -> int:
    what, *args = argv
    if what == "events":
        result = event_pipeline(int(args[0]))
    elif what == "memory":
        result = memory(args[0], args[1], int(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown benchmark {what!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
