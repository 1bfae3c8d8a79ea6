"""Event decoding and the per-container dispatcher, without a daemon."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message

from libcontainerd._api.containerd.api.events import task_pb2 as events_pb2
from libcontainerd._api.containerd.api.services.events.v1 import events_pb2 as service_pb2
from libcontainerd._rpc import Connection
from libcontainerd.events import NO_PID, EventDispatcher, EventStream, decode, subscription_filter
from libcontainerd.types import EventInfo, EventType


def envelope(message: Message, *, prefix: str = "") -> service_pb2.Envelope:
    payload = any_pb2.Any(
        type_url=prefix + message.DESCRIPTOR.full_name, value=message.SerializeToString()
    )
    return service_pb2.Envelope(namespace="ns", topic="/tasks/x", event=payload)


def test_the_filter_selects_namespace_and_task_topics_in_one_expression() -> None:
    assert subscription_filter("lcd") == "namespace==lcd,topic~=|^/tasks/|"


def test_exit_carries_the_process_id_as_reported_and_the_real_code_and_time() -> None:
    exit_event = events_pb2.TaskExit(container_id="c", id="c", pid=42, exit_status=3)
    exit_event.exited_at.FromDatetime(datetime(2026, 11, 28, 12, 0, 1, tzinfo=UTC))
    decoded = decode(envelope(exit_event))
    assert decoded is not None
    event, info = decoded
    assert event is EventType.EXIT
    assert info == EventInfo(
        "c", "c", pid=42, exit_code=3, exited_at=datetime(2026, 11, 28, 12, 0, 1, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("message", "expected_type", "expected_info"),
    [
        (events_pb2.TaskCreate(container_id="c", pid=7), EventType.CREATE, EventInfo("c", "c", 7)),
        (events_pb2.TaskStart(container_id="c", pid=7), EventType.START, EventInfo("c", "c", 7)),
        (events_pb2.TaskOOM(container_id="c"), EventType.OOM, EventInfo("c", oom_killed=True)),
        (
            events_pb2.TaskExecAdded(container_id="c", exec_id="e"),
            EventType.EXEC_ADDED,
            EventInfo("c", "e"),
        ),
        (
            events_pb2.TaskExecStarted(container_id="c", exec_id="e", pid=9),
            EventType.EXEC_STARTED,
            EventInfo("c", "e", 9),
        ),
        (events_pb2.TaskPaused(container_id="c"), EventType.PAUSED, EventInfo("c")),
        (events_pb2.TaskResumed(container_id="c"), EventType.RESUMED, EventInfo("c")),
        (
            events_pb2.TaskExit(container_id="c", id="e", pid=9, exit_status=1),
            EventType.EXIT,
            EventInfo("c", "e", 9, 1),
        ),
    ],
)
def test_each_task_event_maps_as_in_the_reference(
    message: Message, expected_type: EventType, expected_info: EventInfo
) -> None:
    assert decode(envelope(message)) == (expected_type, expected_info)


def test_prefixed_type_urls_decode_too() -> None:
    decoded = decode(
        envelope(events_pb2.TaskPaused(container_id="c"), prefix="type.googleapis.com/")
    )
    assert decoded == (EventType.PAUSED, EventInfo("c"))


def test_unknown_undecodable_and_empty_payloads_are_skipped() -> None:
    unknown = service_pb2.Envelope(
        topic="/tasks/x", event=any_pb2.Any(type_url="example.Unknown", value=b"\x08\x01")
    )
    garbage = service_pb2.Envelope(
        topic="/tasks/exit",
        event=any_pb2.Any(type_url="containerd.events.TaskExit", value=b"\xff\xff\xff\xff"),
    )
    empty = service_pb2.Envelope(topic="/tasks/exit")
    assert decode(unknown) is None
    assert decode(garbage) is None
    assert decode(empty) is None
    assert decode(envelope(events_pb2.TaskDelete(container_id="c"))) is None


# -- the dispatcher -------------------------------------------------------------------------


async def test_events_of_one_container_run_in_order_even_if_the_first_is_slow() -> None:
    seen: list[int] = []

    async def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        if info.pid == 0:
            await asyncio.sleep(0.05)
        seen.append(info.pid)

    dispatcher = EventDispatcher(handler)
    for pid in range(3):
        dispatcher.dispatch("c", EventType.START, EventInfo("c", pid=pid))
    await dispatcher.drain()
    assert seen == [0, 1, 2]


async def test_a_blocked_async_handler_for_one_container_does_not_delay_another() -> None:
    release = asyncio.Event()
    other_done = asyncio.Event()
    handled: list[str] = []

    async def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        if container_id == "slow":
            await release.wait()
        else:
            other_done.set()
        handled.append(container_id)

    dispatcher = EventDispatcher(handler)
    dispatcher.dispatch("slow", EventType.START, EventInfo("slow"))
    dispatcher.dispatch("fast", EventType.START, EventInfo("fast"))
    async with asyncio.timeout(10):
        await other_done.wait()  # hangs (and fails) if "slow" blocks "fast"
    assert handled == ["fast"]  # the slow one is still held
    release.set()
    await dispatcher.drain()
    assert handled == ["fast", "slow"]


async def test_a_blocking_plain_handler_for_one_container_does_not_delay_another() -> None:
    release = threading.Event()
    other_done = threading.Event()

    def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        if container_id == "slow":
            release.wait(10)
        else:
            other_done.set()

    dispatcher = EventDispatcher(handler)
    dispatcher.dispatch("slow", EventType.START, EventInfo("slow"))
    dispatcher.dispatch("fast", EventType.START, EventInfo("fast"))
    assert await asyncio.to_thread(other_done.wait, 10)
    release.set()
    await dispatcher.drain()


async def test_a_raising_handler_is_logged_and_later_events_still_arrive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, int]] = []

    def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        if info.pid == 1:
            raise RuntimeError("backend bug")
        seen.append((container_id, info.pid))

    dispatcher = EventDispatcher(handler)
    for pid in range(3):
        dispatcher.dispatch("a", EventType.START, EventInfo("a", pid=pid))
    dispatcher.dispatch("b", EventType.START, EventInfo("b", pid=5))
    await dispatcher.drain()
    assert sorted(seen) == [("a", 0), ("a", 2), ("b", 5)]
    assert "container a" in caplog.text
    assert "backend bug" in caplog.text


async def test_plain_handlers_see_each_containers_events_in_order() -> None:
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        with lock:
            seen.setdefault(container_id, []).append(info.pid)

    dispatcher = EventDispatcher(handler)
    for pid in range(200):
        for container in ("a", "b", "c"):
            dispatcher.dispatch(container, EventType.START, EventInfo(container, pid=pid))
    await dispatcher.drain()
    assert seen == {name: list(range(200)) for name in ("a", "b", "c")}
    assert dispatcher.pending == 0


async def test_the_after_hook_runs_once_per_event_after_the_handler() -> None:
    order: list[str] = []

    async def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        order.append(f"handle {info.pid}")

    def after(container_id: str, event: EventType, info: EventInfo) -> None:
        order.append(f"after {info.pid}")

    dispatcher = EventDispatcher(handler, after)
    dispatcher.dispatch("a", EventType.EXIT, EventInfo("a", pid=1))
    dispatcher.dispatch("a", EventType.EXIT, EventInfo("a", pid=2))
    await dispatcher.drain()
    assert order == ["handle 1", "after 1", "handle 2", "after 2"]


async def test_with_a_plain_handler_the_after_hook_runs_on_the_event_loop() -> None:
    # The hook spawns tasks (the client releases an exited exec): it needs the loop,
    # not the worker thread that ran the plain handler.
    order: list[str] = []
    loop_thread = threading.current_thread()

    def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        order.append(f"handle {info.pid}")

    def after(container_id: str, event: EventType, info: EventInfo) -> None:
        asyncio.get_running_loop()
        assert threading.current_thread() is loop_thread
        order.append(f"after {info.pid}")

    dispatcher = EventDispatcher(handler, after)
    dispatcher.dispatch("a", EventType.EXIT, EventInfo("a", pid=1))
    dispatcher.dispatch("a", EventType.EXIT, EventInfo("a", pid=2))
    await dispatcher.drain()
    # Each hook after its own event's handler; both kinds in the events' order.
    assert [step for step in order if step.startswith("handle")] == ["handle 1", "handle 2"]
    assert [step for step in order if step.startswith("after")] == ["after 1", "after 2"]
    assert order.index("handle 1") < order.index("after 1")
    assert order.index("handle 2") < order.index("after 2")


async def test_close_cancels_a_handler_that_never_returns() -> None:
    async def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        await asyncio.Event().wait()

    dispatcher = EventDispatcher(handler)
    dispatcher.dispatch("a", EventType.START, EventInfo("a"))
    await dispatcher.close(grace=0.05)
    assert dispatcher.pending == 0


async def test_a_pid_less_exit_of_a_process_known_alive_is_dropped_for_its_real_exit() -> None:
    # containerd killed during a task's Start: the shim reports the start failed
    # (exit 137, pid -1), yet the process it created runs on and exits later.
    reported: list[EventInfo] = []
    channel = Connection("/nonexistent/containerd.sock", "ns", None)  # never dialled
    channel.open()
    stream = EventStream(channel, lambda _cid, _event, info: reported.append(info))
    try:
        stream.track("c", "c", 42)
        stream._handle(
            envelope(events_pb2.TaskExit(container_id="c", id="c", pid=NO_PID, exit_status=137))
        )
        stream._handle(
            envelope(events_pb2.TaskExit(container_id="c", id="c", pid=42, exit_status=3))
        )
    finally:
        await channel.close()
    assert [(info.pid, info.exit_code) for info in reported] == [(42, 3)]


async def test_a_pid_less_exit_of_a_process_never_seen_alive_is_reported() -> None:
    reported: list[EventInfo] = []
    channel = Connection("/nonexistent/containerd.sock", "ns", None)  # never dialled
    channel.open()
    stream = EventStream(channel, lambda _cid, _event, info: reported.append(info))
    try:
        stream._handle(
            envelope(events_pb2.TaskExit(container_id="c", id="c", pid=NO_PID, exit_status=137))
        )
    finally:
        await channel.close()
    assert [(info.pid, info.exit_code) for info in reported] == [(NO_PID, 137)]


# -- plain handlers on threads ----------------------------------------------------------------


async def test_plain_handlers_never_run_two_events_of_one_container_at_once() -> None:
    """Containers move between threads, but each one's events stay serial and in order."""
    seen: dict[str, list[int]] = {}
    running: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()

    def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        with lock:
            if container_id in running:
                overlaps.append(container_id)
            running.add(container_id)
        # Uneven call times, so containers are handed around between the threads.
        time.sleep(0.002 if (info.pid + len(container_id)) % 7 == 0 else 0)
        with lock:
            running.discard(container_id)
            seen.setdefault(container_id, []).append(info.pid)

    dispatcher = EventDispatcher(handler)
    names = [f"c{n}" for n in range(20)]
    for pid in range(40):
        for name in names:
            dispatcher.dispatch(name, EventType.START, EventInfo(name, pid=pid))
        if pid % 10 == 0:
            await asyncio.sleep(0.01)  # events also arrive while others are handled
    async with asyncio.timeout(30):
        await dispatcher.drain()
    await dispatcher.close()
    assert overlaps == []
    assert seen == {name: list(range(40)) for name in names}


