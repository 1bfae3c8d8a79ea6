"""The measurements behind RESULTS.md's proposals: each one A/B, in one run.

    .venv/bin/python -m bench.experiments [--iterations N] [--json PATH]

Every variant ("B") is built here, beside the library, from the library's own
pieces; nothing in ``src/`` changes. What each measures:

- ``delete_without_task_get``: a lifecycle whose last step sends
  Containers.Delete alone, against the library's ``delete()`` (Tasks.Get
  first, to refuse a container that still has a task).
- ``create_spec_work``: the Python work ``create()`` does on a spec (build,
  validate, deep copy, JSON) per container, and a shallow copy instead.
- ``grpc_call_cpu``: CPU per unary call, grpc.aio against grpcio's blocking
  channel, the floor under every method of an asyncio client.
- ``plain_backend_dispatch``: events/s through ``EventDispatcher`` with a plain
  (threaded) handler, against its former path (``asyncio.to_thread`` per
  container batch) and one thread per shard of containers fed by a queue.
- ``missing_task_probe_cpu``: CPU to learn that a container has no task, by a
  failing Tasks.Get (what ``delete()`` does) or by a filtered Tasks.List.
- ``stream_and_idle_cpu``: CPU per lifecycle with the event stream on and off,
  and the CPU an open, idle client burns per second.
- ``pause_resume_split``: pause+resume by the Go client and by ours on the
  same container, and by ours with its event stream on and off.
- ``import_lazy``: ``import libcontainerd`` with a lazy ``__init__`` (PEP 562)
  built in a temporary copy of the package.
- ``bare_grpc_lifecycle_cpu``: CPU per lifecycle by the library against the
  same five calls and an event subscription made on bare grpc.aio (the exit
  awaited from the stream, nothing else done with events), each side alone
  with its own subscription, in alternating blocks of 10: what the library
  adds to grpc.aio's own cost.
- ``grpc_experiments``: ours (in child processes, one per round and variant)
  with grpc's defaults and with ``GRPC_EXPERIMENTS=-event_engine_client``
  (grpc core's TCP client on its older iomgr path instead of the EventEngine
  one), against the Go client in the same rounds: CPU per lifecycle, lifecycle
  and pause+resume wall time.
- ``lifecycle_cpu_split``: where the CPU of a lifecycle goes, at concurrency
  1 and 4: this client, containerd itself, the shims and runc commands it
  starts (a cpuacct cgroup holds the daemon and so its descendants), and
  runc's work inside the containers' cgroups.
- ``seccomp_lifecycle``: lifecycle wall time with the default seccomp profile
  (``oci.default_spec``) and without one (``oci.with_seccomp(None)``),
  interleaved, with the ratio's 90 % interval (the target: <= 1.05x).
- ``shim_groups_throughput``: lifecycles/s at concurrency 4 with no shim
  group, one group, and one group per worker (each group kept alive by a
  sleeping container), with the CPU per lifecycle of all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import functools
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf import empty_pb2

from libcontainerd import AsyncClient, Supervisor, oci, rootfs
from libcontainerd import _typeurl as typeurl
from libcontainerd._api.containerd.api.events import task_pb2 as task_events_pb2
from libcontainerd._api.containerd.api.services.containers.v1 import containers_pb2
from libcontainerd._api.containerd.api.services.events.v1 import events_pb2 as service_pb2
from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
from libcontainerd._api.containerd.api.services.version.v1 import version_pb2
from libcontainerd._tasks import RUNC_RUNTIME, runc_options
from libcontainerd.events import EventDispatcher, decode, subscription_filter

from .inprocess import _pin_to_one_core, synthetic_envelopes
from .inprocess import lifecycle as library_lifecycle
from .measure import ratio, ratio_interval, summarize
from .runner import remove_cgroup_parents, remove_workdir
from .systems import SLEEP, Env

REPO = Path(__file__).resolve().parent.parent
VERSION = "/containerd.services.version.v1.Version/Version"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- delete() without its Tasks.Get -------------------------------------------------------


async def delete_without_task_get(address: str, root: Path, iterations: int) -> dict[str, Any]:
    spec_args = ["/bin/true"]
    async with AsyncClient(address, namespace="bench-exp") as client:

        async def lifecycle(container_id: str, lean: bool) -> None:
            await client.create(container_id, oci.default_spec(spec_args, root))
            await client.start(container_id)
            await client.wait(container_id)
            await client.delete_task(container_id)
            if lean:
                await client._session.call(
                    client._session.methods.containers.delete,
                    containers_pb2.DeleteContainerRequest(id=container_id),
                    "delete",
                )
            else:
                await client.delete(container_id)

        wall: dict[str, list[float]] = {"library": [], "without_get": []}
        cpu: dict[str, float] = {"library": 0.0, "without_get": 0.0}
        for iteration in range(iterations + 3):
            order = ("library", "without_get") if iteration % 2 else ("without_get", "library")
            for variant in order:
                started, cpu_started = time.perf_counter(), _cpu()
                await lifecycle(f"x-{variant}-{iteration}", variant == "without_get")
                if iteration >= 3:
                    wall[variant].append(time.perf_counter() - started)
                    cpu[variant] += _cpu() - cpu_started
    return {
        "wall": {variant: summarize(values) for variant, values in wall.items()},
        "cpu_per_lifecycle": {variant: total / iterations for variant, total in cpu.items()},
    }


async def seccomp_lifecycle(address: str, root: Path, iterations: int) -> dict[str, Any]:
    """Lifecycle wall time with the default seccomp profile and unconfined, interleaved."""
    specs = {
        "default_profile": oci.default_spec(["/bin/true"], root),
        "unconfined": oci.default_spec(["/bin/true"], root, oci.with_seccomp(None)),
    }
    wall: dict[str, list[float]] = {variant: [] for variant in specs}
    async with AsyncClient(address, namespace="bench-exp-seccomp") as client:
        for iteration in range(iterations + 3):
            order = list(specs) if iteration % 2 else list(reversed(specs))
            for variant in order:
                started = time.perf_counter()
                await library_lifecycle(client, f"sc-{variant}-{iteration}", specs[variant])
                if iteration >= 3:
                    wall[variant].append(time.perf_counter() - started)
    pairs = list(zip(wall["default_profile"], wall["unconfined"], strict=True))
    return {
        "wall": {variant: summarize(values) for variant, values in wall.items()},
        "ratio": ratio(
            statistics.median(wall["default_profile"]), statistics.median(wall["unconfined"])
        ),
        "ratio_interval_90": ratio_interval(pairs),
    }


# -- what the event stream and an idle channel cost ----------------------------------------------


async def stream_and_idle_cpu(address: str, root: Path, iterations: int) -> dict[str, Any]:
    """CPU per lifecycle with the client's event stream on and off; CPU of an idle open client."""
    results: dict[str, Any] = {}
    async with AsyncClient(address, namespace="bench-exp-idle") as client:
        started, cpu_started = time.perf_counter(), _cpu()
        await asyncio.sleep(3)
        results["idle_open_client_cpu_ms_per_s"] = (
            (_cpu() - cpu_started) / (time.perf_counter() - started) * 1e3
        )
    cpu: dict[str, float] = {}
    for variant in ("stream_on", "stream_off"):
        async with AsyncClient(address, namespace=f"bench-exp-{variant}") as client:
            if variant == "stream_off":
                await client._session.stream.close()  # type: ignore[union-attr]
            spec = oci.default_spec(["/bin/true"], root)
            await library_lifecycle(client, f"warm-{variant}", spec)
            cpu_started = _cpu()
            for iteration in range(iterations):
                await library_lifecycle(client, f"{variant}-{iteration}", spec)
            cpu[variant] = (_cpu() - cpu_started) / iterations
    results["cpu_per_lifecycle"] = cpu
    return results


