"""What only the blocking Client must do: work without an event loop, call back off-thread."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from libcontainerd import (
    INIT_PROCESS_ID,
    Client,
    CollectOutput,
    CopyToFiles,
    DirectIO,
    EventInfo,
    EventType,
    FailedPrecondition,
    NotFound,
    discard,
    oci,
    rootfs,
)
from libcontainerd.supervisor import Supervisor

from .containers import TEST_NAMESPACE, remove_container

pytestmark = pytest.mark.integration

PROGRAM = """
import sys
from libcontainerd import Client, oci, rootfs

address, root, container_id = sys.argv[1:4]
with Client(address, namespace="{namespace}") as client:
    spec = oci.default_spec(["/bin/sh", "-c", "exit 9"], rootfs.busybox(root))
    client.create(container_id, spec)
    client.start(container_id)
    code, _ = client.wait(container_id)
    client.delete_task(container_id)
    client.delete(container_id)
print("exit code", code)
"""


async def test_a_program_without_an_event_loop_runs_a_container(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            PROGRAM.format(namespace=TEST_NAMESPACE),
            supervisor.address,
            str(tmp_path / "rootfs"),
            "sync-program",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exit code 9"


def _run_one(client: Client, root: Path, container_id: str, args: list[str]) -> int:
    client.create(container_id, oci.default_spec(args, rootfs.busybox(root)))
    client.start(container_id)
    return client.wait(container_id)[0]


async def test_backend_callbacks_run_on_a_background_thread(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    threads: set[int] = set()
    exited = threading.Event()

    class Backend:
        def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
            threads.add(threading.get_ident())
            if event is EventType.EXIT and container_id == "sync-backend":
                exited.set()

    def scenario() -> int:
        with Client(supervisor.address, TEST_NAMESPACE, backend=Backend()) as client:
            try:
                code = _run_one(client, tmp_path / "rootfs", "sync-backend", ["/bin/true"])
                assert exited.wait(60)
                return code
            finally:
                asyncio.run(_cleanup(supervisor, "sync-backend"))

    caller = await asyncio.to_thread(lambda: (threading.get_ident(), scenario()))
    assert caller[1] == 0
    assert threads
    assert caller[0] not in threads


async def _cleanup(supervisor: Supervisor, container_id: str) -> None:
    from libcontainerd import AsyncClient

    async with AsyncClient(supervisor.address, TEST_NAMESPACE) as client:
        await remove_container(client, container_id)


async def test_it_works_when_called_from_inside_a_running_event_loop(
    supervisor: Supervisor,
) -> None:
    # Blocking the loop for a moment is the caller's choice; it must not deadlock.
    with Client(supervisor.address, TEST_NAMESPACE) as client:
        assert client.version().version


async def test_events_iteration_ends_when_closed_from_another_thread(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    def scenario() -> list[EventType]:
        seen: list[EventType] = []
        with Client(supervisor.address, TEST_NAMESPACE) as client:
            events = client.events()
            try:
                _run_one(client, tmp_path / "rootfs", "sync-events", ["/bin/true"])
                for container_id, event, _ in events:
                    if container_id == "sync-events":
                        seen.append(event)
                        if event is EventType.EXIT:
                            threading.Timer(0.1, events.close).start()
                # Reached only because close() from the timer's thread ended the loop.
            finally:
                asyncio.run(_cleanup(supervisor, "sync-events"))
        return seen

    seen = await asyncio.wait_for(asyncio.to_thread(scenario), 120)
    assert seen == [EventType.CREATE, EventType.START, EventType.EXIT]


async def test_a_call_from_the_clients_own_loop_thread_is_refused_not_deadlocked(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    # A stdio callback runs on the client's loop thread: a blocking call there would wait
    # for that very loop forever.
    def scenario() -> list[str]:
        refused: list[str] = []

        def attach(io: DirectIO) -> None:
            try:
                client.version()
            except FailedPrecondition as error:
                refused.append(str(error))
            discard(io)

        with Client(supervisor.address, TEST_NAMESPACE) as client:
            try:
                spec = oci.default_spec(["/bin/true"], rootfs.busybox(tmp_path / "rootfs"))
                client.create("sync-own-thread", spec)
                client.start("sync-own-thread", attach_stdio=attach)
                assert client.wait("sync-own-thread")[0] == 0
            finally:
                asyncio.run(_cleanup(supervisor, "sync-own-thread"))
        return refused

    refused = await asyncio.wait_for(asyncio.to_thread(scenario), 60)
    assert len(refused) == 1
    assert "own event-loop thread" in refused[0]


async def test_events_iteration_ends_with_its_client(supervisor: Supervisor) -> None:
    def scenario() -> list[tuple[str, EventType, EventInfo]]:
        with Client(supervisor.address, TEST_NAMESPACE) as client:
            events = client.events()
        seen = list(events)  # no error, no wait: the client's events ended with it
        events.close()  # and closing it afterwards is harmless
        return seen

    assert await asyncio.wait_for(asyncio.to_thread(scenario), 60) == []


async def test_attachers_are_waited_for_from_blocking_code(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    def scenario() -> None:
        with Client(supervisor.address, TEST_NAMESPACE) as client:
            root = rootfs.busybox(tmp_path / "rootfs")
            try:
                spec = oci.default_spec(["/bin/sh", "-c", "cat; echo oops >&2; exit 4"], root)
                client.create("sync-collect", spec)
                collected = CollectOutput(stdin=b"hello\n")
                client.start("sync-collect", with_stdin=True, attach_stdio=collected)
                assert collected.result(timeout=60) == (b"hello\n", b"oops\n")
                assert client.wait("sync-collect")[0] == 4

                until_term = "trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.05; done"
                client.create("sync-files", oci.default_spec(["/bin/sh", "-c", until_term], root))
                copied = CopyToFiles(tmp_path / "out.txt")
                client.start("sync-files", attach_stdio=copied)
                with pytest.raises(TimeoutError, match=r"did not end within 0\.2 s"):
                    copied.result(timeout=0.2)  # runs until signalled: the copy goes on
                for _ in range(120):  # TERM until the shell, once its trap is set, ends
                    client.signal_process("sync-files", INIT_PROCESS_ID, "TERM")
                    with contextlib.suppress(TimeoutError):
                        assert copied.result(timeout=0.5) is None
                        break
                assert (tmp_path / "out.txt").read_bytes() == b"got TERM\n"
            finally:
                for container_id in ("sync-collect", "sync-files"):
                    with contextlib.suppress(NotFound):
                        client.delete_task(container_id)
                    with contextlib.suppress(NotFound):
                        client.delete(container_id)

    await asyncio.to_thread(scenario)
