"""Leaks: many create/start/exec/exit/delete cycles leave nothing behind (issue 8, item 3).

Each cycle runs a container with attached stdio (stdin too), one exec with
its own stdio in it, reads every byte of output, lets both exit and deletes
the task and the container. After the cycles nothing may be left: no FIFO,
no extra file descriptor in this process, no shim, no mount, no per-container
cgroup, no runc state, no bundle, no container nor task in containerd; the
client's own tables hold nothing per container; and its memory stays flat.

The cycles run on a containerd of their own (the matrix's binary), so every
shim, FIFO and runc state under its folders is the test's. Their number comes
from ``$LIBCONTAINERD_LEAK_CYCLES`` (default 500, the CI value) for the
AsyncClient, ``$LIBCONTAINERD_LEAK_CYCLES_BLOCKING`` (default 100) for the
shorter pass with the blocking Client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import os
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import grpc.aio
import pytest

from libcontainerd import _background, oci, rootfs
from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
from libcontainerd.client import AsyncClient
from libcontainerd.stdio import CollectOutput, DirectIO
from libcontainerd.supervisor import Supervisor
from libcontainerd.sync import Client
from libcontainerd.types import INIT_PROCESS_ID, EventInfo, EventType

from .. import figures
from .containers import (
    TEST_NAMESPACE,
    ThreadedClient,
    eventually,
    live_shims,
    namespace_cgroups,
    open_fds,
    remove_container,
)

pytestmark = pytest.mark.integration

CYCLES = int(os.environ.get("LIBCONTAINERD_LEAK_CYCLES", "500"))
BLOCKING_CYCLES = int(os.environ.get("LIBCONTAINERD_LEAK_CYCLES_BLOCKING", "100"))
WARM_UP = 5
CYCLE_TIMEOUT = 60.0


# pytest-timeout's guard for a whole pass: a cycle takes 0.2 to 0.5 s on a
# loaded 2-core machine; this allows 2 s each, plus the daemon and the checks.
def _pass_timeout(cycles: int) -> float:
    return 120 + 2.0 * (WARM_UP + cycles)


# Memory the client may gain over the second half of the measured cycles
# (the first half lets one-time allocations happen: a module imported on
# first use, a cache filled; in a long test session such a step was ~2 MiB).
# One growth is by design: the event stream remembers each exit it reported
# (2 a cycle), up to 65536 of them, to drop duplicates; measured at about 80
# bytes an exit, allowed 160. Beyond that, Python objects (traced by
# tracemalloc) may move by TRACED_SLACK: over 250 cycles a leak of 1 KiB a
# cycle (a FifoSet, a few protobuf messages, a task kept alive) exceeds the
# slack plus the exits' allowance. RSS also sees gRPC's C heap and the
# allocator's arenas, which settle in steps of a few hundred KiB: its bound,
# over all the cycles, is a fixed 3 MiB, which a leak of 8 KiB a cycle (4 MiB
# at 500) breaks.
BYTES_PER_REMEMBERED_EXIT = 160
TRACED_SLACK = 128 * 1024
RSS_GROWTH_BOUND = 3 * 1024 * 1024

INIT_SCRIPT = 'echo init-out; echo init-err >&2; read line; echo "init read [$line]"'
EXEC_SCRIPT = "cat; echo exec-err >&2"


def _exec_process() -> dict[str, Any]:
    return {"args": ["/bin/sh", "-c", EXEC_SCRIPT], "cwd": "/", "env": [oci.DEFAULT_PATH_ENV]}


# --- what a process leaves, looked up where the kernel and the daemon keep it ---------


def shims_of(address: str) -> list[int]:
    """The pids of shims serving the daemon at ``address``."""
    return [shim.pid for shim in live_shims(address)]


def mounts_under(folder: Path) -> list[str]:
    """Mount points at or below ``folder`` in this process's mount namespace."""
    inside = str(folder).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if (point + "/").startswith(inside)]


