"""Task events on a real containerd: order, OOM, isolation, and exactly-once across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest

from libcontainerd import oci
from libcontainerd._api.containerd.api.events import task_pb2 as events_pb2
from libcontainerd._api.containerd.api.services.events.v1 import events_pb2 as service_pb2
from libcontainerd.client import AsyncClient
from libcontainerd.errors import AlreadyExists
from libcontainerd.events import subscription_filter
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID, EventInfo, EventType

from .containers import TEST_NAMESPACE, Capture, ContainerFactory

pytestmark = pytest.mark.integration

Record = tuple[str, EventType, EventInfo]


class Recorder:
    """A backend that records every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[Record] = []
        self._changed = asyncio.Event()

    async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        self.events.append((container_id, event, info))
        self._changed.set()

    def of(self, container_id: str) -> list[tuple[EventType, EventInfo]]:
        return [(event, info) for cid, event, info in self.events if cid == container_id]

    def types_of(self, container_id: str) -> list[EventType]:
        return [event for event, _ in self.of(container_id)]

    def exits_of(self, container_id: str) -> list[EventInfo]:
        return [info for event, info in self.of(container_id) if event is EventType.EXIT]

    async def wait_until(self, condition: Callable[[], bool], within: float = 60) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def watched(
    supervisor: Supervisor, recorder: Recorder, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ContainerFactory]:
    """A container factory whose client reports to ``recorder``."""
    async with AsyncClient(supervisor.address, TEST_NAMESPACE, backend=recorder) as client:
        factory = ContainerFactory(client, tmp_path_factory.mktemp("watched"))
        try:
            yield factory
        finally:
            await factory.cleanup()


async def test_create_start_and_exit_arrive_in_order_with_the_exit_code(
    watched: ContainerFactory, recorder: Recorder
) -> None:
    container_id = await watched.create(["/bin/sh", "-c", "exit 5"])
    pid = await watched.client.start(container_id)
    await recorder.wait_until(lambda: EventType.EXIT in recorder.types_of(container_id))
    assert recorder.types_of(container_id) == [EventType.CREATE, EventType.START, EventType.EXIT]
    (exit_info,) = recorder.exits_of(container_id)
    assert exit_info.process_id == container_id  # the init process, as on the wire
    assert (exit_info.pid, exit_info.exit_code, exit_info.oom_killed) == (pid, 5, False)
    assert exit_info.exited_at is not None
    code, exited_at = await watched.client.delete_task(container_id)
    assert (code, exited_at) == (5, exit_info.exited_at)


# A code above 128 by exit(), and a death by signal (what users see most): 128 + signal.
@pytest.mark.parametrize(
    ("args", "signal_name", "code"),
    [
        pytest.param(["/bin/sh", "-c", "exit 200"], None, 200, id="exit-200"),
        pytest.param(["/bin/sleep", "300"], "SIGKILL", 137, id="sigkill-137"),
    ],
)
async def test_the_exit_event_carries_a_high_code_or_a_signal_death_whole(
    watched: ContainerFactory,
    recorder: Recorder,
    args: list[str],
    signal_name: str | None,
    code: int,
) -> None:
    client = watched.client
    subscription = client.events()
    container_id = await watched.run(args)
    if signal_name is not None:
        await client.signal_process(container_id, INIT_PROCESS_ID, signal_name)
    await recorder.wait_until(lambda: bool(recorder.exits_of(container_id)))
    (exit_info,) = recorder.exits_of(container_id)
    assert (exit_info.exit_code, exit_info.oom_killed, exit_info.error) == (code, False, "")
    async with asyncio.timeout(60), subscription:
        async for cid, event, info in subscription:
            if cid == container_id and event is EventType.EXIT:
                assert info.exit_code == code
                break
    assert await client.delete_task(container_id) == (code, exit_info.exited_at)


async def test_an_exec_killed_by_sigterm_is_reported_with_143(
    watched: ContainerFactory, recorder: Recorder
) -> None:
    client = watched.client
    container_id = await watched.run()
    await client.exec(container_id, "e1", {"args": ["/bin/sleep", "300"], "cwd": "/"})
    await client.signal_process(container_id, "e1", "SIGTERM")

    def exec_exits() -> list[EventInfo]:
        return [info for info in recorder.exits_of(container_id) if info.process_id == "e1"]

    await recorder.wait_until(lambda: bool(exec_exits()))
    assert [info.exit_code for info in exec_exits()] == [143]