async def test_plain_handlers_blocked_on_more_containers_than_threads_do_not_delay_another() -> (
    None
):
    """Every thread blocked still leaves a way through: another thread starts for the rest."""
    release = threading.Event()
    blocked = [f"slow{n}" for n in range(5)]  # more than the threads started up front
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()
    fast_done = threading.Event()

    def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        if container_id.startswith("slow") and info.pid == 0:
            release.wait(30)
        with lock:
            seen.setdefault(container_id, []).append(info.pid)
        if container_id == "fast":
            fast_done.set()

    dispatcher = EventDispatcher(handler)
    try:
        for name in blocked:
            dispatcher.dispatch(name, EventType.START, EventInfo(name, pid=0))
            dispatcher.dispatch(name, EventType.EXIT, EventInfo(name, pid=1))
        dispatcher.dispatch("fast", EventType.START, EventInfo("fast", pid=0))
        # Hangs (and fails) if the blocked containers hold every thread.
        assert await asyncio.to_thread(fast_done.wait, 20)
        with lock:
            assert not any(name in seen for name in blocked)
    finally:
        release.set()
    async with asyncio.timeout(30):
        await dispatcher.drain()
    await dispatcher.close()
    assert seen == {"fast": [0], **{name: [0, 1] for name in blocked}}


