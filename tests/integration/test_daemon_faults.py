"""Daemon faults: containerd killed during a churn of containers, and stopped cleanly under them.

Each test runs its own Supervisor in its own folders (the session's daemon is
never killed) and one AsyncClient that is never reopened: the library, not
the test, must carry the client across the daemon's death.

What a call does when it meets a dead daemon (decided here, documented in the
README under "Errors"): it raises ``Unavailable`` at once, never hangs, and
the caller retries. A call that was already in flight when containerd died
may or may not have taken effect, so a retry may answer ``AlreadyExists``
(create) or ``NotFound`` (delete_task, delete): that means the first attempt
did it. ``start`` is retried on the same client: the retry finds out what
the interrupted call did and never runs the process twice (the churn worker
shows the recipe).
"""

# The tests read small local files (/proc, the containers' stamps) between awaits.

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from libcontainerd import oci, rootfs
from libcontainerd.client import AsyncClient
from libcontainerd.errors import (
    AlreadyExists,
    LibcontainerdError,
    NotFound,
    Unavailable,
)
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import ContainerInfo, EventInfo, EventType, Status

from .. import figures
from .containers import (
    TEST_NAMESPACE,
    Capture,
    container_processes,
    live_shims,
    process_alive,
)

pytestmark = pytest.mark.integration

CHURN_ENV = "LIBCONTAINERD_CHURN_CONTAINERS"
CONCURRENCY = 4
KILLS = 2
# How long before containerd's death an exit may happen and still be lost by
# containerd itself (the shim had sent it, containerd had not yet published it).
IN_FLIGHT_BEFORE_KILL = 1.0

T = TypeVar("T")


def churn_size() -> int:
    """How many containers the churn runs: $LIBCONTAINERD_CHURN_CONTAINERS, else CI's 200."""
    return int(os.environ.get(CHURN_ENV, "200"))


def uptime() -> float:
    """The host's monotonic clock as containers see it too (/proc/uptime is not namespaced)."""
    return float(Path("/proc/uptime").read_text().split()[0])


def shims_of(daemon: Supervisor) -> list[int]:
    """Live shim processes serving ``daemon``."""
    return [shim.pid for shim in live_shims(daemon.address)]


