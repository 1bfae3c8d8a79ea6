"""Client faults: the program driving containerd is SIGKILLed, and a new one takes over.

A helper program (attach_counters.py) starts containers whose output it reads
through FIFOs, and is killed without any clean-up. A fresh client in this
process (an AsyncClient, then a blocking Client) then restores them: alive
with the same pid, their output flowing again through the re-opened FIFOs,
and it can stop and delete them, getting each exit once. Afterwards nothing
of them is left: no FIFO files, no FIFO descriptors in this process, no
shims, no containers.

$LIBCONTAINERD_TEST_CLIENT_FAULT_CONTAINERS sets how many containers the
killed client runs (CI: 20).
"""

from __future__ import annotations

import array
import asyncio
import concurrent.futures
import fcntl
import json
import os
import re
import signal
import sys
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from libcontainerd.client import AsyncClient, EventSubscription
from libcontainerd.stdio import DirectIO
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID, EventInfo, EventType
from tests import figures

from .containers import (
    TEST_NAMESPACE,
    Capture,
    ContainerFactory,
    NewClient,
    eventually,
    fd_targets,
    live_shims,
    new_fds,
    open_fds,
)

pytestmark = pytest.mark.integration

HELPER = Path(__file__).with_name("attach_counters.py")
COUNT_ENV = "LIBCONTAINERD_TEST_CLIENT_FAULT_CONTAINERS"
COUNT = int(os.environ.get(COUNT_ENV, "20"))
# Lines each container must write after the restore (stamped by the host's
# uptime, which containers share) before the output counts as flowing.
FRESH_LINES = 3

# A counter line every 0.2 s, stamped with the uptime; `read` is a shell builtin.
COUNTER = (
    "i=0; while true; do i=$((i+1)); read up idle < /proc/uptime;"
    ' echo "tick $i $up"; sleep 0.2; done'
)
TICK = re.compile(r"tick (\d+) (\d+\.\d+)")


class Recorder:
    """A backend that records every event and lets a test wait for one.

    Made on the test's loop; its events may come on another (the blocking Client's).
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, EventType, EventInfo]] = []
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        self.events.append((container_id, event, info))
        self._loop.call_soon_threadsafe(self._changed.set)

    def exits_of(self, container_id: str) -> list[EventInfo]:
        return [
            info
            for cid, event, info in self.events
            if cid == container_id and event is EventType.EXIT
        ]

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self._changed.clear()
            await self._changed.wait()


class Ticks:
    """A StdioCallback that parses a counter container's stdout into (counter, uptime) pairs.

    Made on the test's loop; it reads on the loop that calls it (the blocking
    Client's own, for that client) and tells the test's loop of each line.
    """

    def __init__(self) -> None:
        self.ticks: list[tuple[int, float]] = []
        self.sizes: list[int] = []  # of each line, in bytes, in the same order
        self.changed = asyncio.Event()
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.get_running_loop()
        self._copy: asyncio.Task[None] | None = None  # held so it is not collected mid-way
        self._io: DirectIO | None = None  # keeps the stdin writer open

    def __call__(self, io: DirectIO) -> None:
        self._io = io
        self._copy = asyncio.get_running_loop().create_task(self._read(io))

    async def _read(self, io: DirectIO) -> None:
        try:
            while line := await io.stdout.readline():
                match = TICK.fullmatch(line.decode().rstrip("\n"))
                assert match is not None, f"not a counter line: {line!r}"
                self.ticks.append((int(match[1]), float(match[2])))
                self.sizes.append(len(line))
                self._loop.call_soon_threadsafe(self.changed.set)
        except BaseException as error:
            self.done.set_exception(error)
            raise
        self.done.set_result(None)

    async def finished(self) -> None:
        """Wait for the end of the output (EOF), or the error that ended the reading."""
        await asyncio.wrap_future(self.done)

    def written_after(self, uptime: float) -> int:
        return sum(1 for _, stamp in self.ticks if stamp > uptime)

    def bytes_written_by(self, uptime: float) -> int:
        lines = zip(self.ticks, self.sizes, strict=True)
        return sum(size for (_, stamp), size in lines if stamp <= uptime)


def uptime() -> float:
    """The host's uptime, the clock the containers stamp their lines with (10 ms steps)."""
    return float(Path("/proc/uptime").read_text().split()[0])


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def shims_of(address: str, container_ids: set[str]) -> list[int]:
    """Live runc shims of this daemon serving any of ``container_ids``."""
    return [shim.pid for shim in live_shims(address) if shim.options.get("-id") in container_ids]


def fifo_fds(fifo_dir: str) -> list[str]:
    """What this process's descriptors under ``fifo_dir`` point at (FIFOs of ours)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed by now
        if target.startswith(fifo_dir + "/"):
            targets.append(target)
    return targets


def held_bytes(fifo: Path) -> int:
    """How many unread bytes a FIFO holds (opening another reader consumes nothing)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count)
        return count[0]
    finally:
        os.close(fd)


