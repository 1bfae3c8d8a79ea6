"""The systems compared: this library and its anchors, each behind the same small interface.

Every method returns what it measured (seconds of wall time, or a rate), so
the runner can interleave systems round-robin and compare them in one run.
Each system runs its containers in its own containerd namespace on the
runner's private containerd (runc has its own private root), and removes
everything it created when closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import resource
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf import empty_pb2

from libcontainerd import AsyncClient, EventInfo, EventType, oci
from libcontainerd._api.containerd.api.services.version.v1 import version_pb2

TRUE = ["/bin/true"]
SLEEP = ["/bin/sleep", "1000000"]
# The runc v2 shim of containerd 1.6 serves, in one shim process, every container whose
# spec carries this annotation with the same value (opt-in; it reads the spec's
# annotations, not the container's labels).
GROUP_ANNOTATION = "io.containerd.runc.v2.group"


def comparable_spec(args: list[str], root: Path | str, *options: oci.SpecOption) -> oci.Spec:
    """``oci.default_spec`` without its seccomp profile: containerd's default spec, which
    the Go client (``oci.WithDefaultSpec``) and ``ctr run`` build, so every system runs the
    same spec; the profile's own cost is ``experiments.seccomp_lifecycle``'s figure."""
    return oci.default_spec(args, root, oci.with_seccomp(None), *options)


class Unsupported(Exception):
    """This system cannot run this benchmark here; the message says why."""


@dataclass
class Env:
    """What every system shares: the private containerd and a busybox root filesystem."""

    workdir: Path
    address: str
    rootfs: Path
    quick: bool = False


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class System:
    """One system under test. Unsupported operations raise :class:`Unsupported`."""

    name = "?"
    label = "?"

    def __init__(self, env: Env) -> None:
        self.env = env
        # gRPC calls per operation, by method, when this system can count them.
        self.calls: dict[str, dict[str, int]] = {}
        self._ids = itertools.count()

    def next_id(self, prefix: str) -> str:
        return f"{self.name}-{prefix}-{next(self._ids)}"

    async def start(self) -> None:
        """Get ready, including the long-running container for exec, pause and stats."""

    async def close(self) -> None:
        """Remove every container this system made; never raises."""

    async def lifecycle(self) -> float:
        raise Unsupported("no lifecycle")

    async def exec(self) -> float:
        raise Unsupported("no exec")

    async def pause_resume(self) -> float:
        raise Unsupported("no pause/resume")

    async def stats(self) -> float:
        raise Unsupported("no one-shot metrics")

    async def version(self) -> float:
        raise Unsupported("no version call")

    async def throughput(self, count: int, concurrency: int) -> tuple[float, list[float]]:
        """Run ``count`` lifecycles, ``concurrency`` at a time: (wall seconds, latencies)."""
        raise Unsupported("no throughput")

    async def cpu_per_lifecycle(self, count: int) -> float:
        """CPU seconds (user+sys) the client spends per lifecycle."""
        raise Unsupported("no CPU measurement")


# -- this library ----------------------------------------------------------------------


class _NoOpBackend:
    """A backend that takes every event: the library's normal set-up, at its cheapest."""

    async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        return None