class _BareLifecycle:
    """A lifecycle on bare grpc.aio: the library's five calls, its exit from an event stream."""

    def __init__(self, channel: grpc.aio.Channel, address: str, namespace: str, spec: Any) -> None:
        def unary(path: str, request: Any, response: Any) -> Any:
            return channel.unary_unary(
                path,
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        containers, tasks = (
            "/containerd.services.containers.v1.Containers",
            ("/containerd.services.tasks.v1.Tasks"),
        )
        self.container_create = unary(
            f"{containers}/Create",
            containers_pb2.CreateContainerRequest,
            containers_pb2.CreateContainerResponse,
        )
        self.container_delete = unary(
            f"{containers}/Delete", containers_pb2.DeleteContainerRequest, empty_pb2.Empty
        )
        self.task_create = unary(
            f"{tasks}/Create", tasks_pb2.CreateTaskRequest, tasks_pb2.CreateTaskResponse
        )
        self.task_start = unary(f"{tasks}/Start", tasks_pb2.StartRequest, tasks_pb2.StartResponse)
        self.task_delete = unary(
            f"{tasks}/Delete", tasks_pb2.DeleteTaskRequest, tasks_pb2.DeleteResponse
        )
        self.subscribe = channel.unary_stream(
            "/containerd.services.events.v1.Events/Subscribe",
            request_serializer=service_pb2.SubscribeRequest.SerializeToString,
            response_deserializer=service_pb2.Envelope.FromString,
        )
        self.namespace, self.spec = namespace, spec
        self.metadata = (("containerd-namespace", namespace),)
        self.options = typeurl.pack(
            runc_options(None, os.path.join(os.path.dirname(address), "runc"))
        )
        self.exits: dict[str, asyncio.Future[int]] = {}

    async def listen(self) -> None:
        request = service_pb2.SubscribeRequest(filters=[subscription_filter(self.namespace)])
        async for envelope in self.subscribe(request, metadata=self.metadata):
            if envelope.event.type_url.endswith("TaskExit"):
                exit_event = task_events_pb2.TaskExit.FromString(envelope.event.value)
                waiter = self.exits.get(exit_event.container_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(exit_event.exit_status)

    async def __call__(self, container_id: str) -> None:
        document = dict(self.spec)
        document["linux"] = dict(document["linux"], cgroupsPath=f"/{self.namespace}/{container_id}")
        container = containers_pb2.Container(
            id=container_id,
            spec=typeurl.pack_json(typeurl.OCI_SPEC, document),
            runtime=containers_pb2.Container.Runtime(name=RUNC_RUNTIME, options=self.options),
        )
        metadata = self.metadata
        await self.container_create(
            containers_pb2.CreateContainerRequest(container=container), metadata=metadata
        )
        self.exits[container_id] = asyncio.get_running_loop().create_future()
        try:
            await self.task_create(
                tasks_pb2.CreateTaskRequest(container_id=container_id), metadata=metadata
            )
            await self.task_start(
                tasks_pb2.StartRequest(container_id=container_id), metadata=metadata
            )
            async with asyncio.timeout(30):
                await self.exits[container_id]
        finally:
            del self.exits[container_id]
        await self.task_delete(
            tasks_pb2.DeleteTaskRequest(container_id=container_id), metadata=metadata
        )
        await self.container_delete(
            containers_pb2.DeleteContainerRequest(id=container_id), metadata=metadata
        )


async def bare_grpc_lifecycle_cpu(address: str, root: Path, blocks: int) -> dict[str, Any]:
    """CPU per lifecycle: the library against the same calls and stream on bare grpc.aio."""
    namespace = "bench-exp-bare"
    spec = oci.default_spec(["/bin/true"], root)
    cpu: dict[str, list[float]] = {"library": [], "bare_grpc_aio": []}
    count = 0
    async with grpc.aio.insecure_channel(f"unix:{address}") as channel:
        bare = _BareLifecycle(channel, address, namespace, spec)
        for block in range(blocks + 1):  # the first block warms up
            order = ("library", "bare_grpc_aio") if block % 2 else ("bare_grpc_aio", "library")
            for variant in order:
                lifecycle: Callable[[str], Awaitable[None]]
                async with contextlib.AsyncExitStack() as stack:
                    if variant == "library":
                        client = await stack.enter_async_context(
                            AsyncClient(address, namespace=namespace)
                        )

                        lifecycle = functools.partial(library_lifecycle, client, spec=spec)

                    else:
                        listener = asyncio.create_task(bare.listen())
                        stack.push_async_callback(_cancelled, listener)
                        await asyncio.sleep(0.3)  # subscribed
                        lifecycle = bare
                    for _ in range(10):
                        count += 1
                        cpu_started = _cpu()
                        await lifecycle(f"bare-{count}")
                        await asyncio.sleep(0.02)  # the lifecycle's last events arrive
                        if block:
                            cpu[variant].append((_cpu() - cpu_started) * 1e6)
    medians = {variant: statistics.median(values) for variant, values in cpu.items()}
    return {
        "cpu_us_per_lifecycle": {variant: summarize(values) for variant, values in cpu.items()},
        "library_over_bare": medians["library"] / medians["bare_grpc_aio"],
    }


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
        await task


async def missing_task_probe_cpu(address: str, calls: int) -> dict[str, float]:
    """CPU per call to learn that a container has no task: a failing Tasks.Get, or Tasks.List."""
    from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
    from libcontainerd.errors import NotFound

    results: dict[str, list[float]] = {"tasks_get_not_found": [], "tasks_list_filtered": []}
    async with AsyncClient(address, namespace="bench-exp-probe") as client:
        rpc = client._session.methods
        list_tasks = rpc.tasks.list
        metadata = (("containerd-namespace", "bench-exp-probe"),)
        block = 100
        for _ in range(max(calls // block, 1)):
            started = _cpu()
            for _ in range(block):
                with contextlib.suppress(NotFound):
                    await client._session.call(
                        rpc.tasks.get, tasks_pb2.GetRequest(container_id="absent"), "probe"
                    )
            results["tasks_get_not_found"].append((_cpu() - started) / block * 1e6)
            started = _cpu()
            for _ in range(block):
                await list_tasks(
                    tasks_pb2.ListTasksRequest(filter='id=="absent"'), metadata=metadata
                )
            results["tasks_list_filtered"].append((_cpu() - started) / block * 1e6)
    return {f"{kind}_cpu_us": statistics.median(values) for kind, values in results.items()}


# -- pause+resume: the client or the container? -------------------------------------------------


async def pause_resume_split(env: Any, iterations: int) -> dict[str, Any]:
    """pause+resume by the Go client and by ours on the Go program's own container, and by ours
    on its own container with its event stream on and off: what makes ours slower?"""
    from .provision import GO_BINARY
    from .systems import GoClient

    if not GO_BINARY.exists():
        return {"skipped": "the Go client is not built (run bench/run once)"}
    go = GoClient(env, GO_BINARY, namespace="bench-exp-go")
    await go.start()
    clients: dict[str, AsyncClient] = {}
    try:
        on_go = clients["on_go"] = AsyncClient(env.address, namespace="bench-exp-go")
        await on_go.open()
        for variant in ("stream_on", "stream_off"):
            client = clients[variant] = AsyncClient(env.address, namespace=f"bench-exp-{variant}")
            await client.open()
            if variant == "stream_off":
                await client._session.stream.close()  # type: ignore[union-attr]
            await client.create("p", oci.default_spec(SLEEP, env.rootfs))
            await client.start("p")

        async def ours(client: AsyncClient, container_id: str) -> float:
            started = time.perf_counter()
            await client.pause(container_id)
            await client.resume(container_id)
            return time.perf_counter() - started

        variants: dict[str, Callable[[], Awaitable[float]]] = {
            "go_client_on_go_container": go.pause_resume,
            "ours_on_go_container": lambda: ours(on_go, go.long_id),
            "ours_on_ours_stream_on": lambda: ours(clients["stream_on"], "p"),
            "ours_on_ours_stream_off": lambda: ours(clients["stream_off"], "p"),
        }
        samples: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for iteration in range(iterations + 5):
            for name in names[iteration % 4 :] + names[: iteration % 4]:
                elapsed = await variants[name]()
                if iteration >= 5:
                    samples[name].append(elapsed)
        return {name: summarize(values) for name, values in samples.items()}
    finally:
        for variant in ("stream_on", "stream_off"):
            made = clients.get(variant)
            if made is None:
                continue
            with contextlib.suppress(Exception):
                await made.signal_process("p", "init", "SIGKILL")
                await made.wait("p")
                await made.delete_task("p")
                await made.delete("p")
        for client in clients.values():
            await client.close()
        await go.close()


# -- grpc core's experiments: a lever of the process, not of the library -----------------------

# grpc reads GRPC_EXPERIMENTS once per process, so each variant runs in a child of its own.
GRPC_VARIANTS = {"grpc_defaults": "", "no_event_engine_client": "-event_engine_client"}


async def grpc_experiments(env: Env, rounds: int, count: int) -> dict[str, Any]:
    """Ours with and without grpc's EventEngine TCP client, against the Go client, per round."""
    from .provision import GO_BINARY
    from .systems import GoClient

    samples: dict[str, dict[str, list[float]]] = {}
    go = GoClient(env, GO_BINARY, namespace="bench-exp-go") if GO_BINARY.exists() else None
    try:
        if go is not None:
            await go.start()
        for round_ in range(rounds):
            names = list(GRPC_VARIANTS) + (["go"] if go else [])
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                if name == "go":
                    assert go is not None
                    figures = await _client_figures(go, count)
                else:
                    figures = await _ours_in_child(env, name, count)
                for key, value in figures.items():
                    samples.setdefault(name, {}).setdefault(key, []).append(value)
    finally:
        if go is not None:
            await go.close()
    medians = {
        name: {key: statistics.median(values) for key, values in figures.items()}
        for name, figures in samples.items()
    }
    result: dict[str, Any] = {"rounds": rounds, "per_round": samples, "median_of_rounds": medians}
    if "go" in medians:
        result["ratio_to_go"] = {
            name: {key: value / medians["go"][key] for key, value in figures.items()}
            for name, figures in medians.items()
            if name != "go"
        }
    return result


async def _client_figures(system: Any, count: int) -> dict[str, float]:
    """Medians in ms: CPU per lifecycle, lifecycle, pause+resume (after warm-up)."""
    for _ in range(3):
        await system.lifecycle()
    cpu = await system.cpu_per_lifecycle(count)
    lifecycles = [await system.lifecycle() for _ in range(count)]
    pause_resume = []
    for _ in range(count):
        await asyncio.sleep(0.02)  # a lifecycle's steps are about that far apart
        pause_resume.append(await system.pause_resume())
    return {
        "cpu_per_lifecycle_ms": cpu * 1e3,
        "lifecycle_ms": statistics.median(lifecycles) * 1e3,
        "pause_resume_ms": statistics.median(pause_resume) * 1e3,
    }


async def _ours_in_child(env: Env, variant: str, count: int) -> dict[str, float]:
    request = {
        "address": env.address,
        "rootfs": str(env.rootfs),
        "workdir": str(env.workdir),
        "variant": variant,
        "count": count,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.experiments",
        "--ours-child",
        json.dumps(request),
        cwd=REPO,
        env=dict(os.environ, GRPC_EXPERIMENTS=GRPC_VARIANTS[variant]),
        stdout=subprocess.PIPE,
    )
    output, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the {variant} child failed (exit status {child.returncode})")
    figures: dict[str, float] = json.loads(output)
    return figures


async def _ours_child(request: dict[str, Any]) -> dict[str, float]:
    from .systems import Ours

    env = Env(Path(request["workdir"]), request["address"], Path(request["rootfs"]))
    ours = Ours(env, namespace=f"bench-exp-{request['variant']}")
    try:
        await ours.start()
        return await _client_figures(ours, request["count"])
    finally:
        await ours.close()


# -- where a lifecycle's CPU goes, and sharded shim groups -----------------------------------

_DAEMON_CGROUP = "bench-exp-daemon"


def _cgroup_cpu(name: str) -> float:
    """CPU seconds charged to cgroup ``name`` and its children (cgroup v1 cpuacct, or v2)."""
    v1 = Path("/sys/fs/cgroup/cpuacct") / name / "cpuacct.usage"
    if v1.exists():
        return int(v1.read_text()) / 1e9
    v2 = Path("/sys/fs/cgroup") / name / "cpu.stat"
    if v2.exists():
        for line in v2.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    return 0.0


def _daemon_into_cgroup(supervisor: Supervisor) -> int:
    """Move containerd into a cgroup of its own: the shims and runc commands it starts follow."""
    pid = int(Path(supervisor.pid_file).read_text())
    v1 = Path("/sys/fs/cgroup/cpuacct")
    folder = (v1 if v1.is_dir() else Path("/sys/fs/cgroup")) / _DAEMON_CGROUP
    folder.mkdir(exist_ok=True)
    (folder / "cgroup.procs").write_text(str(pid))
    return pid


def _own_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` itself (all its threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _lifecycles(client: AsyncClient, specs: list[Any], count: int, prefix: str) -> None:
    """``count`` lifecycles by ``len(specs)`` workers, worker ``w`` using ``specs[w]``."""
    left = list(range(count))

    async def worker(spec: Any) -> None:
        while left:
            await library_lifecycle(client, f"{prefix}-{left.pop()}", spec)

    await asyncio.gather(*(worker(spec) for spec in specs))


async def lifecycle_cpu_split(
    env: Env, supervisor: Supervisor, count: int, rounds: int = 3
) -> dict[str, Any]:
    """CPU ms per lifecycle, ours and the Go client's: the client, containerd, the shims and
    runc commands, and runc's work inside the containers, at concurrency 1 and 4 (medians of
    ``rounds`` alternating rounds)."""
    from .provision import GO_BINARY
    from .systems import GoClient, Ours

    daemon = _daemon_into_cgroup(supervisor)
    ours = Ours(env, namespace="bench-exp-split")
    systems: list[Any] = [ours]
    if GO_BINARY.exists():
        systems.append(GoClient(env, GO_BINARY, namespace="bench-exp-go"))
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    try:
        for system in systems:
            await system.start()
            await system.throughput(3, 1)  # warm-up
        for round_, concurrency in itertools.product(range(rounds), (1, 4)):
            for system in systems if round_ % 2 else systems[::-1]:
                client_pid = os.getpid() if system is ours else system.process.pid
                await asyncio.sleep(0.5)  # the last lifecycle's events are handled

                def now(system: Any = system, client_pid: int = client_pid) -> tuple[float, ...]:
                    return (
                        _own_cpu(client_pid),
                        _own_cpu(daemon),
                        _cgroup_cpu(_DAEMON_CGROUP),
                        _cgroup_cpu(system.namespace),
                    )

                before = now()
                seconds, _ = await system.throughput(count, concurrency)
                await asyncio.sleep(0.5)
                client_ms, containerd_ms, daemon_ms, inside_ms = (
                    (late - early) * 1e3 / count for late, early in zip(now(), before, strict=True)
                )
                figures = {
                    "client_ms": client_ms,
                    "containerd_ms": containerd_ms,
                    "shims_and_runc_commands_ms": daemon_ms - containerd_ms,
                    "inside_container_cgroups_ms": inside_ms,
                    "total_ms": client_ms + daemon_ms + inside_ms,
                    "lifecycles_per_second": count / seconds,
                }
                level = samples.setdefault(f"concurrency_{concurrency}", {})
                for key, value in figures.items():
                    level.setdefault(system.name, {}).setdefault(key, []).append(value)
    finally:
        for system in systems:
            await system.close()
    return {
        "rounds": rounds,
        "lifecycles_per_round": count,
        "median": {
            level: {
                name: {key: statistics.median(values) for key, values in figures.items()}
                for name, figures in by_system.items()
            }
            for level, by_system in samples.items()
        },
        "per_round": samples,
    }


async def shim_groups_throughput(
    supervisor: Supervisor, root: Path, count: int, rounds: int, concurrency: int = 4
) -> dict[str, Any]:
    """lifecycles/s and CPU per lifecycle with no group, one group, one group per worker."""
    namespace = "bench-exp-groups"
    _daemon_into_cgroup(supervisor)
    variants = {"no_group": 0, "one_group": 1, "group_per_worker": concurrency}
    samples: dict[str, dict[str, list[float]]] = {
        name: {"lifecycles_per_second": [], "cpu_ms_per_lifecycle": []} for name in variants
    }
    async with AsyncClient(supervisor.address, namespace=namespace) as client:
        await _lifecycles(client, [oci.default_spec(["/bin/true"], root)], 3, "warm")
        for round_ in range(rounds):
            names = list(variants)
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                groups = [f"{name}-{round_}-{g}".replace("_", "-") for g in range(variants[name])]
                keepers = [f"keep-{group}" for group in groups]
                try:
                    for group, keeper in zip(groups, keepers, strict=True):
                        await client.create(
                            keeper, oci.default_spec(SLEEP, root, oci.with_shim_group(group))
                        )
                        await client.start(keeper)
                    specs = [
                        oci.default_spec(
                            ["/bin/true"], root, oci.with_shim_group(groups[w % len(groups)])
                        )
                        if groups
                        else oci.default_spec(["/bin/true"], root)
                        for w in range(concurrency)
                    ]
                    cpu_before = _cpu() + _cgroup_cpu(_DAEMON_CGROUP) + _cgroup_cpu(namespace)
                    started = time.perf_counter()
                    await _lifecycles(client, specs, count, f"{name}-{round_}")
                    elapsed = time.perf_counter() - started
                    cpu = _cpu() + _cgroup_cpu(_DAEMON_CGROUP) + _cgroup_cpu(namespace) - cpu_before
                    samples[name]["lifecycles_per_second"].append(count / elapsed)
                    samples[name]["cpu_ms_per_lifecycle"].append(cpu * 1e3 / count)
                finally:
                    for keeper in keepers:  # the containers survive containerd's stop: remove them
                        with contextlib.suppress(Exception):
                            await client.signal_process(keeper, "init", "SIGKILL")
                            await client.wait(keeper)
                        with contextlib.suppress(Exception):
                            await client.delete_task(keeper)
                        with contextlib.suppress(Exception):
                            await client.delete(keeper)
    return {
        "concurrency": concurrency,
        "lifecycles_per_round": count,
        "per_round": samples,
        "median": {
            name: {key: statistics.median(values) for key, values in figures.items()}
            for name, figures in samples.items()
        },
    }


# -- create()'s work on the spec ---------------------------------------------------------------


def create_spec_work(root: Path, rounds: int = 2000) -> dict[str, float]:
    """Microseconds per container for each step create() (and its caller) does on a spec."""
    spec = oci.default_spec(["/bin/true"], root)

    def per_call(action: Any) -> float:
        started = time.perf_counter()
        for _ in range(rounds):
            action()
        return (time.perf_counter() - started) / rounds * 1e6

    def shallow() -> dict[str, Any]:
        document = dict(spec)
        document["linux"] = dict(document.get("linux", {}))
        return document

    return {
        "default_spec_us": per_call(lambda: oci.default_spec(["/bin/true"], root)),
        "validate_spec_us": per_call(lambda: oci.validate_spec(spec)),
        "deepcopy_us": per_call(lambda: copy.deepcopy(dict(spec))),
        "shallow_copy_us": per_call(shallow),
        "pack_json_us": per_call(lambda: typeurl.pack_json(typeurl.OCI_SPEC, spec)),
    }


# -- CPU of one unary call ------------------------------------------------------------------------


async def grpc_call_cpu(address: str, calls: int) -> dict[str, float]:
    """CPU microseconds (all threads of this process) per Version call, aio against blocking."""
    target = f"unix://{address}"
    results: dict[str, list[float]] = {"aio": [], "blocking": []}
    async with grpc.aio.insecure_channel(target) as aio_channel:
        aio_call = aio_channel.unary_unary(
            VERSION,
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=version_pb2.VersionResponse.FromString,
        )
        with grpc.insecure_channel(target) as channel:
            blocking_call = channel.unary_unary(
                VERSION,
                request_serializer=empty_pb2.Empty.SerializeToString,
                response_deserializer=version_pb2.VersionResponse.FromString,
            )
            await aio_call(empty_pb2.Empty())
            blocking_call(empty_pb2.Empty())
            block = 100
            for _ in range(max(calls // block, 1)):
                started = _cpu()
                for _ in range(block):
                    await aio_call(empty_pb2.Empty())
                results["aio"].append((_cpu() - started) / block * 1e6)
                started = _cpu()
                for _ in range(block):
                    blocking_call(empty_pb2.Empty())
                results["blocking"].append((_cpu() - started) / block * 1e6)
    return {f"{kind}_cpu_us_per_call": statistics.median(v) for kind, v in results.items()}


# -- plain-backend dispatch ------------------------------------------------------------------------


class _ToThreadDispatcher:
    """The former plain-handler path: one ``asyncio.to_thread`` hop per container batch."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler
        self._queues: dict[str, collections.deque[Any]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def dispatch(self, container_id: str, event: Any, info: Any) -> None:
        queue = self._queues.setdefault(container_id, collections.deque())
        queue.append((event, info))
        if container_id not in self._workers:
            self._workers[container_id] = asyncio.get_running_loop().create_task(
                self._work(container_id, queue)
            )

    async def _work(self, container_id: str, queue: collections.deque[Any]) -> None:
        try:
            while queue:
                batch = list(queue)
                queue.clear()
                await asyncio.to_thread(self._deliver, container_id, batch)
        finally:
            del self._workers[container_id]
            if not queue:
                self._queues.pop(container_id, None)

    def _deliver(self, container_id: str, batch: list[Any]) -> None:
        for event, info in batch:
            self._handler(container_id, event, info)

    async def drain(self) -> None:
        while self._workers:
            await asyncio.gather(*self._workers.values())

    async def close(self) -> None:
        await self.drain()


class _ShardedDispatcher:
    """The variant: one thread per shard of containers, fed by a SimpleQueue (no future per event).

    Order per container holds (one shard, one FIFO); a slow handler delays the
    containers of its own shard, which the contract does not allow as it is.
    """

    def __init__(self, handler: Any, shards: int = 4) -> None:
        import queue
        import threading

        self._handler = handler
        self._queues: list[Any] = [queue.Queue() for _ in range(shards)]
        self._threads = [
            threading.Thread(target=self._run, args=(q,), daemon=True) for q in self._queues
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, queue: Any) -> None:
        while True:
            item = queue.get()
            if item is None:
                queue.task_done()
                return
            self._handler(*item)
            queue.task_done()

    def dispatch(self, container_id: str, event: Any, info: Any) -> None:
        self._queues[hash(container_id) % len(self._queues)].put((container_id, event, info))

    async def drain(self) -> None:
        for queue in self._queues:
            await asyncio.to_thread(queue.join)

    async def close(self) -> None:
        for queue in self._queues:
            queue.put(None)
        for thread in self._threads:
            await asyncio.to_thread(thread.join)


async def _dispatch_rate(blobs: list[bytes], kind: Any) -> float:
    handled = 0

    def handler(container_id: str, event: Any, info: Any) -> None:
        nonlocal handled
        handled += 1

    dispatcher = kind(handler)
    started = time.perf_counter()
    for offset in range(0, len(blobs), 64):
        for blob in blobs[offset : offset + 64]:
            decoded = decode(service_pb2.Envelope.FromString(blob))
            if decoded is not None:
                dispatcher.dispatch(decoded[1].container_id, *decoded)
        await asyncio.sleep(0)
    await dispatcher.drain()
    elapsed = time.perf_counter() - started
    await dispatcher.close()
    assert handled == len(blobs)
    return len(blobs) / elapsed


def plain_backend_dispatch(count: int) -> dict[str, Any]:
    """Run in a child pinned to one core, like the event-pipeline benchmark."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.experiments", "--dispatch-child", str(count)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _dispatch_child(count: int) -> dict[str, Any]:
    _pin_to_one_core()
    blobs = synthetic_envelopes(count)
    rates: dict[str, list[float]] = {"to_thread": [], "library": [], "sharded_threads": []}
    for _ in range(3):
        rates["to_thread"].append(asyncio.run(_dispatch_rate(blobs, _ToThreadDispatcher)))
        rates["library"].append(asyncio.run(_dispatch_rate(blobs, EventDispatcher)))
        rates["sharded_threads"].append(asyncio.run(_dispatch_rate(blobs, _ShardedDispatcher)))
    return {f"{kind}_events_per_second": max(values) for kind, values in rates.items()}


# -- a lazy __init__ ------------------------------------------------------------------------------

_LAZY_INIT = '''"""libcontainerd (experiment: the public names, loaded on first use)."""
import importlib
from .errors import (AlreadyExists, Cancelled, CheckpointUnsupported, DeadlineExceeded,
    FailedPrecondition, InvalidArgument, LibcontainerdError, NotFound, NotImplemented,
    Unavailable)
from .types import INIT_PROCESS_ID, Backend, EventInfo, EventType, ProcessSummary, Status, Version
_WHERE = {"AsyncClient": "client", "EventSubscription": "client", "DEFAULT_ADDRESS": "client",
          "DEFAULT_NAMESPACE": "client", "Client": "sync", "EventIterator": "sync",
          "Supervisor": "supervisor", "oci": None, "rootfs": None}
def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(name)
    module = importlib.import_module("." + (_WHERE[name] or name), __name__)
    value = module if _WHERE[name] is None else getattr(module, name)
    globals()[name] = value
    return value
'''


def import_lazy(runs: int) -> dict[str, Any]:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="lcd-import-") as folder:
        lazy = Path(folder) / "lazy"
        shutil.copytree(
            REPO / "src" / "libcontainerd",
            lazy / "libcontainerd",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        (lazy / "libcontainerd" / "__init__.py").write_text(_LAZY_INIT)
        probes = {
            "grpc": ("", "import grpc"),
            "library": ("", "import libcontainerd"),
            "library_AsyncClient": ("", "from libcontainerd import AsyncClient"),
            "lazy": (str(lazy), "import libcontainerd"),
            "lazy_AsyncClient": (str(lazy), "from libcontainerd import AsyncClient"),
        }
        for path, statement in probes.values():  # write the bytecode caches first
            subprocess.run(
                [sys.executable, "-c", statement],
                check=True,
                env={**environment, "PYTHONPATH": path},
            )
        samples: dict[str, list[float]] = {name: [] for name in probes}
        for _ in range(runs):
            for name, (path, statement) in probes.items():
                probe = (
                    f"import time; s = time.perf_counter(); {statement}; "
                    "print(time.perf_counter() - s)"
                )
                done = subprocess.run(
                    [sys.executable, "-c", probe],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**environment, "PYTHONPATH": path},
                )
                samples[name].append(float(done.stdout))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "median_seconds": medians,
        "ratio_to_grpc": {name: value / medians["grpc"] for name, value in medians.items()},
    }


# -- the run ------------------------------------------------------------------------------------


async def run(iterations: int, only: str | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if only is None:
        results["create_spec_work"] = create_spec_work(Path("/tmp"))
        results["plain_backend_dispatch"] = plain_backend_dispatch(100_000)
        results["import_lazy"] = import_lazy(10)
    workdir = Path(tempfile.mkdtemp(prefix="lcdx-", dir="/tmp"))
    supervisor = Supervisor(workdir / "s", workdir / "r")
    try:
        root = rootfs.busybox(workdir / "rootfs")
        await supervisor.start()
        env = Env(workdir=workdir, address=supervisor.address, rootfs=root)
        if only is None:
            address = supervisor.address
            results["grpc_call_cpu"] = await grpc_call_cpu(address, 2000)
            results["missing_task_probe_cpu"] = await missing_task_probe_cpu(address, 1000)
            results["stream_and_idle_cpu"] = await stream_and_idle_cpu(address, root, iterations)
            results["delete_without_task_get"] = await delete_without_task_get(
                address, root, iterations
            )
            results["bare_grpc_lifecycle_cpu"] = await bare_grpc_lifecycle_cpu(
                address, root, max(2, iterations // 5)
            )
            results["pause_resume_split"] = await pause_resume_split(env, iterations)
        if only in (None, "grpc_experiments"):
            results["grpc_experiments"] = await grpc_experiments(env, 6, iterations)
        if only in (None, "lifecycle_cpu_split"):
            results["lifecycle_cpu_split"] = await lifecycle_cpu_split(
                env, supervisor, max(20, iterations)
            )
        if only in (None, "seccomp_lifecycle"):
            results["seccomp_lifecycle"] = await seccomp_lifecycle(
                supervisor.address, root, iterations
            )
        if only in (None, "shim_groups_throughput"):
            results["shim_groups_throughput"] = await shim_groups_throughput(
                supervisor, root, max(20, iterations * 2), 3
            )
    finally:
        await supervisor.stop()
        remove_workdir(workdir)
        remove_cgroup_parents()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.experiments", description=__doc__)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--json", type=Path, default=REPO / ".cache" / "bench" / "experiments.json")
    parser.add_argument("--dispatch-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ours-child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        choices=[
            "grpc_experiments",
            "lifecycle_cpu_split",
            "seccomp_lifecycle",
            "shim_groups_throughput",
        ],
        help="run only this experiment (it needs no others' set-up); default: all of them",
    )
    options = parser.parse_args(argv)
    if options.ours_child:
        print(json.dumps(asyncio.run(_ours_child(json.loads(options.ours_child)))))
        return 0
    if options.dispatch_child:
        print(json.dumps(_dispatch_child(options.dispatch_child)))
        return 0
    results = asyncio.run(run(options.iterations, options.only))
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