def cgroups_of(prefix: str) -> tuple[list[str], list[str]]:
    """Per-container cgroup folders of ids starting with ``prefix``, and the namespace's own.

    runc removes a container's folders but leaves the namespace-level one
    (``/sys/fs/cgroup/<controller>/<namespace>``), shared by every container
    of the namespace: expected, so counted apart.
    """
    namespaces = namespace_cgroups([TEST_NAMESPACE])
    containers = [
        str(path)
        for namespace in namespaces
        for path in namespace.iterdir()
        if path.is_dir() and path.name.startswith(prefix)
    ]
    return containers, [str(namespace) for namespace in namespaces]


def entries_below(folder: Path) -> list[str]:
    """Every file and folder below ``folder`` (not itself); none when it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(path) for path in folder.rglob("*"))


def bundles_of(daemon: Supervisor) -> list[str]:
    """The runtime's per-task folders (bundle, shim files) in the daemon's state and root."""
    found = []
    for base in (daemon.state_dir, daemon.root_dir):
        # containerd 1.x and 2.x put the plugin's folder directly or one level down.
        for pattern in ("io.containerd.runtime.v2.task", "*/io.containerd.runtime.v2.task"):
            for folder in Path(base).glob(f"{pattern}/{TEST_NAMESPACE}"):
                found += entries_below(folder)
    return found


async def task_ids(address: str) -> list[str]:
    """Every task containerd holds in the test namespace (Tasks.List, straight on the wire)."""
    async with grpc.aio.insecure_channel(f"unix://{address}") as channel:
        listing = channel.unary_unary(
            "/containerd.services.tasks.v1.Tasks/List",
            request_serializer=tasks_pb2.ListTasksRequest.SerializeToString,
            response_deserializer=tasks_pb2.ListTasksResponse.FromString,
        )
        reply = await listing(
            tasks_pb2.ListTasksRequest(),
            metadata=(("containerd-namespace", TEST_NAMESPACE),),
            timeout=30,
        )
    return [task.container_id or task.id for task in reply.tasks]


@dataclass
class Leftovers:
    """What the cycles' containers left on the host and in the daemon."""

    fifos: list[str]
    shims: list[int]
    mounts: list[str]
    cgroups: list[str]
    runc_states: list[str]
    bundles: list[str]
    containers: list[str]
    tasks: list[str]

    def as_counts(self) -> dict[str, int]:
        return {field.name: len(getattr(self, field.name)) for field in fields(self)}


async def leftovers(
    daemon: Supervisor, client: AsyncClient, workdir: Path, prefix: str
) -> Leftovers:
    return Leftovers(
        fifos=entries_below(Path(client.fifo_dir) / TEST_NAMESPACE),
        shims=shims_of(daemon.address),
        mounts=mounts_under(workdir),
        cgroups=cgroups_of(prefix)[0],
        runc_states=entries_below(Path(daemon.runc_root) / TEST_NAMESPACE),
        bundles=bundles_of(daemon),
        containers=[info.id for info in await client.list_containers()],
        tasks=await task_ids(daemon.address),
    )


# --- the client's own tables ---------------------------------------------------------


def client_tables(client: AsyncClient) -> dict[str, int]:
    """The size of every table the client keeps per container, process or exit.

    Each owner reports its own (tasks, execs, FIFOs, background clean-ups, the
    event stream and dispatcher); the stdio copies running come on top.
    """
    return {**client._sizes(), "stdio: copy tasks running": len(_background.running)}


# --- stdio --------------------------------------------------------------------------


class ReadToEnd:
    """A StdioCallback that reads stdout and stderr to their end, on whatever loop runs it.

    The result lands in a concurrent Future, so a test can wait for it from
    another thread too (the blocking Client runs callbacks on its own loop).
    With ``stdin`` it writes that and closes the process's stdin; without, it
    leaves stdin to the test (``close_stdin``).
    """

    def __init__(self, stdin: bytes | None = None) -> None:
        self.stdin = stdin
        self.output: concurrent.futures.Future[tuple[bytes, bytes]] = concurrent.futures.Future()
        self._copy: asyncio.Task[None] | None = None  # held so it is not collected mid-way

    def __call__(self, io: DirectIO) -> None:
        self._copy = asyncio.get_running_loop().create_task(self._read(io))

    async def _read(self, io: DirectIO) -> None:
        try:
            if self.stdin is not None and io.stdin is not None:
                io.stdin.write(self.stdin)
                await io.stdin.drain()
                io.stdin.close()
            stderr = io.stderr.read() if io.stderr is not None else asyncio.sleep(0, b"")
            out, err = await asyncio.gather(io.stdout.read(), stderr)
        except Exception as error:
            self.output.set_exception(error)
        else:
            self.output.set_result((out, err))