async def test_the_after_hook_of_a_plain_handler_runs_on_the_event_loop() -> None:
    """The client's hook starts tasks (an exec's release): it needs the loop's thread."""
    loop = asyncio.get_running_loop()
    handled: list[int] = []
    after_calls: list[tuple[int, bool]] = []

    def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        handled.append(info.pid)

    def after(container_id: str, event: EventType, info: EventInfo) -> None:
        after_calls.append((info.pid, asyncio.get_running_loop() is loop))

    dispatcher = EventDispatcher(handler, after)
    for pid in range(3):
        dispatcher.dispatch("a", EventType.EXIT, EventInfo("a", "e", pid=pid))
    async with asyncio.timeout(10):
        await dispatcher.drain()
    await dispatcher.close()
    assert handled == [0, 1, 2]
    assert after_calls == [(0, True), (1, True), (2, True)]


async def test_close_ends_the_handler_threads() -> None:
    before = set(threading.enumerate())

    def handler(container_id: str, event: EventType, info: EventInfo) -> None:
        pass

    dispatcher = EventDispatcher(handler)
    for name in ("a", "b", "c"):
        dispatcher.dispatch(name, EventType.START, EventInfo(name))
    await dispatcher.drain()
    started = set(threading.enumerate()) - before
    assert started, "plain handlers run on threads of the dispatcher"
    await dispatcher.close()
    async with asyncio.timeout(10):
        while any(thread.is_alive() for thread in started):
            await asyncio.sleep(0.01)