async def shims_gone(daemon: Supervisor, within: float = 20.0) -> list[int]:
    """The daemon's shims still alive once ``within`` seconds pass (they exit after a delete)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (shims := shims_of(daemon)) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    return shims


class ExitLedger:
    """A backend keeping every event, and each exit by (container id, process id)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, EventType, EventInfo]] = []
        self.exits: dict[tuple[str, str], list[EventInfo]] = defaultdict(list)
        self._changed = asyncio.Event()

    async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        self.events.append((container_id, event, info))
        if event is EventType.EXIT:
            self.exits[(container_id, info.process_id)].append(info)
        self._changed.set()

    def types_of(self, container_id: str) -> list[EventType]:
        return [event for cid, event, _ in self.events if cid == container_id]

    async def wait_until(self, condition: Callable[[], bool], within: float = 60) -> bool:
        """Wait for ``condition``; False (not an exception) when ``within`` seconds pass."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True


# -- (a) a churn while containerd is killed twice ---------------------------------------

# containerd's shim re-sends an event it could not publish 1, 2, ... 5 s apart (at most
# 5 tries): a duplicate from that source comes within this of containerd being back.
SHIM_RESEND_WINDOW = 6.0


@dataclass
class Outage:
    """When containerd was down, on the /proc/uptime clock."""

    killed: float
    back: float = float("inf")


@dataclass
class Churn:
    """What the churn saw, for its assertions and figures."""

    daemon: Supervisor
    client: AsyncClient
    ledger: ExitLedger
    rootfs: Path
    stamps: Path
    total: int
    done: int = 0
    retries: int = 0
    outages: list[Outage] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    # The exit code delete_task returned, or None when containerd had deleted the task.
    deleted_codes: dict[str, int | None] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    interrupted_starts: set[str] = field(default_factory=set)
    # Containers that containerd 1.6/1.7 cannot give a task any more (see start()).
    stuck: set[str] = field(default_factory=set)

    @staticmethod
    def container_id(index: int) -> str:
        return f"churn-{os.getpid()}-{index}"

    @staticmethod
    def exit_code(index: int) -> int:
        """Distinct per container for 250 of them, never 0, 137 or 255 (those mean something)."""
        code = index % 250 + 1
        return code + 1 if code >= 137 else code

    async def retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until it does not raise Unavailable; bounded, so a dead daemon fails."""
        async with asyncio.timeout(120):
            while True:
                try:
                    return await call()
                except Unavailable:
                    self.retries += 1
                    await asyncio.sleep(0.05)

    async def run(self, index: int) -> None:
        """One container's life: create, start, its exit through the backend, delete."""
        cid = self.container_id(index)
        spec = oci.default_spec(
            [
                "/bin/sh",
                "-c",
                f"sleep 0.1; cat /proc/uptime >> /out/{cid}; exit {self.exit_code(index)}",
            ],
            self.rootfs,
            oci.with_readonly_rootfs(),
            oci.with_bind_mount(self.stamps, "/out"),
        )
        await self.create(cid, spec)
        if not await self.start(cid):
            await self.delete(cid)
            self.done += 1
            return
        if not await self.ledger.wait_until(lambda: bool(self.ledger.exits[(cid, cid)])):
            self.unexpected.append(f"{cid}: no exit reported within 60 s")
        await self.delete_task(cid)
        await self.delete(cid)
        self.done += 1

    async def create(self, cid: str, spec: dict[str, object]) -> None:
        attempts = 0

        async def once() -> None:
            nonlocal attempts
            attempts += 1
            try:
                await self.client.create(cid, spec)
            except AlreadyExists:
                if attempts == 1:
                    raise
                # The interrupted first attempt had created it.

        await self.retry("create", once)

    async def start(self, cid: str) -> bool:
        """Start once; False when containerd's leftovers keep the container from ever starting.

        The documented recipe: after Unavailable, call start() again on the same
        client; it finds out whether the interrupted call started the process
        and never starts it twice.
        """
        interrupted = False
        while True:
            try:
                self.pids[cid] = await self.client.start(cid)
            except Unavailable:
                self.retries += 1
                interrupted = True
                await asyncio.sleep(0.05)
                continue
            except LibcontainerdError as error:
                if interrupted and "file exists" in error.details:
                    self.stuck.add(cid)
                    return False
                raise
            if interrupted:
                self.interrupted_starts.add(cid)
            return True

    async def delete_task(self, cid: str) -> None:
        attempts = 0

        async def once() -> int | None:
            nonlocal attempts
            attempts += 1
            try:
                code, _ = await self.client.delete_task(cid)
            except NotFound:
                return None  # deleted by containerd at its restart, or by our first attempt
            return code

        self.deleted_codes[cid] = await self.retry("delete_task", once)

    async def delete(self, cid: str) -> None:
        attempts = 0

        async def once() -> None:
            nonlocal attempts
            attempts += 1
            try:
                await self.client.delete(cid)
            except NotFound:
                if attempts == 1:
                    raise

        await self.retry("delete", once)

    async def kill_daemon_at(self, thresholds: list[int]) -> None:
        """SIGKILL containerd when the churn has finished each threshold's number of containers."""
        for threshold in thresholds:
            while self.done < threshold:
                await asyncio.sleep(0.01)
            restarts = self.daemon.restarts
            outage = Outage(killed=uptime())
            self.outages.append(outage)
            os.kill(self.daemon.pid or 0, signal.SIGKILL)
            async with asyncio.timeout(60):
                await self.daemon.wait_ready(min_restarts=restarts + 1)
            outage.back = uptime()

    def runs_of(self, cid: str) -> list[float]:
        """When each run of the container ended, from the stamps it appends just before exiting."""
        try:
            text = (self.stamps / cid).read_text()
        except FileNotFoundError:
            return []
        return [float(line.split()[0]) for line in text.splitlines()]

    def exited_while_down(self, cid: str) -> bool:
        """Whether the container's own stamp says it exited while containerd was down."""
        (stamp,) = self.runs_of(cid)
        return any(o.killed - IN_FLIGHT_BEFORE_KILL <= stamp <= o.back for o in self.outages)


async def remove_everything(client: AsyncClient) -> None:
    """Kill and remove whatever containers the namespace still has (clean-up after a failure)."""
    with contextlib.suppress(Exception):
        for info in await client.list_containers():
            with contextlib.suppress(Exception):
                await client.resume(info.id)  # a frozen task would keep its cgroup frozen
            with contextlib.suppress(Exception):
                await client.signal_process(info.id, "init", signal.SIGKILL)
            with contextlib.suppress(Exception):
                await client.wait(info.id)
            with contextlib.suppress(Exception):
                await client.delete_task(info.id)
            with contextlib.suppress(Exception):
                await client.delete(info.id)