class _CallCounter(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Counts every call a grpc.aio channel makes, by method."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def _count(self, details: grpc.aio.ClientCallDetails) -> None:
        method = details.method
        if isinstance(method, bytes):
            method = method.decode()
        self.calls[method] += 1

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        self._count(client_call_details)
        return await continuation(client_call_details, request)

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        self._count(client_call_details)
        return await continuation(client_call_details, request)

    def take(self) -> dict[str, int]:
        taken = dict(self.calls)
        self.calls.clear()
        return taken


@contextlib.contextmanager
def _channels_with(interceptor: Any) -> Any:
    """While open: every grpc.aio insecure channel made gets ``interceptor`` (bench only)."""
    real = grpc.aio.insecure_channel

    def with_interceptor(
        target: str, options: Any = None, compression: Any = None, interceptors: Any = None
    ) -> grpc.aio.Channel:
        return real(
            target,
            options=options,
            compression=compression,
            interceptors=[*(interceptors or []), interceptor],
        )

    grpc.aio.insecure_channel = with_interceptor
    try:
        yield
    finally:
        grpc.aio.insecure_channel = real


class Ours(System):
    """This library: one AsyncClient in this long-lived process, with a no-op async backend."""

    name = "ours"
    label = "libcontainerd"

    def __init__(self, env: Env, *, namespace: str = "bench-lcd", group: str = "") -> None:
        super().__init__(env)
        self.namespace = namespace
        self.group = group
        if group:
            self.name = "ours-grouped"
            self.label = "libcontainerd, shim group"
        self.client = AsyncClient(env.address, namespace=namespace, backend=_NoOpBackend())
        self.long_id = f"{self.name}-long"
        self._long_started = False
        self._exec_ids = itertools.count()

    async def start(self) -> None:
        await self.client.open()
        await self.client.create(self.long_id, self._spec(SLEEP))
        await self.client.start(self.long_id)
        self._long_started = True

    def _spec(self, args: list[str]) -> dict[str, Any]:
        if self.group:
            return comparable_spec(
                args, self.env.rootfs, oci.with_annotations({GROUP_ANNOTATION: self.group})
            )
        return comparable_spec(args, self.env.rootfs)

    async def _one_lifecycle(self, client: AsyncClient, container_id: str) -> None:
        # Building the spec is part of the caller's work, as it is for the Go client.
        spec = self._spec(TRUE)
        await client.create(container_id, spec)
        await client.start(container_id)
        await client.wait(container_id)
        await client.delete_task(container_id)
        await client.delete(container_id)

    async def lifecycle(self) -> float:
        container_id = self.next_id("lc")
        started = time.perf_counter()
        await self._one_lifecycle(self.client, container_id)
        return time.perf_counter() - started

    def _exec_spec(self) -> dict[str, Any]:
        process = oci.default_spec(TRUE, self.env.rootfs)["process"]
        return dict(process)

    async def exec(self) -> float:
        exec_method = getattr(self.client, "exec", None)
        if exec_method is None:
            raise Unsupported("AsyncClient.exec does not exist yet (issue in progress)")
        process_id = f"x{next(self._exec_ids)}"
        spec = self._exec_spec()
        started = time.perf_counter()
        await exec_method(self.long_id, process_id, spec)
        await self.client.wait(self.long_id, process_id)
        return time.perf_counter() - started

    async def pause_resume(self) -> float:
        started = time.perf_counter()
        await self.client.pause(self.long_id)
        await self.client.resume(self.long_id)
        return time.perf_counter() - started

    async def stats(self) -> float:
        stats_method = getattr(self.client, "stats", None)
        if stats_method is None:
            raise Unsupported("AsyncClient.stats does not exist yet (issue in progress)")
        started = time.perf_counter()
        await stats_method(self.long_id)
        return time.perf_counter() - started

    async def version(self) -> float:
        started = time.perf_counter()
        await self.client.version()
        return time.perf_counter() - started

    async def throughput(self, count: int, concurrency: int) -> tuple[float, list[float]]:
        slots = asyncio.Semaphore(concurrency)
        latencies: list[float] = []
        prefix = self.next_id("tp")

        async def one(index: int) -> None:
            async with slots:
                started = time.perf_counter()
                await self._one_lifecycle(self.client, f"{prefix}-{index}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(count)))
        return time.perf_counter() - started, latencies

    async def cpu_per_lifecycle(self, count: int) -> float:
        before = cpu_seconds()
        for _ in range(count):
            await self._one_lifecycle(self.client, self.next_id("cpu"))
        return (cpu_seconds() - before) / count

    async def count_calls(self) -> dict[str, dict[str, int]]:
        """The gRPC calls of each operation, counted by a second client with an interceptor."""
        counter = _CallCounter()
        counting = AsyncClient(self.env.address, namespace=self.namespace)
        with _channels_with(counter):  # the channel is made in open()
            await counting.open()
        try:
            counter.take()
            await self._one_lifecycle(counting, self.next_id("count"))
            self.calls["lifecycle"] = counter.take()
            await counting.pause(self.long_id)
            await counting.resume(self.long_id)
            self.calls["pause_resume"] = counter.take()
            await counting.version()
            self.calls["version"] = counter.take()
            if hasattr(counting, "stats"):
                await counting.stats(self.long_id)
                self.calls["stats"] = counter.take()
            if hasattr(counting, "exec"):
                process_id = f"x{next(self._exec_ids)}"
                await counting.exec(self.long_id, process_id, self._exec_spec())
                await counting.wait(self.long_id, process_id)
                await asyncio.sleep(0.2)  # the exec is released in the background
                self.calls["exec"] = counter.take()
        finally:
            await counting.close()
        return self.calls

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._long_started:
                await self.client.signal_process(self.long_id, "init", "SIGKILL")
                await self.client.wait(self.long_id)
                await self.client.delete_task(self.long_id)
                await self.client.delete(self.long_id)
        with contextlib.suppress(Exception):
            await self.client.close()


class RawGrpc(System):
    """A bare grpcio unary call (Version) on an open channel: the floor for ``version()``."""

    name = "raw-grpc"
    label = "raw grpcio call"

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.channel: grpc.aio.Channel | None = None
        self._call: Any = None

    async def start(self) -> None:
        self.channel = grpc.aio.insecure_channel(f"unix://{self.env.address}")
        self._call = self.channel.unary_unary(
            "/containerd.services.version.v1.Version/Version",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=version_pb2.VersionResponse.FromString,
        )
        await self._call(empty_pb2.Empty())

    async def version(self) -> float:
        started = time.perf_counter()
        await self._call(empty_pb2.Empty())
        return time.perf_counter() - started

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()


# -- command-line anchors --------------------------------------------------------------


def _run(argv: list[str], timeout: float = 60, *, detached: bool = False) -> float:
    """Run a command with no stdio; returns its wall time; raises on failure.

    A ``detached`` command leaves a container behind holding its stdio, so its
    error output is not collected (a pipe would never reach end of file).
    """
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if detached else subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        reason = done.stderr.decode().strip() if done.stderr else "see above"
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {reason}")
    return elapsed


async def _threaded_throughput(
    one: Callable[[int], float], count: int, concurrency: int
) -> tuple[float, list[float]]:
    """Run ``one(index)`` ``count`` times on ``concurrency`` threads (for blocking anchors)."""
    slots = asyncio.Semaphore(concurrency)

    async def run(index: int) -> float:
        async with slots:
            return await asyncio.to_thread(one, index)

    started = time.perf_counter()
    latencies = await asyncio.gather(*(run(index) for index in range(count)))
    return time.perf_counter() - started, list(latencies)


class Runc(System):
    """``runc run`` on an equivalent bundle (the same default spec), no containerd at all."""

    name = "runc"
    label = "runc alone"

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.root = env.workdir / "runc-root"
        self.bundles = env.workdir / "runc-bundles"
        self.long_id = "runc-long"
        self.binary = shutil.which("runc") or "runc"

    def _runc(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def _bundle(self, container_id: str, args: list[str]) -> Path:
        bundle = self.bundles / container_id
        bundle.mkdir(parents=True, exist_ok=True)
        spec = comparable_spec(args, self.env.rootfs)
        spec["linux"]["cgroupsPath"] = f"/bench-runc/{container_id}"
        (bundle / "config.json").write_text(json.dumps(spec))
        return bundle

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        bundle = self._bundle(self.long_id, SLEEP)
        _run(self._runc("run", "--detach", "--bundle", str(bundle), self.long_id), detached=True)

    def _lifecycle(self, container_id: str) -> float:
        bundle = self._bundle(container_id, TRUE)
        try:
            return _run(self._runc("run", "--bundle", str(bundle), container_id))
        finally:
            shutil.rmtree(bundle, ignore_errors=True)

    async def lifecycle(self) -> float:
        return self._lifecycle(self.next_id("lc"))

    async def exec(self) -> float:
        return _run(self._runc("exec", self.long_id, *TRUE))

    async def pause_resume(self) -> float:
        return _run(self._runc("pause", self.long_id)) + _run(self._runc("resume", self.long_id))

    async def stats(self) -> float:
        return _run(self._runc("events", "--stats", self.long_id))

    async def throughput(self, count: int, concurrency: int) -> tuple[float, list[float]]:
        prefix = self.next_id("tp")
        return await _threaded_throughput(
            lambda index: self._lifecycle(f"{prefix}-{index}"), count, concurrency
        )

    async def cpu_per_lifecycle(self, count: int) -> float:
        before = cpu_seconds(resource.RUSAGE_CHILDREN)
        for _ in range(count):
            self._lifecycle(self.next_id("cpu"))
        return (cpu_seconds(resource.RUSAGE_CHILDREN) - before) / count

    async def close(self) -> None:
        if not self.root.exists():
            return
        listing = subprocess.run(
            self._runc("list", "-q"), capture_output=True, text=True, check=False
        )
        for container_id in listing.stdout.split():
            subprocess.run(
                self._runc("delete", "--force", container_id), capture_output=True, check=False
            )


class Ctr(System):
    """containerd's ``ctr`` command, one process per operation, as a shell user runs it."""

    name = "ctr"
    label = "ctr"

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.binary = shutil.which("ctr") or "ctr"
        self.base = [self.binary, "--address", env.address, "--namespace", "bench-ctr"]
        self.long_id = "ctr-long"
        self._exec_ids = itertools.count()

    def _ctr(self, *args: str) -> list[str]:
        return [*self.base, *args]

    def _run_container(self, container_id: str, args: list[str], *flags: str) -> float:
        return _run(
            self._ctr(
                "run", *flags, "--null-io", "--rootfs", str(self.env.rootfs), container_id, *args
            ),
            detached="--detach" in flags,
        )

    async def start(self) -> None:
        self._run_container(self.long_id, SLEEP, "--detach")

    async def lifecycle(self) -> float:
        return self._run_container(self.next_id("lc"), TRUE, "--rm")

    async def exec(self) -> float:
        return _run(
            self._ctr("task", "exec", "--exec-id", f"x{next(self._exec_ids)}", self.long_id, *TRUE)
        )

    async def pause_resume(self) -> float:
        return _run(self._ctr("task", "pause", self.long_id)) + _run(
            self._ctr("task", "resume", self.long_id)
        )

    async def stats(self) -> float:
        return _run(self._ctr("task", "metrics", self.long_id))

    async def version(self) -> float:
        return _run(self._ctr("version"))

    async def throughput(self, count: int, concurrency: int) -> tuple[float, list[float]]:
        prefix = self.next_id("tp")
        return await _threaded_throughput(
            lambda index: self._run_container(f"{prefix}-{index}", TRUE, "--rm"),
            count,
            concurrency,
        )

    async def cpu_per_lifecycle(self, count: int) -> float:
        before = cpu_seconds(resource.RUSAGE_CHILDREN)
        for _ in range(count):
            self._run_container(self.next_id("cpu"), TRUE, "--rm")
        return (cpu_seconds(resource.RUSAGE_CHILDREN) - before) / count

    async def close(self) -> None:
        tasks = subprocess.run(
            self._ctr("task", "ls", "-q"), capture_output=True, text=True, check=False
        )
        for container_id in tasks.stdout.split():
            subprocess.run(
                self._ctr("task", "rm", "--force", container_id), capture_output=True, check=False
            )
        containers = subprocess.run(
            self._ctr("container", "ls", "-q"), capture_output=True, text=True, check=False
        )
        for container_id in containers.stdout.split():
            subprocess.run(
                self._ctr("container", "rm", container_id), capture_output=True, check=False
            )


# -- containerd's Go client ------------------------------------------------------------


# The Go program's operations whose gRPC calls are reported, by benchmark name.
_COUNTED_GO_OPS = {
    "lifecycle": "lifecycle",
    "exec": "exec",
    "pause_resume": "pause_resume",
    "metrics": "stats",
    "version": "version",
}


class GoClient(System):
    """containerd's Go client in our long-lived Go program (bench/goclient), one op per request.

    The program times each operation itself and counts its gRPC calls with a
    client interceptor; the pipe between us is outside every measurement.
    """

    name = "go"
    label = "Go client"

    def __init__(
        self,
        env: Env,
        binary: Path,
        *,
        namespace: str = "bench-go",
        group: str = "",
        lease: bool = False,
    ) -> None:
        super().__init__(env)
        self.binary = binary
        self.namespace = namespace
        self.group = group
        self.lease = lease
        if group:
            self.name, self.label = "go-grouped", "Go client, shim group"
        elif lease:
            self.name, self.label = "go-lease", "Go client, one lease"
        self.long_id = f"{self.name}-long"
        self.process: asyncio.subprocess.Process | None = None
        self._exec_ids = itertools.count()
        self._log = env.workdir / f"{self.name}.log"

    async def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        message = {
            "op": op,
            "rootfs": str(self.env.rootfs),
            "group": self.group,
            "lease": self.lease,
            **fields,
        }
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Go client exited; see {self._log}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"Go client {op}: {reply.get('error')}")
        counted = _COUNTED_GO_OPS.get(op)
        if counted and counted not in self.calls:
            self.calls[counted] = reply.get("calls") or {}
        return reply

    async def start(self) -> None:
        with open(self._log, "wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(self.binary),
                self.env.address,
                self.namespace,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        if self.lease:
            await self._request("lease")
        await self._request("start_long", id=self.long_id, args=SLEEP)

    async def lifecycle(self) -> float:
        reply = await self._request("lifecycle", id=self.next_id("lc"), args=TRUE)
        return float(reply["seconds"])

    async def image_lifecycle(self, container_id: str, image: str) -> dict[str, Any]:
        """A lifecycle of /bin/true from an unpacked image (WithNewSnapshot,
        WithSnapshotCleanup); the reply, with its seconds and gRPC calls."""
        return await self._request("image_lifecycle", id=container_id, image=image, args=TRUE)

    async def exec(self) -> float:
        reply = await self._request(
            "exec", id=self.long_id, exec_id=f"x{next(self._exec_ids)}", args=TRUE
        )
        return float(reply["seconds"])

    async def pause_resume(self) -> float:
        return float((await self._request("pause_resume", id=self.long_id))["seconds"])

    async def stats(self) -> float:
        return float((await self._request("metrics", id=self.long_id))["seconds"])

    async def version(self) -> float:
        return float((await self._request("version"))["seconds"])

    async def throughput(self, count: int, concurrency: int) -> tuple[float, list[float]]:
        reply = await self._request(
            "throughput", id=self.next_id("tp"), n=count, concurrency=concurrency, args=TRUE
        )
        return float(reply["seconds"]), [float(x) for x in reply["latencies"]]

    async def cpu_per_lifecycle(self, count: int) -> float:
        reply = await self._request("lifecycles", id=self.next_id("cpu"), n=count, args=TRUE)
        return float(reply["cpu"]) / count

    async def close(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(Exception):
            await self._stop(process)

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None and process.stdin is not None:
            # "quit" makes the program stop its long-running container itself.
            self.process = process
            with contextlib.suppress(Exception):
                await self._request("stop_long", id=self.long_id)
            self.process = None
            process.stdin.write(b'{"op": "quit"}\n')
            with contextlib.suppress(Exception):
                await process.stdin.drain()
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.send_signal(signal.SIGKILL)
            await process.wait()


# -- docker-py against a private dockerd -----------------------------------------------


@dataclass
class DockerDaemon:
    """A dockerd of the runner's own, on private paths, using the runner's containerd."""

    env: Env
    # dockerd's default (overlay2 here) unless a driver is named, e.g. "vfs".
    storage_driver: str = ""
    process: subprocess.Popen[bytes] | None = None
    socket: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.env.workdir / "docker"
        self.socket = self.home / "docker.sock"
        self.storage = ["--storage-driver", self.storage_driver] if self.storage_driver else []

    def start(self, timeout: float = 60) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as dockerd
        self.process = subprocess.Popen(
            [
                shutil.which("dockerd") or "dockerd",
                "--data-root",
                str(self.home / "root"),
                "--exec-root",
                str(self.home / "exec"),
                "--pidfile",
                str(self.home / "dockerd.pid"),
                "--host",
                f"unix://{self.socket}",
                "--containerd",
                self.env.address,
                "--containerd-namespace",
                "bench-docker",
                "--containerd-plugins-namespace",
                "bench-docker-plugins",
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                # Its containers' cgroups under a parent of the run's own, removed at the end.
                "--cgroup-parent",
                "/bench-docker",
                *self.storage,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited; see {self.home / 'dockerd.log'}")
            if self.socket.exists():
                import docker

                try:
                    docker.DockerClient(base_url=f"unix://{self.socket}").ping()
                    return
                except Exception:  # not ready yet
                    pass
            time.sleep(0.2)
        raise RuntimeError("dockerd did not answer in time")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class DockerPy(System):
    """docker-py (from PyPI) against our private dockerd, in this process, on threads."""

    name = "docker"
    label = "docker-py"
    image = "lcd-bench-busybox:latest"

    def __init__(self, env: Env, daemon: DockerDaemon) -> None:
        super().__init__(env)
        self.daemon = daemon
        self.client: Any = None
        self.long: Any = None

    async def start(self) -> None:
        import docker

        self.client = docker.DockerClient(base_url=f"unix://{self.daemon.socket}", timeout=120)
        archive = self.env.workdir / "busybox-rootfs.tar"
        subprocess.run(["tar", "-C", str(self.env.rootfs), "-cf", str(archive), "."], check=True)
        with open(archive, "rb") as data:
            self.client.api.import_image_from_data(data.read(), repository=self.image)
        self.long = self.client.containers.run(self.image, SLEEP, detach=True, network_mode="none")

    def _lifecycle(self) -> float:
        started = time.perf_counter()
        container = self.client.containers.create(self.image, TRUE, network_mode="none")
        container.start()
        container.wait()
        container.remove()
        return time.perf_counter() - started

    async def lifecycle(self) -> float:
        return await asyncio.to_thread(self._lifecycle)

    async def _timed(self, action: Callable[[], object]) -> float:
        def timed() -> float:
            started = time.perf_counter()
            action()
            return time.perf_counter() - started

        return await asyncio.to_thread(timed)

    async def exec(self) -> float:
        return await self._timed(lambda: self.long.exec_run(TRUE))

    async def pause_resume(self) -> float:
        return await self._timed(lambda: (self.long.pause(), self.long.unpause()))

    async def stats(self) -> float:
        return await self._timed(lambda: self.long.stats(stream=False))

    async def version(self) -> float:
        return await self._timed(self.client.version)

    async def throughput(self, count: int, concurrency: int) -> tuple[float, list[float]]:
        return await _threaded_throughput(lambda _: self._lifecycle(), count, concurrency)

    async def cpu_per_lifecycle(self, count: int) -> float:
        before = cpu_seconds()
        for _ in range(count):
            self._lifecycle()
        return (cpu_seconds() - before) / count

    async def close(self) -> None:
        if self.client is None:
            return
        with contextlib.suppress(Exception):
            for container in self.client.containers.list(all=True):
                container.remove(force=True)
        with contextlib.suppress(Exception):
            self.client.close()


def merge_calls(calls: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Total calls per operation."""
    return {op: sum(methods.values()) for op, methods in calls.items()}