def fifo_folder(fifo_dir: str, container_id: str) -> Path:
    return Path(fifo_dir) / TEST_NAMESPACE / container_id


@pytest.fixture
async def helper_program() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """The helper programs a test starts; any still running at the end is killed and reaped."""
    started: list[asyncio.subprocess.Process] = []
    try:
        yield started
    finally:
        for program in started:
            if program.returncode is None:
                program.kill()
                await program.wait()


async def start_in_helper(
    supervisor: Supervisor,
    containers: ContainerFactory,
    helpers: list[asyncio.subprocess.Process],
    plan: list[dict[str, Any]],
    tmp_path: Path,
) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """Have the helper program start the planned containers; returns it and what it reported."""
    containers.created.extend(entry["id"] for entry in plan)  # removed whatever happens
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    program = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HELPER),
        supervisor.address,
        TEST_NAMESPACE,
        str(plan_path),
        stdout=asyncio.subprocess.PIPE,
    )
    helpers.append(program)
    assert program.stdout is not None
    async with asyncio.timeout(300):
        line = await program.stdout.readline()
    assert line, (
        f"the helper program ended without starting its containers ({await program.wait()})"
    )
    return program, json.loads(line)


async def first_exit(events: EventSubscription, container_id: str) -> EventInfo:
    async for cid, event, info in events:
        if cid == container_id and event is EventType.EXIT:
            return info
    raise AssertionError(f"the events ended before {container_id}'s exit")


async def sigkill(program: asyncio.subprocess.Process) -> None:
    program.send_signal(signal.SIGKILL)
    async with asyncio.timeout(30):
        assert await program.wait() == -signal.SIGKILL


async def run_sentinel(
    containers: ContainerFactory, client: AsyncClient, recorder: Recorder
) -> None:
    """Run a container to its exit event: events before it on the stream have arrived by then.

    containerd sends one subscription's events in order, so a late exit of
    another container could not arrive after this one's.
    """
    sentinel = await containers.create(["/bin/true"])
    await client.start(sentinel)
    await recorder.wait_until(lambda: bool(recorder.exits_of(sentinel)))
    await client.delete_task(sentinel)
    await client.delete(sentinel)