async def _churn(
    daemon: Supervisor, ledger: ExitLedger, root: Path, stamps: Path, total: int
) -> tuple[list[ContainerInfo], float, list[int], Churn]:
    """Run the churn with its two kills; what is left in containerd, and the shims left."""
    began = time.monotonic()
    async with daemon, AsyncClient(daemon.address, TEST_NAMESPACE, backend=ledger) as client:
        churn = Churn(daemon, client, ledger, root, stamps, total)
        try:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for index in range(total):
                queue.put_nowait(index)

            async def worker() -> None:
                while not queue.empty():
                    await churn.run(queue.get_nowait())

            thresholds = [total * (k + 1) // (KILLS + 1) for k in range(KILLS)]
            async with asyncio.timeout(600):
                await asyncio.gather(
                    churn.kill_daemon_at(thresholds), *(worker() for _ in range(CONCURRENCY))
                )
            # Late duplicates: the reconcile's come as the stream is back; a shim re-sends an
            # exit it could not publish 1, 2, ... 5 s apart, so within SHIM_RESEND_WINDOW of
            # containerd being back. Watch until then (often already past), stopping at one.
            last_back = max((outage.back for outage in churn.outages), default=uptime())
            await ledger.wait_until(
                lambda: any(len(exits) > 1 for exits in ledger.exits.values()),
                within=max(0.0, last_back + SHIM_RESEND_WINDOW - uptime()),
            )
            left = await client.list_containers()
        finally:
            await remove_everything(client)
    return left, time.monotonic() - began, await shims_gone(daemon), churn


async def test_a_churn_survives_two_containerd_kills_with_every_exit_delivered_once(
    workdir: Path, containerd: str
) -> None:
    total = churn_size()
    ledger = ExitLedger()
    daemon = Supervisor(workdir / "s", workdir / "r", containerd=containerd)
    stamps = workdir / "stamps"
    stamps.mkdir()
    root = rootfs.busybox(workdir / "rootfs")
    ids = [Churn.container_id(index) for index in range(total)]
    try:
        left, seconds, shims, churn = await _churn(daemon, ledger, root, stamps, total)
    finally:
        # After a failure too: no shim, nor any process of a container, may outlive the test.
        for pid in shims_of(daemon):
            os.kill(pid, signal.SIGKILL)
        orphans = container_processes(ids)
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    runs = {cid: churn.runs_of(cid) for cid in ids}
    ran = [cid for cid in ids if runs[cid]]
    delivered = {cid: ledger.exits[(cid, cid)] for cid in ids}
    lost = [cid for cid in ran if not delivered[cid]]
    duplicated = {cid: exits for cid, exits in delivered.items() if len(exits) > 1}
    unknown = [cid for cid in ran if delivered[cid] and delivered[cid][0].exit_code == 255]
    strangers = [key for key in ledger.exits if key[0] not in delivered or key[1] != key[0]]
    version = daemon.version or "?"
    topic = f"daemon faults: churn with {KILLS} kills (containerd {version})"
    for what, value in (
        ("containers", total),
        ("containers that ran", len(ran)),
        ("exits delivered", sum(len(exits) for exits in delivered.values())),
        ("duplicates", sum(len(exits) - 1 for exits in duplicated.values())),
        ("lost", len(lost)),
        ("255-reported (exited while down)", len(unknown)),
        ("never started (containerd's leftover bundle)", len(churn.stuck)),
        ("interrupted start, task dropped, did not run", len(set(ids) - set(ran) - churn.stuck)),
        ("container processes left (e.g. orphaned runc init)", len(orphans)),
        ("restarts", daemon.restarts),
        ("retries after Unavailable", churn.retries),
        ("starts interrupted, then retried", len(churn.interrupted_starts)),
        ("seconds", f"{seconds:.1f}"),
    ):
        figures.record(topic, what, value)

    assert daemon.restarts == KILLS
    assert not churn.unexpected
    assert [cid for cid in ids if len(runs[cid]) > 1] == []  # none ran twice
    assert not lost
    assert not duplicated
    assert not strangers
    # Only an interrupted task create on containerd < 2 keeps a container from running.
    assert not churn.stuck or version.startswith("1.")
    # A start cut by containerd's death whose task containerd then dropped may or may
    # not have run its process: start() never runs it again (at most once), and the
    # exit is reported once, as unknown (255).
    for cid in set(ids) - set(ran) - churn.stuck:
        assert cid in churn.interrupted_starts, cid
        (info,) = delivered[cid]
        assert (info.pid, info.exit_code) == (churn.pids[cid], 255), cid
        assert "exit code is unknown" in info.error, cid
        assert churn.deleted_codes[cid] is None, cid
    for cid in ran:
        (info,) = delivered[cid]
        if cid in churn.pids:
            assert info.pid == churn.pids[cid], cid
        if info.exit_code == 255:
            assert "exit code is unknown" in info.error, cid
            assert churn.exited_while_down(cid), cid
            assert churn.deleted_codes[cid] is None, cid
        else:
            expected = Churn.exit_code(int(cid.rsplit("-", 1)[1]))
            assert (info.exit_code, info.error) == (expected, ""), cid
            assert churn.deleted_codes[cid] in (expected, None), cid
    assert left == []
    assert shims == []
    assert orphans == {}


# -- (b) a clean stop and start under a running, a paused and an exited container ------

_restarts = itertools.count()
# Says so once the trap is installed (a USR1 before it would kill the shell with 138).
TRAP_USR1 = "trap 'exit 9' USR1; echo trapped; while true; do sleep 0.05; done"


async def test_containers_keep_their_state_across_a_clean_containerd_restart(
    workdir: Path, containerd: str
) -> None:
    """Stopped with Supervisor.stop() (containers stay) and started by a new Supervisor.

    The client opened before the stop is kept: it must reconnect by itself and
    report each exit once. The later non-exit events are checked on a client
    opened after the restart, since open() returns only once its subscription
    is live; the old client resubscribes at a moment it does not announce, and
    containerd replays nothing published before that (exits are reconciled,
    other events are not).
    """
    root = rootfs.busybox(workdir / "rootfs")
    before, after = ExitLedger(), ExitLedger()
    first = Supervisor(workdir / "s", workdir / "r", containerd=containerd)
    second = Supervisor(workdir / "s", workdir / "r", containerd=containerd)
    await first.start()
    old = AsyncClient(first.address, TEST_NAMESPACE, backend=before)
    await old.open()
    new: AsyncClient | None = None
    serial = next(_restarts)
    ids = {name: f"{name}-{os.getpid()}-{serial}" for name in ("running", "paused", "exited")}
    args = {"running": TRAP_USR1, "paused": "sleep 300", "exited": "exit 7"}
    try:
        pids = {}
        trap = Capture()
        for name, cid in ids.items():
            spec = oci.default_spec(["/bin/sh", "-c", args[name]], root, oci.with_readonly_rootfs())
            await old.create(cid, spec)
            pids[name] = await old.start(cid, attach_stdio=trap if name == "running" else None)
        await old.pause(ids["paused"])
        assert await before.wait_until(lambda: bool(before.exits[(ids["exited"],) * 2]))
        (exited_before,) = before.exits[(ids["exited"],) * 2]
        async with asyncio.timeout(30):  # the trap announces itself once installed
            assert await trap.readline() == b"trapped\n"

        await first.stop()
        assert all(process_alive(pids[name]) for name in ("running", "paused"))
        await second.start()
        version = second.version or "?"

        # Until its channel reconnects (gRPC's back-off, at most 2 s here) the old
        # client still answers Unavailable: the documented signal to retry.
        async with asyncio.timeout(30):
            while True:
                try:
                    listing = {info.id: info for info in await old.list_containers()}
                    break
                except Unavailable:
                    await asyncio.sleep(0.05)
        assert (listing[ids["running"]].status, listing[ids["running"]].pid) == (
            Status.RUNNING,
            pids["running"],
        )
        assert (listing[ids["paused"]].status, listing[ids["paused"]].pid) == (
            Status.PAUSED,
            pids["paused"],
        )
        assert await old.status(ids["running"]) is Status.RUNNING
        assert await old.status(ids["paused"]) is Status.PAUSED
        exited = listing[ids["exited"]]
        figures.record(
            "daemon faults: clean restart",
            f"containerd {version}: exited task after the restart",
            f"{exited.status}, exit code {exited.exit_code}",
        )
        # containerd 1.6 keeps a stopped task across its restart; 1.7 and 2.x delete,
        # as they start, every task whose processes have all exited (its exit was
        # reported before the stop, and is not reported again).
        keeps_stopped_tasks = version.startswith("1.6")
        if keeps_stopped_tasks:
            assert (exited.status, exited.pid, exited.exit_code) == (
                Status.STOPPED,
                pids["exited"],
                7,
            )
        else:
            assert (exited.status, exited.pid, exited.exit_code) == (None, None, None)

        new = AsyncClient(second.address, TEST_NAMESPACE, backend=after)
        await new.open()
        running, paused = ids["running"], ids["paused"]
        exec_spec = {"args": ["/bin/sh", "-c", "exit 5"], "cwd": "/", "env": ["PATH=/bin"]}
        await new.exec(running, "e1", exec_spec)
        assert (await new.wait(running, "e1"))[0] == 5
        await new.pause(running)
        assert await new.status(running) is Status.PAUSED
        await new.resume(running)
        await new.resume(paused)
        assert await new.status(paused) is Status.RUNNING
        if keeps_stopped_tasks:
            assert await new.delete_task(ids["exited"]) == (7, exited_before.exited_at)
        else:
            with pytest.raises(NotFound):
                await new.delete_task(ids["exited"])
        await new.signal_process(running, "init", "SIGUSR1")
        await new.signal_process(paused, "init", "SIGKILL")
        for ledger in (before, after):

            def both_exited(ledger: ExitLedger = ledger) -> bool:
                return all(ledger.exits[(cid, cid)] for cid in (running, paused))

            assert await ledger.wait_until(both_exited)
        assert await new.delete_task(running) == (9, after.exits[(running, running)][0].exited_at)
        assert (await new.delete_task(paused))[0] == 137
        # Late duplicates (the old client's reconcile, a re-sent exit) were published
        # before a later container's events: once its exit has come to both clients,
        # one stream each, in order, they would have shown.
        marker = f"marker-{os.getpid()}-{serial}"
        await new.create(marker, oci.default_spec(["/bin/true"], root, oci.with_readonly_rootfs()))
        await new.start(marker)
        for ledger in (before, after):

            def marker_exited(ledger: ExitLedger = ledger) -> bool:
                return bool(ledger.exits[(marker, marker)])

            assert await ledger.wait_until(marker_exited)
        await new.delete_task(marker)
        await new.delete(marker)
        assert after.types_of(running) == [
            EventType.EXEC_ADDED,
            EventType.EXEC_STARTED,
            EventType.EXIT,
            EventType.PAUSED,
            EventType.RESUMED,
            EventType.EXIT,
        ]
        assert after.types_of(paused) == [EventType.RESUMED, EventType.EXIT]
        assert [i.exit_code for i in after.exits[(running, "e1")]] == [5]
        # The old client, carried across the restart, saw each exit exactly once.
        assert [i.exit_code for i in before.exits[(ids["exited"],) * 2]] == [7]
        assert [i.exit_code for i in before.exits[(running, running)]] == [9]
        assert [i.exit_code for i in before.exits[(paused, paused)]] == [137]
    finally:
        for client in (new, old):
            if client is not None:
                await remove_everything(client)
        if new is not None:
            await new.close()
        await old.close()
        await second.stop()
        await first.stop()
    assert await shims_gone(second) == []


async def test_a_wait_in_flight_when_containerd_dies_raises_unavailable_at_once(
    workdir: Path, containerd: str
) -> None:
    """wait() takes a tracked process's exit from the event stream; a broken stream hands
    the waiter over to Tasks.Wait, which meets the dead daemon: Unavailable, no hang."""
    root = rootfs.busybox(workdir / "rootfs")
    daemon = Supervisor(workdir / "s", workdir / "r", containerd=containerd)
    async with daemon, AsyncClient(daemon.address, TEST_NAMESPACE) as client:
        cid = f"waiting-{os.getpid()}-{next(_restarts)}"
        try:
            await client.create(cid, oci.default_spec(["/bin/sleep", "300"], root))
            pid = await client.start(cid)
            waiting = asyncio.create_task(client.wait(cid))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            restarts = daemon.restarts
            os.kill(daemon.pid or 0, signal.SIGKILL)
            async with asyncio.timeout(10):
                with pytest.raises(Unavailable):
                    await waiting
            async with asyncio.timeout(60):
                await daemon.wait_ready(min_restarts=restarts + 1)
            os.kill(pid, signal.SIGKILL)
            async with asyncio.timeout(30):
                while True:
                    try:
                        code, _ = await client.wait(cid)
                        break
                    except Unavailable:
                        await asyncio.sleep(0.05)
            assert code == 137  # killed after the restart: a real exit on every version
        finally:
            await remove_everything(client)