async def test_a_start_arriving_after_its_exit_is_dropped() -> None:
    # containerd killed during a task's Start: the reconcile reports the exit, and
    # the shim's start event, re-sent once containerd is back, arrives after it.
    reported: list[tuple[EventType, int]] = []
    channel = Connection("/nonexistent/containerd.sock", "ns", None)  # never dialled
    channel.open()
    stream = EventStream(channel, lambda _cid, event, info: reported.append((event, info.pid)))
    try:
        stream._handle(
            envelope(events_pb2.TaskExit(container_id="c", id="c", pid=42, exit_status=3))
        )
        stream._handle(envelope(events_pb2.TaskStart(container_id="c", pid=42)))
        stream._handle(envelope(events_pb2.TaskStart(container_id="c", pid=43)))
    finally:
        await channel.close()
    assert reported == [(EventType.EXIT, 42), (EventType.START, 43)]
    assert stream._alive == {("c", "c"): 43}


async def test_the_exit_of_a_discarded_never_started_process_is_not_reported() -> None:
    # A task created but never started, deleted: containerd 1.6 publishes 137 for its
    # pid (or 255 with pid 0 for a half-made one); no process ran, so no exit.
    reported: list[EventInfo] = []
    channel = Connection("/nonexistent/containerd.sock", "ns", None)  # never dialled
    channel.open()
    stream = EventStream(channel, lambda _cid, _event, info: reported.append(info))
    try:
        stream.track("c", "c", 42)
        stream.discard("c", "c", 42)
        stream.discard("c", "c", 0)
        for pid, code in ((42, 137), (0, 255)):
            stream._handle(
                envelope(events_pb2.TaskExit(container_id="c", id="c", pid=pid, exit_status=code))
            )
        stream._handle(
            envelope(events_pb2.TaskExit(container_id="c", id="c", pid=44, exit_status=5))
        )
    finally:
        await channel.close()
    assert [(info.pid, info.exit_code) for info in reported] == [(44, 5)]
    assert stream._alive == {}


