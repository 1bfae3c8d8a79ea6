"""Short execs under load: an exec is never released while its Start is in flight.

containerd's Tasks.Start runs the process, then reads its state to answer with
the pid. An exec that exits at once can have its exit event delivered before
that answer; releasing it then (DeleteProcess) made the Start fail with
NotFound although the process ran. These tests hold a Start's answer back
until the exit has been delivered (deterministic), and run the load that
first showed it: many containers, execs started together in each.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
from typing import Any

import pytest

from libcontainerd import oci
from libcontainerd.client import AsyncClient
from libcontainerd.types import EventInfo, EventType

from .. import figures
from .containers import (
    ContainerFactory,
    NewClient,
    containerd_holds_exec,
    eventually,
    remove_container,
)

pytestmark = pytest.mark.integration

# CI's size is the issue's: 1,200 short execs in a run (40 containers, 4 at a time, 10
# execs started together in each, three rounds).
LOAD_EXECS = int(os.environ.get("LIBCONTAINERD_EXEC_LOAD_EXECS", "1200"))
EXECS_PER_CONTAINER = 10
CONTAINERS_AT_ONCE = 4


def process(*args: str) -> dict[str, Any]:
    return {"args": list(args), "cwd": "/", "env": [oci.DEFAULT_PATH_ENV]}


class ExitCounter:
    """Counts the exits delivered to the backend, per (container, process, pid)."""

    def __init__(self) -> None:
        self.exits: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.codes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.delivered: dict[tuple[str, str], asyncio.Event] = {}

    def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        if event is not EventType.EXIT:
            return
        with self._lock:
            self.exits[(container_id, info.process_id, info.pid)] += 1
            self.codes[(container_id, info.process_id)] = info.exit_code


@pytest.mark.async_only(
    reason="holds the Start reply back by wrapping the client's own method table"
)
async def test_an_exec_whose_exit_is_delivered_before_its_start_answers_returns_its_pid(
    new_client: NewClient, containers: ContainerFactory
) -> None:
    counter = ExitCounter()
    async with new_client(backend=counter) as client:
        factory = ContainerFactory(client, containers.workdir)
        try:
            container_id = await factory.run()
            calls = hold_exec_starts_until_their_exit(client, counter, container_id)
            pid = await client.exec(container_id, "quick", process("sh", "-c", "exit 7"))
            assert counter.exits[(container_id, "quick", pid)] == 1
            assert (await client.wait(container_id, "quick"))[0] == 7
            # The release came only after the Start answered, and it did come.
            await eventually(lambda: "delete_process" in calls, "the exec's release")
            assert calls == ["start answered", "delete_process"]
            assert not await containerd_holds_exec(client.address, container_id, "quick")
        finally:
            await factory.cleanup()


def hold_exec_starts_until_their_exit(
    client: AsyncClient, counter: ExitCounter, container_id: str
) -> list[str]:
    """Make each exec's Start answer only once its exit has reached the backend.

    Returns the order of what happened: "start answered", "delete_process".
    """
    methods = client._connection.methods
    assert methods is not None
    calls: list[str] = []
    start, delete_process = methods.tasks.start, methods.tasks.delete_process

    async def held_start(request: Any, **kwargs: Any) -> Any:
        reply = await start(request, **kwargs)
        if request.exec_id:
            await eventually(
                lambda: any(key[:2] == (container_id, request.exec_id) for key in counter.exits),
                "the exit delivered while the Start answer is held",
            )
            await asyncio.sleep(0.2)  # a release made on that exit would run now
        if request.exec_id:
            calls.append("start answered")
        return reply

    def counted_delete(request: Any, **kwargs: Any) -> Any:
        calls.append("delete_process")
        return delete_process(request, **kwargs)

    methods.tasks.start = held_start  # type: ignore[assignment]
    methods.tasks.delete_process = counted_delete  # type: ignore[assignment]
    return calls


async def test_a_thousand_short_execs_started_together_all_return_and_exit_once(
    new_client: NewClient, containers: ContainerFactory, client_kind: str
) -> None:
    counter = ExitCounter()
    rounds = max(LOAD_EXECS // (EXECS_PER_CONTAINER * 40), 1)
    containers_total = 40 * rounds
    failures: list[str] = []
    started: dict[tuple[str, str], int] = {}
    begun = time.perf_counter()
    async with new_client(backend=counter) as client:
        factory = ContainerFactory(client, containers.workdir)
        gate = asyncio.Semaphore(CONTAINERS_AT_ONCE)

        async def one_container() -> None:
            async with gate:
                container_id = await factory.run()
                try:

                    async def one_exec(index: int) -> None:
                        exec_id = f"e{index}"
                        try:
                            pid = await client.exec(
                                container_id, exec_id, process("sh", "-c", f"exit {index}")
                            )
                        except Exception as error:
                            failures.append(f"{container_id}/{exec_id}: {error!r}")
                            return
                        started[(container_id, exec_id)] = pid
                        code, _ = await client.wait(container_id, exec_id)
                        if code != index:
                            failures.append(f"{container_id}/{exec_id}: code {code}, not {index}")

                    await asyncio.gather(*(one_exec(i) for i in range(EXECS_PER_CONTAINER)))
                finally:
                    await remove_container(client, container_id)

        try:
            await asyncio.gather(*(one_container() for _ in range(containers_total)))
            # Every exit comes, once (the container's init exits are counted too).
            execs = len(started)
            await eventually(
                lambda: sum(1 for key in counter.exits if key[1] != key[0]) >= execs,
                "every exec's exit delivered",
            )
        finally:
            await factory.cleanup()
    seconds = time.perf_counter() - begun
    exec_exits = {key: n for key, n in counter.exits.items() if key[1] != key[0]}
    duplicates = sum(n - 1 for n in exec_exits.values())
    missing = [key for key, pid in started.items() if (*key, pid) not in exec_exits]
    wrong = [key for key in started if counter.codes.get(key) != int(key[1][1:])]
    topic = f"exec load ({client_kind})"
    figures.record(
        topic,
        "execs (containers x execs started together, containers at a time)",
        f"{containers_total * EXECS_PER_CONTAINER}"
        f" ({containers_total} x {EXECS_PER_CONTAINER}, {CONTAINERS_AT_ONCE})",
    )
    figures.record(topic, "exec() failures", len(failures))
    figures.record(
        topic,
        "exits delivered / duplicates / missing / wrong code",
        f"{len(exec_exits)} / {duplicates} / {len(missing)} / {len(wrong)}",
    )
    figures.record(topic, "seconds", f"{seconds:.1f}")
    assert failures == []
    assert len(started) == containers_total * EXECS_PER_CONTAINER
    assert duplicates == 0
    assert missing == []
    assert wrong == []