ExecOutput = Callable[[bytes], tuple[Callable[[DirectIO], None], Awaitable[tuple[bytes, bytes]]]]


def collect_output(stdin: bytes) -> tuple[CollectOutput, Awaitable[tuple[bytes, bytes]]]:
    """The library's own attacher (AsyncClient only: it is awaited on the client's loop)."""
    output = CollectOutput(stdin=stdin)
    return output, _awaited(output)


async def _awaited(output: CollectOutput) -> tuple[bytes, bytes]:
    return await output


def read_to_end(stdin: bytes) -> tuple[ReadToEnd, Awaitable[tuple[bytes, bytes]]]:
    reader = ReadToEnd(stdin)
    return reader, asyncio.wrap_future(reader.output)


class ExitCounter:
    """A backend that counts exits (and keeps nothing per event, to add no growth of its own)."""

    def __init__(self) -> None:
        self.exits = 0
        self._lock = threading.Lock()  # plain backends run on worker threads

    def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        if event is EventType.EXIT:
            with self._lock:
                self.exits += 1


# --- the cycles ----------------------------------------------------------------------


async def one_cycle(
    client: AsyncClient,
    container_id: str,
    spec: dict[str, Any],
    exec_output: ExecOutput,
    while_running: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Create, start attached, exec attached, let both exit, check the output, delete.

    ``while_running`` is awaited while the container runs, before the exec.
    """
    await client.create(container_id, spec)
    init = ReadToEnd()
    await client.start(container_id, with_stdin=True, attach_stdio=init)
    if while_running is not None:
        await while_running()
    data = f"to cat {container_id}\n".encode()
    callback, output = exec_output(data)
    await client.exec(container_id, "e", _exec_process(), with_stdin=True, attach_stdio=callback)
    assert await output == (data, b"exec-err\n")
    assert (await client.wait(container_id, "e"))[0] == 0
    # The client releases an exited exec of its own while the container runs on.
    fifos = Path(client.fifo_dir) / TEST_NAMESPACE / container_id
    await eventually(lambda: not list(fifos.glob("e-*")), f"the release of {container_id}/e")
    await client.close_stdin(container_id, INIT_PROCESS_ID)  # `read` sees EOF: init exits 0
    assert (await client.wait(container_id))[0] == 0
    assert await asyncio.wrap_future(init.output) == (
        b"init-out\ninit read []\n",
        b"init-err\n",
    )
    await client.delete_task(container_id)
    await client.delete(container_id)


async def bounded_cycle(
    daemon: Supervisor,
    client: AsyncClient,
    container_id: str,
    spec: dict[str, Any],
    exec_output: ExecOutput,
    while_running: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """One cycle within CYCLE_TIMEOUT; a stuck one fails saying where its processes wait."""
    try:
        async with asyncio.timeout(CYCLE_TIMEOUT):
            await one_cycle(client, container_id, spec, exec_output, while_running)
    except TimeoutError:
        pytest.fail(
            f"cycle {container_id} stuck for {CYCLE_TIMEOUT:g} s;"
            f" {await stuck_processes(daemon, client, container_id)}"
        )


async def stuck_processes(daemon: Supervisor, client: AsyncClient, container_id: str) -> str:
    """The container's processes (state, wait channel); the shim's FIFO descriptors and ours."""
    lines = []
    try:
        pids = await client.list_pids(container_id)
    except Exception as error:
        pids = []
        lines.append(f"no pids: {error}")
    for pid in [*pids, *shims_of(daemon.address), os.getpid()]:
        proc = Path(f"/proc/{pid}")
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
            wchan = (proc / "wchan").read_text()
            fds = []
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if container_id in target:
                        fds.append(f"{fd.name}->{Path(target).name}")
            lines.append(f"pid {pid} {state} wchan={wchan} [{command}] fifos: {fds}")
        except OSError as error:
            lines.append(f"pid {pid}: {error}")
    return "\n".join(lines)


def rss_bytes() -> int:
    """This process's resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@dataclass
class Memory:
    rss: int
    traced: int


def measure() -> Memory:
    gc.collect()
    return Memory(rss_bytes(), tracemalloc.get_traced_memory()[0])


@pytest.fixture
async def daemon(
    workdir: Path, containerd: str, provisioned_criu: None
) -> AsyncIterator[Supervisor]:
    """A containerd of the test's own: its shims, FIFOs and runc states are all the test's."""
    supervisor = Supervisor(workdir / "state", workdir / "root", containerd=containerd)
    async with supervisor:
        yield supervisor


async def run_cycles(
    label: str,
    cycles: int,
    daemon: Supervisor,
    client: AsyncClient,
    tables_of: AsyncClient,
    exec_output: ExecOutput,
    workdir: Path,
    counter: ExitCounter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Warm up, run ``cycles`` measured cycles, then check and record what is left."""
    topic = f"leaks ({label}, containerd {daemon.version})"
    prefix = f"leak-{os.getpid()}-{label}-"
    spec = oci.default_spec(
        ["/bin/sh", "-c", INIT_SCRIPT],
        rootfs.busybox(workdir / "rootfs"),
        oci.with_readonly_rootfs(),
    )
    current = ""
    tracing = False
    try:
        running: list[Leftovers] = []

        async def look() -> None:
            running.append(await leftovers(daemon, client, workdir, prefix))

        for index in range(WARM_UP):
            current = f"{prefix}{index}"
            await bounded_cycle(
                daemon, client, current, spec, exec_output, look if index == 0 else None
            )
        # The probes see a running container's traces (mounts: none on the host, the
        # rootfs is a plain folder), so the zeros below are not for want of looking.
        (seen,) = running
        for what, count in seen.as_counts().items():
            figures.record(topic, f"while one runs: {what}", count)
        assert seen.containers == seen.tasks == [f"{prefix}0"]
        assert len(seen.shims) == 1
        seen_counts = seen.as_counts()
        assert all(seen_counts[what] for what in ("fifos", "cgroups", "runc_states", "bundles"))
        await eventually(lambda: not client_tables(tables_of)["background tasks"], "releases")
        fds_before = open_fds()
        exits_before = client_tables(tables_of)["stream: exits remembered"]
        tracemalloc.start()
        tracing = True
        start = measure()
        middle = quarter = start
        exits_at_middle = exits_at_quarter = exits_before
        began = time.monotonic()
        for index in range(WARM_UP, WARM_UP + cycles):
            current = f"{prefix}{index}"
            await bounded_cycle(daemon, client, current, spec, exec_output)
            if index == WARM_UP + cycles // 2 - 1:
                middle = measure()
                exits_at_middle = client_tables(tables_of)["stream: exits remembered"]
            if index == WARM_UP + cycles * 3 // 4 - 1:
                quarter = measure()
                exits_at_quarter = client_tables(tables_of)["stream: exits remembered"]
        seconds = time.monotonic() - began
        current = ""
        await eventually(lambda: not client_tables(tables_of)["background tasks"], "releases")
        end = measure()
        # Where a step came from (one site often holds it all), for the run's figures.
        stepped = max(quarter.traced - middle.traced, end.traced - quarter.traced) > TRACED_SLACK
        largest = tracemalloc.take_snapshot().statistics("lineno")[:5] if stepped else []
        tracemalloc.stop()
        tracing = False
        # Readers close their pipes at EOF, and the last release may still be on its way.
        await eventually(lambda: open_fds() <= fds_before, f"fds back to {fds_before}")
        fds_after = open_fds()
        left = await leftovers(daemon, client, workdir, prefix)
        tables = client_tables(tables_of)
        cgroups, namespace_cgroups = cgroups_of(prefix)
        record = figures.record
        record(topic, "cycles (after a warm-up of)", f"{cycles} ({WARM_UP})")
        record(topic, "seconds", f"{seconds:.1f} ({1000 * seconds / cycles:.0f} ms a cycle)")
        record(topic, "open fds before / after", f"{fds_before} / {fds_after}")
        for what, count in left.as_counts().items():
            record(topic, f"left: {what}", count)
        record(topic, "namespace-level cgroup folders (expected)", len(namespace_cgroups))
        record(topic, "exits seen by the backend", counter.exits)
        mib = 1024 * 1024
        record(
            topic,
            "RSS start / middle / end (MiB)",
            f"{start.rss / mib:.2f} / {middle.rss / mib:.2f} / {end.rss / mib:.2f}",
        )
        record(
            topic,
            "traced start / middle / end (KiB)",
            f"{start.traced / 1024:.0f} / {middle.traced / 1024:.0f} / {end.traced / 1024:.0f}",
        )
        added = tables["stream: exits remembered"] - exits_before
        record(
            topic,
            "traced growth per cycle, per remembered exit (B)",
            f"{(end.traced - start.traced) / cycles:.0f}, "
            f"{(end.traced - start.traced) / max(added, 1):.0f}",
        )
        record(
            topic,
            "traced growth over the second half, per cycle (B)",
            f"{(end.traced - middle.traced) / max(cycles - cycles // 2, 1):.0f}",
        )
        for what, size in tables.items():
            record(topic, f"table: {what}", size)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        record(topic, "warnings and errors logged", len(warnings))

        assert not warnings, warnings[:5]
        assert left == Leftovers([], [], [], [], [], [], [], [])
        assert not cgroups
        # Each process exits once, and its exit reaches the backend once.
        await eventually(lambda: counter.exits >= 2 * (WARM_UP + cycles), "every exit")
        assert counter.exits == 2 * (WARM_UP + cycles)
        per_container = {
            what: size
            for what, size in tables.items()
            if what not in ("FIFO sets kept", "event listeners", "stream: exits remembered")
        }
        assert per_container == dict.fromkeys(per_container, 0)
        assert tables["FIFO sets kept"] <= 2  # the last cycle's, closed, until the next start
        # A leak grows with the cycles, so in both quarters of the second half; one step
        # (1.9 MB in the 1.7 pass of two whole-suite runs, RSS flat, every table
        # empty, not in a run of this file alone) lands in one quarter only. Both
        # quarters' growth is recorded; the smaller must stay within the allowance.
        third = (quarter.traced - middle.traced, exits_at_quarter - exits_at_middle)
        fourth = (
            end.traced - quarter.traced,
            tables["stream: exits remembered"] - exits_at_quarter,
        )
        record(topic, "traced growth in the 3rd / 4th quarter (KiB)",
               f"{third[0] / 1024:.0f} / {fourth[0] / 1024:.0f}")  # fmt: skip
        steady = min((third, fourth), key=lambda part: part[0])
        traced_bound = steady[1] * BYTES_PER_REMEMBERED_EXIT + TRACED_SLACK // 2
        for number, site in enumerate(largest):
            record(topic, f"largest allocation site {number + 1}", str(site))
        assert steady[0] < traced_bound, (start, middle, quarter, end)
        assert end.rss - start.rss < RSS_GROWTH_BOUND, (start, middle, end)
    finally:
        if tracing:
            tracemalloc.stop()
        if current:
            await remove_container(client, current)


@pytest.mark.timeout(_pass_timeout(CYCLES))
async def test_cycles_with_the_async_client_leave_nothing_behind(
    daemon: Supervisor, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = ExitCounter()
    async with AsyncClient(daemon.address, TEST_NAMESPACE, backend=counter) as client:
        await run_cycles(
            "async", CYCLES, daemon, client, client, collect_output, workdir, counter, caplog
        )


@pytest.mark.timeout(_pass_timeout(BLOCKING_CYCLES))
async def test_cycles_with_the_blocking_client_leave_nothing_behind(
    daemon: Supervisor, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = ExitCounter()
    blocking = Client(daemon.address, TEST_NAMESPACE, backend=counter)
    await asyncio.to_thread(blocking.open)
    try:
        threaded: Any = ThreadedClient(blocking)
        await run_cycles(
            "blocking",
            BLOCKING_CYCLES,
            daemon,
            threaded,
            blocking._async,
            read_to_end,
            workdir,
            counter,
            caplog,
        )
    finally:
        await asyncio.to_thread(blocking.close)