def test_remembered_exits_keep_the_most_recent_and_stay_small() -> None:
    from libcontainerd.events import _RememberedExits

    exits = _RememberedExits(3)
    for pid in (1, 2, 3):
        exits.add(("c" * 64, "c" * 64, pid))
    exits.add(("c" * 64, "c" * 64, 1))  # seen again: now the most recent
    exits.add(("c" * 64, "c" * 64, 4))  # over the limit: 2, the oldest, goes
    assert [("c" * 64, "c" * 64, pid) in exits for pid in (1, 2, 3, 4)] == [
        True,
        False,
        True,
        True,
    ]
    assert len(exits) == 3

    import tracemalloc

    big = _RememberedExits(100_000)
    keys = [(f"container-{n:060d}", f"container-{n:060d}", 100_000 + n) for n in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in keys:
            big.add(key)
        per_exit = (tracemalloc.get_traced_memory()[0] - before) / len(keys)
    finally:
        tracemalloc.stop()
    assert per_exit < 120, per_exit  # a tuple of two 70-character ids would be ~340 B


# -- waiting for an exit on the stream ----------------------------------------------------------


@pytest.fixture
async def stream() -> AsyncIterator[EventStream]:
    """A live stream that reports to nobody, its channel never dialled."""
    channel = Connection("/nonexistent/containerd.sock", "ns", None)  # never dialled
    channel.open()
    events = EventStream(channel, lambda _cid, _event, _info: None)
    events._live.set()
    try:
        yield events
    finally:
        await channel.close()


async def test_exit_of_resolves_with_the_reported_exit_and_not_with_a_dropped_one(
    stream: EventStream,
) -> None:
    stream.track("c", "c", 42)
    stream.track("c", "x", 50)
    init, other = stream.exit_of("c", "c"), stream.exit_of("c", "x")
    second = stream.exit_of("c", "c")
    assert init is not None
    assert other is not None
    assert second is not None
    stream._handle(
        envelope(events_pb2.TaskExit(container_id="c", id="c", pid=NO_PID, exit_status=137))
    )
    await asyncio.sleep(0)
    assert not init.done()  # the pid-less exit of a start cut short is dropped
    stream._handle(envelope(events_pb2.TaskExit(container_id="c", id="c", pid=42, exit_status=3)))
    for future in (init, second):
        info = await future
        assert info is not None
        assert (info.pid, info.exit_code) == (42, 3)
    assert not other.done()
    later = stream.exit_of("c", "c")  # exited: answered from the reported exit
    assert later is not None
    assert later.done()
    assert later.result() == await init


async def test_exit_of_is_none_for_an_untracked_process_or_a_stream_not_live(
    stream: EventStream,
) -> None:
    stream._live.clear()
    stream.track("c", "c", 42)
    assert stream.exit_of("c", "c") is None  # not live: an exit may be missed
    stream._live.set()
    assert stream.exit_of("c", "other") is None
    assert stream.exit_of("d", "c") is None
    assert stream.exit_of("c", "c") is not None


async def test_waiters_learn_none_when_the_stream_can_no_longer_tell(stream: EventStream) -> None:
    # The task deleted, the process discarded, the stream closed: each sends the
    # caller to containerd (Tasks.Wait), never leaves it waiting for ever.
    for process in ("c", "x", "y"):
        stream.track("c", process, 40)
    stream.track("d", "d", 41)
    futures = {p: stream.exit_of(c, p) for c, p in (("c", "c"), ("c", "x"), ("c", "y"))}
    discarded = stream.exit_of("d", "d")
    stream._handle(envelope(events_pb2.TaskDelete(container_id="c", id="c", pid=40)))
    stream.discard("d", "d", 41)
    for future in (*futures.values(), discarded):
        assert future is not None
        assert future.done()
        assert future.result() is None
    stream.track("e", "e", 43)
    closing = stream.exit_of("e", "e")
    await stream.close()
    assert closing is not None
    assert closing.done()
    assert closing.result() is None
    assert stream._waiters == {}


async def test_a_waiter_that_gives_up_is_forgotten(stream: EventStream) -> None:
    stream.track("c", "c", 42)
    for _ in range(3):
        future = stream.exit_of("c", "c")
        assert future is not None
        future.cancel()
        stream.forget_waiter("c", "c", future)
    assert stream._waiters == {}


async def test_a_reported_exit_answers_until_its_task_is_deleted_or_made_again(
    stream: EventStream,
) -> None:
    def exit_code(process: str) -> int | None:
        future = stream.exit_of("c", process)
        if future is None:
            return None
        assert future.done()
        info = future.result()
        assert info is not None
        return info.exit_code

    stream.track("c", "c", 42)
    for exec_id, pid, code in (("x", 50, 6), ("y", 51, 7), ("c", 42, 3)):
        stream._handle(
            envelope(events_pb2.TaskExit(container_id="c", id=exec_id, pid=pid, exit_status=code))
        )
    assert (exit_code("c"), exit_code("x"), exit_code("y")) == (3, 6, 7)
    stream._handle(envelope(events_pb2.TaskDelete(container_id="c", id="x", pid=50)))
    assert (exit_code("c"), exit_code("x"), exit_code("y")) == (3, None, 7)
    stream._handle(envelope(events_pb2.TaskDelete(container_id="c", id="c", pid=42)))
    assert (exit_code("c"), exit_code("y")) == (None, None)
    assert stream._exited == {}

    stream._handle(envelope(events_pb2.TaskExit(container_id="c", id="c", pid=60, exit_status=1)))
    assert exit_code("c") == 1
    stream._handle(envelope(events_pb2.TaskCreate(container_id="c", pid=61)))
    assert exit_code("c") is None  # another task: ask containerd
    stream._handle(envelope(events_pb2.TaskExit(container_id="c", id="c", pid=61, exit_status=2)))
    stream.track("c", "c", 62)  # a new process by that id: wait for it
    pending = stream.exit_of("c", "c")
    assert pending is not None
    assert not pending.done()
    stream.forget_waiter("c", "c", pending)
    stream._handle(envelope(events_pb2.TaskExit(container_id="c", id="c", pid=62, exit_status=4)))
    stream.forget_exits("c")  # the client deleted the task itself
    assert exit_code("c") is None


def test_track_says_whether_the_exit_was_reported_already(stream: EventStream) -> None:
    assert stream.track("c", "x", 50) is True
    stream._handle(envelope(events_pb2.TaskExit(container_id="c", id="x", pid=50, exit_status=0)))
    assert stream.track("c", "x", 50) is False  # an exit of that process came: nothing to track
    assert ("c", "x") not in stream._alive
    assert stream.track("c", "x", 51) is True  # another process by that id


# -- the OOM decision of an exit ------------------------------------------------------------


@pytest.mark.parametrize(
    ("oom_event_first", "count", "oom_killed", "made_up_oom"),
    [
        # The cgroup's own count decides: a kill there is an OOM kill, event or not;
        # one no event announced gets an oom event made up just before the exit.
        pytest.param(False, 1, True, True, id="counted-kill-no-event"),
        pytest.param(True, 1, True, False, id="counted-kill-announced"),
        # An oom event is only a hint: a count of 0 says nothing was killed.
        pytest.param(True, 0, False, False, id="hint-but-no-kill"),
        pytest.param(False, 0, False, False, id="nothing"),
        # Count unreadable (the cgroup is gone): the hint is all there is.
        pytest.param(True, None, True, False, id="unreadable-with-hint"),
        pytest.param(False, None, False, False, id="unreadable-no-hint"),
    ],
)
async def test_an_exits_oom_flag_follows_the_cgroups_kill_count_and_falls_back_on_the_hint(
    monkeypatch: pytest.MonkeyPatch,
    oom_event_first: bool,
    count: int | None,
    oom_killed: bool,
    made_up_oom: bool,
) -> None:
    reported: list[tuple[EventType, EventInfo]] = []
    channel = Connection("/nonexistent/containerd.sock", "ns", None)  # never dialled
    channel.open()
    stream = EventStream(channel, lambda _cid, event, info: reported.append((event, info)))

    async def kill_count(container_id: str) -> int | None:
        assert container_id == "c"
        return count

    monkeypatch.setattr(stream, "read_oom_kills", kill_count)
    try:
        stream.track("c", "c", 42)
        if oom_event_first:
            await stream._receive(envelope(events_pb2.TaskOOM(container_id="c")))
        await stream._receive(
            envelope(events_pb2.TaskExit(container_id="c", id="c", pid=42, exit_status=137))
        )
    finally:
        await channel.close()
    types = [event for event, _ in reported]
    assert types[-1] is EventType.EXIT
    assert reported[-1][1].oom_killed is oom_killed
    assert reported[-1][1].exit_code == 137
    announced = oom_event_first or made_up_oom
    assert types == [*([EventType.OOM] if announced else []), EventType.EXIT]