async def test_a_killed_client_s_attached_containers_are_restored_by_a_new_one_and_nothing_leaks(
    supervisor: Supervisor,
    containers: ContainerFactory,
    new_client: NewClient,
    client_kind: str,
    helper_program: list[asyncio.subprocess.Process],
    tmp_path: Path,
) -> None:
    plan: list[dict[str, Any]] = []
    for n in range(COUNT):
        container_id = containers.new_id("fault")
        spec = containers.spec(["/bin/sh", "-c", COUNTER], container_id=container_id)
        plan.append({"id": container_id, "spec": spec, "stdin": n % 2 == 0})
    ids = [entry["id"] for entry in plan]
    with_stdin = sum(1 for entry in plan if entry["stdin"])
    program, started = await start_in_helper(supervisor, containers, helper_program, plan, tmp_path)
    await sigkill(program)

    recorder = Recorder()
    fds_before = open_fds()
    targets_before = fd_targets()
    restorer = new_client(backend=recorder)
    fifo_dir = restorer.fifo_dir
    # The dead client's FIFOs are still there, and this process holds none of them.
    for entry in plan:
        names = {p.name for p in fifo_folder(fifo_dir, entry["id"]).iterdir()}
        stdin = {"init-stdin"} if entry["stdin"] else set()
        assert names == {"init-stdout", "init-stderr", *stdin}
    assert fifo_fds(fifo_dir) == []
    # With no client, each container's output waits in its FIFO (the shim holds it open).
    held: dict[str, int] = {}

    def every_fifo_holds_output() -> bool:
        for container_id in ids:
            stdout = fifo_folder(fifo_dir, container_id) / "init-stdout"
            if container_id not in held and (count := held_bytes(stdout)):
                held[container_id] = count
        return len(held) == COUNT

    await eventually(every_fifo_holds_output, "output waiting in every FIFO", 120)
    held_until = uptime()

    async with restorer:
        version = (await restorer.version()).version
        ticks = {container_id: Ticks() for container_id in ids}
        async with asyncio.timeout(120):
            restored = await asyncio.gather(
                *(restorer.restore(cid, attach_stdio=ticks[cid]) for cid in ids)
            )
        restored_at = uptime()
        assert dict(zip(ids, restored, strict=True)) == {
            cid: (True, pid) for cid, pid in started["pids"].items()
        }
        shims = {parent_of(pid) for _, pid in restored}
        assert sorted(shims) == sorted(shims_of(supervisor.address, set(ids)))
        fds_attached = len(fifo_fds(fifo_dir))
        assert fds_attached == 2 * COUNT + with_stdin  # stdout, stderr and maybe stdin

        # Output flows again: every container writes lines after the restore, and
        # they go on from where the dead client was, with no gap and no repeat.
        async with asyncio.timeout(120):
            for reader in ticks.values():
                while reader.written_after(restored_at) < FRESH_LINES:
                    reader.changed.clear()
                    await reader.changed.wait()
        for container_id, reader in ticks.items():
            # What waited in the FIFO while no client ran arrives too.
            assert reader.bytes_written_by(held_until) >= held[container_id], container_id
            counters = [counter for counter, _ in reader.ticks]
            last_seen_by_helper = int(started["last"][container_id].split()[1])
            assert counters[0] > last_seen_by_helper, container_id
            assert counters == list(range(counters[0], counters[0] + len(counters))), container_id
        lines_after_restore = sum(len(reader.ticks) for reader in ticks.values())
        fresh_lines = sum(reader.written_after(restored_at) for reader in ticks.values())
        held_lines = sum(
            1 for reader in ticks.values() for _, stamp in reader.ticks if stamp <= held_until
        )

        # The restoring client stops them, gets each exit, and deletes them.
        async with asyncio.timeout(120):
            await asyncio.gather(
                *(restorer.signal_process(cid, INIT_PROCESS_ID, "SIGKILL") for cid in ids)
            )
            await recorder.wait_until(lambda: all(recorder.exits_of(cid) for cid in ids))
            deleted = await asyncio.gather(*(restorer.delete_task(cid) for cid in ids))
            # With the task deleted the shim closes its ends: each reader ends at EOF.
            await asyncio.gather(*(reader.finished() for reader in ticks.values()))
            await asyncio.gather(*(restorer.delete(cid) for cid in ids))
            await run_sentinel(containers, restorer, recorder)
        for container_id, pid in started["pids"].items():
            exits = recorder.exits_of(container_id)
            assert [(info.pid, info.exit_code) for info in exits] == [(pid, 137)], container_id
        assert [code for code, _ in deleted] == [137] * COUNT

        # Nothing is left of them.
        await asyncio.sleep(0.1)  # transports close their pipes a loop turn after EOF
        assert fifo_fds(fifo_dir) == []
        assert [cid for cid in ids if fifo_folder(fifo_dir, cid).exists()] == []
        await eventually(lambda: not any(alive(shim) for shim in shims), "the shims to exit")
        shims_left = shims_of(supervisor.address, set(ids))
        assert shims_left == []
        listed = {info.id for info in await restorer.list_containers()}
        assert listed.isdisjoint(ids)
    await asyncio.sleep(0.1)
    fds_after = open_fds()
    assert new_fds(targets_before) == {}

    topic = f"client faults ({client_kind} client, containerd {version})"
    figures.record(
        topic, "containers restored after the client's SIGKILL", sum(a for a, _ in restored)
    )
    figures.record(topic, "lines received after the restore", lines_after_restore)
    figures.record(topic, "  of them held in the FIFOs while no client ran", held_lines)
    figures.record(topic, "  of them written after the restore", fresh_lines)
    figures.record(topic, "FIFO fds while attached", fds_attached)
    figures.record(topic, "FIFO fds / FIFO folders left", f"{len(fifo_fds(fifo_dir))} / 0")
    figures.record(topic, "restoring process fds before/after", f"{fds_before}/{fds_after}")
    figures.record(topic, "shims left", len(shims_left))


async def test_an_exit_while_no_client_runs_is_restored_as_not_alive_and_not_sent_as_an_event(
    client: AsyncClient,
    supervisor: Supervisor,
    containers: ContainerFactory,
    new_client: NewClient,
    helper_program: list[asyncio.subprocess.Process],
    tmp_path: Path,
) -> None:
    container_id = containers.new_id("fault")
    trap = f"trap 'echo bye; exit 7' TERM; {COUNTER}"
    spec = containers.spec(["/bin/sh", "-c", trap], container_id=container_id)
    plan = [{"id": container_id, "spec": spec, "stdin": True}]
    program, started = await start_in_helper(supervisor, containers, helper_program, plan, tmp_path)
    pid = started["pids"][container_id]
    await sigkill(program)

    # The container exits with no client attached; a bystander subscribed to the
    # namespace sees containerd publish the exit, so it is over before the new
    # client subscribes (containerd does not replay events).
    async with client.events() as observed, asyncio.timeout(60):
        os.kill(pid, signal.SIGTERM)
        info = await first_exit(observed, container_id)
    assert (info.pid, info.exit_code) == (pid, 7)

    recorder = Recorder()
    async with new_client(backend=recorder) as restorer:
        capture = Capture()
        assert await restorer.restore(container_id, attach_stdio=capture) == (False, pid)
        async with asyncio.timeout(60):
            # The trap's "bye" (its exit code shows it ran) is gone: the shim closed the
            # FIFO at the exit, and the kernel drops what nobody holds open.
            assert await capture.read() == b""
            assert await restorer.wait(container_id) == (7, info.exited_at)
            assert await restorer.delete_task(container_id) == (7, info.exited_at)
            await run_sentinel(containers, restorer, recorder)
        # restore's (False, pid) is how the new client learns of that exit: no event.
        assert recorder.exits_of(container_id) == []
        assert not fifo_folder(restorer.fifo_dir, container_id).exists()
        assert fifo_fds(restorer.fifo_dir) == []
