"""OOM kills are reported exactly: the container cgroup's own count decides, events only hint.

An exit is flagged ``oom_killed`` iff the kernel's OOM killer killed a
process of that container (its cgroup's ``oom_kill`` count, read at the
exit before the task and its cgroup can go), on the exit event, in
``wait()``'s and ``delete_task()``'s :class:`ExitStatus` and in
``Stats.oom_kills``; a backend gets at most one ``oom`` event per exit and
none after the container's exit. The load test's size comes from
``$LIBCONTAINERD_TEST_OOM_CONTAINERS`` (OOM-killed containers, as many clean
ones again; CI: 200) at ``$LIBCONTAINERD_TEST_OOM_CONCURRENCY`` (10).
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import (
    AsyncClient,
    EventInfo,
    EventType,
    ExitStatus,
    oci,
    rootfs,
)
from libcontainerd.supervisor import Supervisor

from .. import figures
from .containers import (
    TEST_NAMESPACE,
    ContainerFactory,
    NewClient,
    eventually,
    remove_container,
)

pytestmark = pytest.mark.integration

OOM_CONTAINERS = int(os.environ.get("LIBCONTAINERD_TEST_OOM_CONTAINERS", "200"))
OOM_CONCURRENCY = int(os.environ.get("LIBCONTAINERD_TEST_OOM_CONCURRENCY", "10"))

LIMIT = 32 << 20
# busybox tail keeps every line it has read: /dev/zero has no line end, so it grows until killed.
HOG = ("/bin/tail", "/dev/zero")
MEMORY = oci.with_memory_limit(LIMIT)


class OomLedger:
    """A backend that keeps every event by container, in order.

    A plain function: with the blocking Client it runs on a worker thread, and
    the test's loop polls (an asyncio.Event set from another thread wakes nobody).
    """

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[EventType, EventInfo]]] = collections.defaultdict(list)

    def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        self.events[container_id].append((event, info))

    def exits(self, container_id: str) -> list[EventInfo]:
        return [info for event, info in self.events[container_id] if event is EventType.EXIT]

    def ooms(self, container_id: str) -> list[int]:
        """Where each oom event came, as its index among the container's events."""
        return [
            index
            for index, (event, _) in enumerate(self.events[container_id])
            if event is EventType.OOM
        ]

    async def wait_for_exit(self, container_id: str, seconds: float = 60) -> EventInfo:
        await eventually(lambda: bool(self.exits(container_id)), "the exit event", seconds)
        return self.exits(container_id)[0]