async def test_pause_and_resume_are_reported(watched: ContainerFactory, recorder: Recorder) -> None:
    container_id = await watched.run()
    await watched.client.pause(container_id)
    await watched.client.resume(container_id)
    await recorder.wait_until(lambda: EventType.RESUMED in recorder.types_of(container_id))
    assert recorder.types_of(container_id) == [
        EventType.CREATE,
        EventType.START,
        EventType.PAUSED,
        EventType.RESUMED,
    ]


async def test_an_oom_kill_reports_oom_then_an_exit_marked_oom_killed(
    watched: ContainerFactory, recorder: Recorder
) -> None:
    container_id = await watched.create(
        ["/bin/sh", "-c", 's=xxxxxxxx; while true; do s="$s$s"; done'],
        oci.with_resources({"memory": {"limit": 16 << 20, "swap": 16 << 20}}),
    )
    await watched.client.start(container_id)
    await recorder.wait_until(lambda: bool(recorder.exits_of(container_id)))
    types = recorder.types_of(container_id)
    assert EventType.OOM in types
    assert types.index(EventType.OOM) < types.index(EventType.EXIT)
    (exit_info,) = recorder.exits_of(container_id)
    assert exit_info.oom_killed
    assert exit_info.exit_code == 137


async def test_the_oom_flag_ends_when_the_task_is_deleted(
    watched: ContainerFactory, recorder: Recorder
) -> None:
    container_id = await watched.create(
        ["/bin/sh", "-c", 's=xxxxxxxx; while true; do s="$s$s"; done'],
        oci.with_resources({"memory": {"limit": 16 << 20, "swap": 16 << 20}}),
    )
    client = watched.client
    await client.start(container_id)
    await recorder.wait_until(lambda: bool(recorder.exits_of(container_id)))
    await client.delete_task(container_id)
    await client.delete(container_id)
    # The same id again, this time a process that exits normally.
    spec = watched.spec(["/bin/true"], container_id=container_id)
    await client.create(container_id, spec)
    await client.start(container_id)
    await recorder.wait_until(lambda: len(recorder.exits_of(container_id)) == 2)
    assert [info.oom_killed for info in recorder.exits_of(container_id)] == [True, False]


async def test_fifty_concurrent_containers_each_get_their_events_in_order(
    watched: ContainerFactory, recorder: Recorder
) -> None:
    ids = await asyncio.gather(*(watched.create(["/bin/true"]) for _ in range(50)))
    await asyncio.gather(*(watched.client.start(container_id) for container_id in ids))
    await recorder.wait_until(lambda: all(recorder.exits_of(c) for c in ids), within=120)
    for container_id in ids:
        assert recorder.types_of(container_id) == [
            EventType.CREATE,
            EventType.START,
            EventType.EXIT,
        ], container_id


async def test_a_slow_backend_for_one_container_does_not_delay_another(
    supervisor: Supervisor, tmp_path_factory: pytest.TempPathFactory
) -> None:
    release = threading.Event()
    seen: list[Record] = []
    fast_exited = threading.Event()

    class Backend:
        def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
            # A plain, blocking backend: it holds the slow container's queue.
            if container_id.startswith("slow-"):
                release.wait(60)
            seen.append((container_id, event, info))
            if event is EventType.EXIT and container_id == fast_id:
                fast_exited.set()

    async with AsyncClient(supervisor.address, TEST_NAMESPACE, backend=Backend()) as client:
        factory = ContainerFactory(client, tmp_path_factory.mktemp("slow"))
        try:
            slow_id, fast_id = factory.new_id("slow"), factory.new_id("fast")
            await client.create(slow_id, factory.spec(["/bin/true"], container_id=slow_id))
            factory.created.append(slow_id)
            await client.start(slow_id)
            await client.create(fast_id, factory.spec(["/bin/true"], container_id=fast_id))
            factory.created.append(fast_id)
            await client.start(fast_id)
            # Hangs (and times out) if the blocked slow container held up the fast one.
            assert await asyncio.to_thread(fast_exited.wait, 60)
            assert not any(cid == slow_id for cid, _, _ in seen)
        finally:
            release.set()
            await factory.cleanup()
    assert [e for cid, e, _ in seen if cid == slow_id] == [
        EventType.CREATE,
        EventType.START,
        EventType.EXIT,
    ]


