"""The stream's OOM rules, fed envelopes and a count of OOM kills (Tasks.Metrics) it reads.

The count at an exit decides ``oom_killed``; oom events are a hint, coalesced
to one per exit, dropped after the container's exit, and made up before an
exit whose count shows a kill no event announced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message

from libcontainerd._api.cgroups.stats.v1 import metrics_pb2 as cgroups_v1
from libcontainerd._api.containerd.api.events import task_pb2 as events_pb2
from libcontainerd._api.containerd.api.services.events.v1 import events_pb2 as service_pb2
from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
from libcontainerd._api.containerd.api.types import metrics_pb2
from libcontainerd._rpc import Connection
from libcontainerd.events import EventStream
from libcontainerd.metrics import CGROUPS_V1_METRICS
from libcontainerd.types import EventInfo, EventType

Reported = list[tuple[EventType, EventInfo]]


def envelope(message: Message) -> service_pb2.Envelope:
    payload = any_pb2.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())
    return service_pb2.Envelope(namespace="ns", topic="/tasks/x", event=payload)


class Counts:
    """Stands for Tasks.Metrics: the OOM kill count of each container (None: no metrics)."""

    def __init__(self) -> None:
        self.kills: dict[str, int | None] = {}
        self.calls = 0

    async def __call__(self, request: tasks_pb2.MetricsRequest, **_: Any) -> Any:
        self.calls += 1
        (wanted,) = request.filters
        container_id = wanted.removeprefix('id=="').removesuffix('"')
        kills = self.kills.get(container_id)
        reply = tasks_pb2.MetricsResponse()
        if kills is not None:
            data = cgroups_v1.Metrics(
                memory_oom_control=cgroups_v1.MemoryOomControl(oom_kill=kills)
            )
            reply.metrics.append(
                metrics_pb2.Metric(
                    id=container_id,
                    data=any_pb2.Any(type_url=CGROUPS_V1_METRICS, value=data.SerializeToString()),
                )
            )
        return reply


@pytest.fixture
async def stream() -> AsyncIterator[tuple[EventStream, Reported, Counts]]:
    reported: Reported = []
    channel = Connection("/nonexistent/containerd.sock", "ns", None)  # never dialled
    channel.open()
    events = EventStream(channel, lambda _cid, event, info: reported.append((event, info)))
    counts = Counts()
    events._metrics = counts  # type: ignore[assignment]
    try:
        yield events, reported, counts
    finally:
        await channel.close()


def oom() -> service_pb2.Envelope:
    return envelope(events_pb2.TaskOOM(container_id="c"))


def exit_of(process_id: str = "c", pid: int = 42, code: int = 137) -> service_pb2.Envelope:
    return envelope(events_pb2.TaskExit(container_id="c", id=process_id, pid=pid, exit_status=code))


async def killed_and_deleted(events: EventStream, counts: Counts) -> None:
    """Task c (pid 42) OOM-killed: its exit, then its deletion."""
    counts.kills["c"] = 1
    await events._receive(exit_of())
    await events._receive(envelope(events_pb2.TaskDelete(container_id="c", id="c", pid=42)))


def kinds(reported: Reported) -> list[str]:
    return [f"{event.value}{'*' if info.oom_killed else ''}" for event, info in reported]


async def test_an_exit_is_flagged_by_the_count_even_without_an_oom_event(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    events, reported, counts = stream
    counts.kills["c"] = 1
    await events._receive(exit_of())
    # The backend still learns of the kill as an event, just before the exit.
    assert kinds(reported) == ["oom*", "exit*"]


async def test_an_oom_event_without_a_kill_does_not_flag_the_exit(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    events, reported, counts = stream
    counts.kills["c"] = 0
    await events._receive(oom())
    await events._receive(exit_of(code=1))
    assert kinds(reported) == ["oom*", "exit"]


async def test_oom_events_are_coalesced_to_one_before_an_exit_and_dropped_after_it(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    events, reported, counts = stream
    counts.kills["c"] = 3
    for _ in range(1000):
        await events._receive(oom())
    await events._receive(exit_of())
    for _ in range(10):
        await events._receive(oom())  # late: after the container's exit
    assert kinds(reported) == ["oom*", "exit*"]


async def test_an_exec_exit_lets_one_more_oom_event_through(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    events, reported, counts = stream
    counts.kills["c"] = 1
    await events._receive(oom())
    await events._receive(exit_of("e1", pid=50))
    await events._receive(oom())
    await events._receive(oom())
    await events._receive(exit_of())
    assert kinds(reported) == ["oom*", "exit*", "oom*", "exit*"]
    # Once the count shows a kill, later exits of the task need no call.
    assert counts.calls == 1


async def test_without_metrics_the_oom_events_decide(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    events, reported, counts = stream
    counts.kills["c"] = None  # e.g. the task was deleted at once
    await events._receive(oom())
    await events._receive(exit_of())
    assert kinds(reported) == ["oom*", "exit*"]


async def test_a_new_task_starts_with_no_oom_state(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    events, reported, counts = stream
    await killed_and_deleted(events, counts)
    counts.kills["c"] = 0
    await events._receive(envelope(events_pb2.TaskCreate(container_id="c", pid=43)))
    await events._receive(exit_of(pid=43, code=0))
    assert kinds(reported) == ["oom*", "exit*", "create", "exit"]


async def test_an_oom_event_after_the_task_is_deleted_is_dropped_until_a_new_init_runs(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    events, reported, counts = stream
    await killed_and_deleted(events, counts)
    await events._receive(oom())  # containerd's late one: the task is gone
    await events._receive(envelope(events_pb2.TaskCreate(container_id="c", pid=43)))
    await events._receive(oom())  # still stale: the new init has not started
    await events._receive(envelope(events_pb2.TaskStart(container_id="c", pid=43)))
    await events._receive(oom())  # the new task's own
    assert kinds(reported) == ["oom*", "exit*", "create", "start", "oom*"]


async def test_a_create_that_comes_late_is_its_own_tasks_not_a_new_one(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    """A shim re-sends an event it failed to publish, later: here the task's create."""
    events, reported, counts = stream
    counts.kills["c"] = 1
    await events._receive(envelope(events_pb2.TaskStart(container_id="c", pid=42)))
    await events._receive(oom())
    await events._receive(envelope(events_pb2.TaskCreate(container_id="c", pid=42)))
    await events._receive(exit_of())
    await events._receive(envelope(events_pb2.TaskCreate(container_id="c", pid=42)))
    await events._receive(oom())
    # One oom event for the one kill; the late creates reach the backend as they came.
    assert kinds(reported) == ["start", "oom*", "create*", "exit*", "create*"]
    assert events.reported_oom("c", "c") is True  # the exit is still kept for wait()


async def test_a_new_task_after_a_deletion_starts_afresh(
    stream: tuple[EventStream, Reported, Counts],
) -> None:
    events, reported, counts = stream
    await killed_and_deleted(events, counts)
    await events._receive(envelope(events_pb2.TaskCreate(container_id="c", pid=77)))
    await events._receive(envelope(events_pb2.TaskStart(container_id="c", pid=77)))
    counts.kills["c"] = 0
    await events._receive(oom())
    await events._receive(exit_of(pid=77, code=1))
    assert kinds(reported) == ["oom*", "exit*", "create", "start", "oom*", "exit"]