async def test_an_oom_killed_exit_is_flagged_on_wait_stats_and_delete_task(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.run(HOG, MEMORY)

    status = await client.wait(container_id)
    stats = await client.stats(container_id)  # the exited task keeps its cgroup until deleted
    deleted = await client.delete_task(container_id)

    code, exited_at = status  # still a 2-tuple
    assert isinstance(status, ExitStatus)
    assert (code, status.exit_code, status.oom_killed) == (137, 137, True)
    assert exited_at is not None
    assert exited_at == status.exited_at
    assert stats.oom_kills >= 1
    assert deleted == status
    assert deleted.oom_killed is True


async def test_a_clean_exit_is_not_flagged_and_counts_no_kill(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.run(("/bin/sh", "-c", "exit 3"), MEMORY)

    status = await client.wait(container_id)
    stats = await client.stats(container_id)
    deleted = await client.delete_task(container_id)

    assert (status.exit_code, status.oom_killed) == (3, False)
    assert stats.oom_kills == 0
    assert (deleted.exit_code, deleted.oom_killed) == (3, False)


async def test_a_process_killed_by_hand_with_sigkill_is_not_flagged(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.run(("/bin/sleep", "300"), MEMORY)
    await client.signal_process(container_id, "init", "SIGKILL")

    status = await client.wait(container_id)

    assert (status.exit_code, status.oom_killed) == (137, False)


async def test_the_exit_event_is_flagged_with_one_oom_event_before_it_and_none_after(
    new_client: NewClient, containers: ContainerFactory
) -> None:
    ledger = OomLedger()
    async with new_client(backend=ledger) as watcher:
        container_id = await containers.run(HOG, MEMORY)
        info = await ledger.wait_for_exit(container_id)
        await watcher.wait(container_id)
        await asyncio.sleep(0.5)  # late oom events get their chance to show

    assert (info.exit_code, info.oom_killed) == (137, True)
    exit_index = [event for event, _ in ledger.events[container_id]].index(EventType.EXIT)
    assert len(ledger.ooms(container_id)) == 1
    assert ledger.ooms(container_id)[0] < exit_index


async def test_an_exec_killed_by_the_oom_killer_flags_its_exit(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.run(("/bin/sleep", "300"), MEMORY)
    process = {"args": list(HOG), "cwd": "/", "env": [oci.DEFAULT_PATH_ENV]}
    await client.exec(container_id, "hog", process)

    status = await client.wait(container_id, "hog")

    assert (status.exit_code, status.oom_killed) == (137, True)


async def test_a_client_that_did_not_see_the_exit_reads_the_count(
    new_client: NewClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run(HOG, MEMORY)
    await containers.client.wait(container_id)

    async with new_client() as late:  # its stream never saw the process: Tasks.Wait
        status = await late.wait(container_id)
        deleted = await late.delete_task(container_id)

    assert (status.exit_code, status.oom_killed) == (137, True)
    assert (deleted.exit_code, deleted.oom_killed) == (137, True)


def _count_metrics_calls(client: AsyncClient) -> list[str]:
    """The Tasks.Metrics calls the client's event stream makes from now on (by container)."""
    stream = client._session.stream
    assert stream is not None
    calls: list[str] = []
    metrics = stream._metrics

    def counted(request: Any, **kw: Any) -> Any:
        calls.append(str(request.filters[0]))
        return metrics(request, **kw)

    stream._metrics = counted  # type: ignore[assignment]
    return calls


@pytest.mark.async_only(reason="counts the calls of the AsyncClient's own event stream")
@pytest.mark.parametrize("found", [True, False], ids=["cgroup file", "no cgroup file"])
async def test_an_exit_reads_its_count_from_the_cgroup_file_on_this_host_else_asks(
    containers: ContainerFactory, monkeypatch: pytest.MonkeyPatch, found: bool
) -> None:
    client = containers.client
    if not found:  # as for a client in another pid namespace or cgroup view than the runtime
        monkeypatch.setattr("libcontainerd.events.oom_count_file", lambda *_: None)
    calls = _count_metrics_calls(client)
    hog = await containers.run(HOG, MEMORY)
    clean = await containers.run(("/bin/sh", "-c", "exit 0"), MEMORY)

    statuses = [await client.wait(hog), await client.wait(clean)]
    deleted = [await client.delete_task(hog), await client.delete_task(clean)]

    assert [(s.exit_code, s.oom_killed) for s in statuses] == [(137, True), (0, False)]
    assert [(s.exit_code, s.oom_killed) for s in deleted] == [(137, True), (0, False)]
    if found:
        assert calls == []  # no Tasks.Metrics: a millisecond less per exit
    else:
        assert sorted(calls) == sorted([f'id=="{hog}"', f'id=="{clean}"'])


async def test_hundreds_of_oom_kills_and_clean_exits_are_each_flagged_exactly(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    ledger = OomLedger()
    root = rootfs.busybox(tmp_path / "rootfs")
    ids = {
        f"oom-{kind}-{os.getpid()}-{index}": kind
        for index in range(OOM_CONTAINERS)
        for kind in ("hog", "clean")
    }
    statuses: dict[str, ExitStatus] = {}
    slots = asyncio.Semaphore(OOM_CONCURRENCY)
    started = time.monotonic()

    async with AsyncClient(supervisor.address, TEST_NAMESPACE, backend=ledger) as client:

        async def one(container_id: str, kind: str) -> None:
            args = HOG if kind == "hog" else ("/bin/sh", "-c", "exit 0")
            async with slots:
                try:
                    await client.create(container_id, oci.default_spec(list(args), root, MEMORY))
                    await client.start(container_id)
                    statuses[container_id] = await client.wait(container_id)
                    await ledger.wait_for_exit(container_id)
                    await client.delete_task(container_id)
                finally:
                    await remove_container(client, container_id)

        await asyncio.gather(*(one(cid, kind) for cid, kind in ids.items()))
        await asyncio.sleep(0.5)  # late oom events get their chance to show

    hogs = [cid for cid, kind in ids.items() if kind == "hog"]
    cleans = [cid for cid, kind in ids.items() if kind == "clean"]
    flagged_events = [cid for cid in hogs if ledger.exits(cid)[0].oom_killed]
    flagged_waits = [cid for cid in hogs if statuses[cid].oom_killed]
    false_flags = [
        cid for cid in cleans if ledger.exits(cid)[0].oom_killed or statuses[cid].oom_killed
    ]
    oom_events = collections.Counter(len(ledger.ooms(cid)) for cid in hogs)
    version = supervisor.version or "?"
    figures.record(
        "OOM",
        f"containerd {version}: {OOM_CONTAINERS} OOM-killed + {OOM_CONTAINERS} clean"
        f" at {OOM_CONCURRENCY}",
        f"{len(flagged_events)}/{len(hogs)} exits flagged, {len(false_flags)} false flags,"
        f" oom events per killed container {dict(oom_events)},"
        f" {time.monotonic() - started:.1f} s",
    )
    assert all(statuses[cid].exit_code == 137 for cid in hogs)
    assert len(flagged_events) == len(flagged_waits) == len(hogs)
    assert false_flags == []
    assert set(oom_events) == {1}  # one per killed container, never more
    assert all(ledger.ooms(cid) == [] for cid in cleans)