async def test_a_raising_backend_does_not_stop_the_stream(
    supervisor: Supervisor,
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exits: list[str] = []

    class Backend:
        async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
            if event is EventType.START:
                raise RuntimeError("backend bug on start")
            if event is EventType.EXIT:
                exits.append(container_id)

    async with AsyncClient(supervisor.address, TEST_NAMESPACE, backend=Backend()) as client:
        factory = ContainerFactory(client, tmp_path_factory.mktemp("raising"))
        try:
            first = await factory.run(["/bin/true"])
            second = await factory.run(["/bin/true"])
            async with asyncio.timeout(60):
                while set(exits) != {first, second}:
                    await asyncio.sleep(0.02)
        finally:
            await factory.cleanup()
    assert "backend bug on start" in caplog.text
    assert first in caplog.text


async def test_a_plain_backend_gets_every_exit_and_the_client_releases_its_exec(
    supervisor: Supervisor, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The client's after-delivery step (an exec's release) runs on its loop, not a handler thread.

    Run on a handler thread, it raised for want of an event loop: the exec
    was never released and the events after it in the batch were lost.
    """
    seen: list[tuple[str, str]] = []
    init_exited = threading.Event()

    class Backend:
        def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
            if event is EventType.EXIT:
                seen.append((container_id, info.process_id))
                if info.process_id == container_id:
                    init_exited.set()

    async with AsyncClient(supervisor.address, TEST_NAMESPACE, backend=Backend()) as client:
        factory = ContainerFactory(client, tmp_path_factory.mktemp("plain"))
        try:
            container_id = await factory.run()
            true = {"args": ["/bin/true"], "cwd": "/", "env": [oci.DEFAULT_PATH_ENV]}
            await client.exec(container_id, "e1", true)
            async with asyncio.timeout(30):
                assert (await client.wait(container_id, "e1"))[0] == 0
                while True:  # released by the event path, so its id is free again
                    try:
                        await client.exec(container_id, "e1", true)
                        break
                    except AlreadyExists:
                        await asyncio.sleep(0.02)
                await client.signal_process(container_id, INIT_PROCESS_ID, "SIGKILL")
                assert (await client.wait(container_id))[0] == 137
            assert await asyncio.to_thread(init_exited.wait, 30)
        finally:
            await factory.cleanup()
    exited = [process for cid, process in seen if cid == container_id]
    assert exited.count(container_id) == 1
    assert "e1" in exited


async def test_events_can_be_iterated_instead_of_a_backend(watched: ContainerFactory) -> None:
    subscription = watched.client.events()  # receives events from now, before iteration starts
    container_id = await watched.run(["/bin/sh", "-c", "exit 2"])
    seen: list[tuple[EventType, EventInfo]] = []
    async with asyncio.timeout(60), subscription:
        async for cid, event, info in subscription:
            if cid == container_id:
                seen.append((event, info))
                if event is EventType.EXIT:
                    break
    assert [event for event, _ in seen] == [EventType.CREATE, EventType.START, EventType.EXIT]
    assert seen[-1][1].exit_code == 2


async def test_an_unknown_payload_is_skipped_and_the_stream_goes_on(
    watched: ContainerFactory, recorder: Recorder, supervisor: Supervisor
) -> None:
    async with grpc.aio.insecure_channel(f"unix://{supervisor.address}") as channel:
        publish = channel.unary_unary(
            "/containerd.services.events.v1.Events/Publish",
            request_serializer=service_pb2.PublishRequest.SerializeToString,
            response_deserializer=lambda data: data,
        )
        for type_url, value in (
            ("example.NotAnEvent", b"\x08\x01"),
            ("containerd.events.TaskExit", b"\xff\xff"),
        ):
            request = service_pb2.PublishRequest(topic="/tasks/exit")
            request.event.type_url, request.event.value = type_url, value
            await publish(request, metadata=(("containerd-namespace", TEST_NAMESPACE),))
    # Published before it, so the stream has handled both payloads when its exit arrives.
    container_id = await watched.run(["/bin/true"])
    await recorder.wait_until(lambda: bool(recorder.exits_of(container_id)))
    # Neither payload became an event (of no container, or with a made-up exit): only the
    # container's own three came, and the stream that brought them still works.
    assert [(cid, event) for cid, event, _ in recorder.events] == [
        (container_id, EventType.CREATE),
        (container_id, EventType.START),
        (container_id, EventType.EXIT),
    ]


# -- exactly once ------------------------------------------------------------------------


# The shell says so once its trap is installed: a TERM before that would be ignored
# (pid 1 has no default action) and the test would hang until its timeout.
TRAP_TERM = "trap 'exit 3' TERM; echo trapped; while true; do sleep 0.05; done"
# containerd's shim re-sends an event it could not publish 1, 2, ... 5 s apart (at
# most 5 tries): a duplicate from that source comes within this of containerd being back.
SHIM_RESEND_WINDOW = 6.0


async def trap_installed(capture: Capture) -> None:
    """Wait until the container's shell has announced its trap (a hang fails after 30 s)."""
    async with asyncio.timeout(30):
        assert await capture.readline() == b"trapped\n"


async def test_exits_while_containerd_is_down_are_delivered_exactly_once(
    workdir: Path, recorder: Recorder, containerd: str
) -> None:
    daemon = Supervisor(workdir / "s", workdir / "r", containerd=containerd)
    async with daemon, AsyncClient(daemon.address, TEST_NAMESPACE, backend=recorder) as client:
        factory = ContainerFactory(client, workdir / "containers")
        try:
            ids = [await factory.create(["/bin/sh", "-c", TRAP_TERM]) for _ in range(6)]
            captures = {cid: Capture() for cid in ids}
            pids = {cid: await client.start(cid, attach_stdio=captures[cid]) for cid in ids}
            for capture in captures.values():
                await trap_installed(capture)
            expected = {}
            loop = asyncio.get_running_loop()
            for round_ in range(2):
                batch = ids[round_ * 3 : round_ * 3 + 3]
                restarts = daemon.restarts
                os.kill(daemon.pid or 0, signal.SIGKILL)
                # containerd is down: one container ends by SIGKILL, two by a trapped TERM.
                os.kill(pids[batch[0]], signal.SIGKILL)
                expected[batch[0]] = 137
                for cid in batch[1:]:
                    os.kill(pids[cid], signal.SIGTERM)
                    expected[cid] = 3
                async with asyncio.timeout(60):
                    await daemon.wait_ready(min_restarts=restarts + 1)
                back_at = loop.time()

                def batch_exited(batch: list[str] = batch) -> bool:
                    return all(recorder.exits_of(c) for c in batch)

                await recorder.wait_until(batch_exited)
            # Late duplicates: the reconcile's come before a later container's events (one
            # stream, in order); a shim's re-sent exit comes within SHIM_RESEND_WINDOW of
            # containerd being back. Wait for both, failing at the first duplicate seen.
            later = await factory.run(["/bin/true"])
            await recorder.wait_until(lambda: bool(recorder.exits_of(later)))
            with contextlib.suppress(TimeoutError):
                await recorder.wait_until(
                    lambda: any(len(recorder.exits_of(cid)) > 1 for cid in expected),
                    within=max(0.0, back_at + SHIM_RESEND_WINDOW - loop.time()),
                )
            discards_dead_tasks = not (daemon.version or "").startswith("1.6")
            for cid, code in expected.items():
                (exit_info,) = recorder.exits_of(cid)  # exactly one each
                assert exit_info.pid == pids[cid]
                assert exit_info.exited_at is not None
                if discards_dead_tasks and exit_info.exit_code == 255:
                    # containerd >= 1.7 deletes, at start-up, a task whose processes all
                    # ended while it was down, and its exit code with it.
                    assert "exit code is unknown" in exit_info.error
                else:
                    assert (exit_info.exit_code, exit_info.error) == (code, ""), cid
            # The client needed no restart: it still works (its events came above).
            assert (await client.version()).version
        finally:
            await factory.cleanup()


def _parent_of(pid: int) -> int:
    """The parent of a container's init process is its shim."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def test_a_dead_shims_duplicate_exit_is_not_reported_twice(
    watched: ContainerFactory, recorder: Recorder, supervisor: Supervisor
) -> None:
    # A raw subscriber sees what containerd publishes, duplicates included.
    raw_exits: list[events_pb2.TaskExit] = []
    ready = asyncio.Event()

    async def listen(container_id: str) -> None:
        async with grpc.aio.insecure_channel(f"unix://{supervisor.address}") as channel:
            subscribe = channel.unary_stream(
                "/containerd.services.events.v1.Events/Subscribe",
                request_serializer=service_pb2.SubscribeRequest.SerializeToString,
                response_deserializer=service_pb2.Envelope.FromString,
            )
            call = subscribe(
                service_pb2.SubscribeRequest(filters=[subscription_filter(TEST_NAMESPACE)])
            )
            ready.set()
            async for envelope in call:
                if envelope.event.type_url.endswith("TaskExit"):
                    message = events_pb2.TaskExit.FromString(envelope.event.value)
                    if message.container_id == container_id:
                        raw_exits.append(message)

    container_id = await watched.create(["/bin/sh", "-c", TRAP_TERM])
    listener = asyncio.create_task(listen(container_id))
    try:
        await ready.wait()
        capture = Capture()
        pid = await watched.client.start(container_id, attach_stdio=capture)
        shim = _parent_of(pid)
        await trap_installed(capture)
        await watched.client.signal_process(container_id, INIT_PROCESS_ID, "SIGTERM")
        await recorder.wait_until(lambda: bool(recorder.exits_of(container_id)))
        # The shim dies before the task is deleted: containerd cleans up after it and
        # publishes an exit of its own.
        os.kill(shim, signal.SIGKILL)
        async with asyncio.timeout(60):
            while len(raw_exits) < 2:
                await asyncio.sleep(0.05)
        # containerd has published its duplicate; this client's stream gets events in
        # that order, so once a later container's exit has come, the duplicate was handled.
        later = await watched.run(["/bin/true"])
        await recorder.wait_until(lambda: bool(recorder.exits_of(later)))
    finally:
        listener.cancel()
    assert all(message.pid == pid for message in raw_exits)
    assert [info.exit_code for info in recorder.exits_of(container_id)] == [3]


async def test_an_exec_exit_releases_the_exec_without_stalling_the_containers_events(
    watched: ContainerFactory, recorder: Recorder
) -> None:
    # moby#39383: the exec exits, but a child it left behind keeps its output open.
    from libcontainerd.stdio import discard

    client = watched.client
    container_id = await watched.run()
    spec = {"args": ["/bin/sh", "-c", "sleep 300 & exit 4"], "cwd": "/", "env": ["PATH=/bin"]}
    await client.exec(container_id, "e1", spec, attach_stdio=discard)
    await recorder.wait_until(
        lambda: any(info.process_id == "e1" for info in recorder.exits_of(container_id))
    )
    exec_exit = next(info for info in recorder.exits_of(container_id) if info.process_id == "e1")
    assert exec_exit.exit_code == 4
    fifo_dir = Path(client.fifo_dir) / TEST_NAMESPACE / container_id

    async def released() -> bool:
        return not any(fifo_dir.glob("e1-*"))

    async with asyncio.timeout(30):
        while not await released():
            await asyncio.sleep(0.02)
    # The container's queue is not stuck behind the exec: later events still arrive.
    await client.pause(container_id)
    await client.resume(container_id)
    await recorder.wait_until(lambda: EventType.RESUMED in recorder.types_of(container_id))
    assert recorder.types_of(container_id)[-4:] == [
        EventType.EXEC_STARTED,
        EventType.EXIT,
        EventType.PAUSED,
        EventType.RESUMED,
    ]
