"""Exec on a real containerd: exit codes, stdio, terminals, clean-up, and every refusal."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import oci
from libcontainerd.client import AsyncClient
from libcontainerd.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
)
from libcontainerd.stdio import CollectOutput, LogFile, discard
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID, Backend, EventInfo, EventType

from .containers import (
    TEST_NAMESPACE,
    Capture,
    ContainerFactory,
    NewClient,
    containerd_holds_exec,
    eventually,
    output_of,
    process_alive,
)

pytestmark = pytest.mark.integration


def process(*args: str, **fields: Any) -> dict[str, Any]:
    """An OCI process spec as an exec takes it."""
    return {"args": list(args), "cwd": "/", "env": [oci.DEFAULT_PATH_ENV], **fields}


def exec_fifos(client: AsyncClient, container_id: str, exec_id: str) -> list[str]:
    directory = Path(client.fifo_dir) / TEST_NAMESPACE / container_id
    if not directory.exists():
        return []
    return sorted(name for name in os.listdir(directory) if name.startswith(f"{exec_id}-"))


def exec_released(
    supervisor: Supervisor, container_id: str, exec_id: str
) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: containerd has forgotten the exec (a client deleted it)."""

    async def released() -> bool:
        return not await containerd_holds_exec(supervisor.address, container_id, exec_id)

    return released


async def test_exec_returns_a_live_pid_and_wait_gives_its_exit_code(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    pid = await client.exec(container_id, "e1", process("/bin/sleep", "300"))
    assert process_alive(pid)
    assert pid in await client.list_pids(container_id)
    await client.signal_process(container_id, "e1", "SIGKILL")
    async with asyncio.timeout(30):
        assert (await client.wait(container_id, "e1"))[0] == 137
    pid = await client.exec(container_id, "e2", process("/bin/sh", "-c", "exit 5"))
    async with asyncio.timeout(30):
        code, exited_at = await client.wait(container_id, "e2")
    assert (code, exited_at is not None) == (5, True)


async def test_exec_output_and_stdin_round_trip(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    output = CollectOutput(stdin=b"to cat\n")
    spec = process("/bin/sh", "-c", "cat; echo err >&2")
    async with asyncio.timeout(30):
        await client.exec(container_id, "e1", spec, with_stdin=True, attach_stdio=output)
        assert await output_of(client, output) == (b"to cat\n", b"err\n")
        assert (await client.wait(container_id, "e1"))[0] == 0


async def test_an_exec_with_empty_stdin_does_not_hang(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    # moby#37870: closing stdin before the exec has started must still reach it.
    container_id = await containers.run()
    async with asyncio.timeout(30):
        await client.exec(
            container_id, "e1", process("/bin/cat"), with_stdin=True, attach_stdio=discard
        )
        assert (await client.wait(container_id, "e1"))[0] == 0


async def test_close_stdin_ends_an_exec_reading_its_input(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    capture = Capture()
    async with asyncio.timeout(30):
        await client.exec(
            container_id, "e1", process("/bin/cat"), with_stdin=True, attach_stdio=capture
        )
        await capture.write(b"abc\n")
        assert await capture.readline() == b"abc\n"
        await client.close_stdin(container_id, "e1")
        assert (await client.wait(container_id, "e1"))[0] == 0


async def test_a_tty_exec_sees_a_resize(client: AsyncClient, containers: ContainerFactory) -> None:
    container_id = await containers.run()
    capture = Capture()
    spec = process("/bin/sh", terminal=True)
    async with asyncio.timeout(30):
        await client.exec(container_id, "t1", spec, with_stdin=True, attach_stdio=capture)
        assert (capture.io.terminal, capture.io.stderr) == (True, None)
        await client.resize_terminal(container_id, "t1", 123, 45)
        await capture.write(b"stty size; exit 3\n")
        output = await capture.read()
        assert (await client.wait(container_id, "t1"))[0] == 3
    assert b"45 123" in output


async def test_an_exec_in_log_file_mode_writes_to_the_file(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor, tmp_path: Path
) -> None:
    container_id = await containers.run()
    log_path = tmp_path / "exec.log"
    spec = process("/bin/sh", "-c", "echo from-exec")
    async with asyncio.timeout(30):
        await client.exec(container_id, "e1", spec, attach_stdio=LogFile(log_path))
        await client.wait(container_id, "e1")
        # The client deletes (releases) the exited exec; its shim has written the file by then.
        await eventually(exec_released(supervisor, container_id, "e1"), "the exec's release")
    assert log_path.read_bytes() == b"from-exec\n"


# -- clean-up -----------------------------------------------------------------------------


async def test_an_exited_exec_is_released_with_its_fifos(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor
) -> None:
    container_id = await containers.run()
    capture = Capture()
    # The exec waits for a line on stdin, so its FIFOs are surely there when looked at.
    spec = process("/bin/sh", "-c", "read line; echo hi")
    await client.exec(container_id, "e1", spec, with_stdin=True, attach_stdio=capture)
    assert exec_fifos(client, container_id, "e1") == ["e1-stderr", "e1-stdin", "e1-stdout"]
    assert await containerd_holds_exec(supervisor.address, container_id, "e1")
    await capture.write(b"go\n")
    await capture.close_stdin()
    async with asyncio.timeout(30):
        assert (await capture.read(), await capture.read_stderr()) == (b"hi\n", b"")
        await client.wait(container_id, "e1")
        # Its exit event has the client release it: FIFOs first, then containerd's record.
        await eventually(exec_released(supervisor, container_id, "e1"), "the exec's release")
    assert exec_fifos(client, container_id, "e1") == []
    # containerd has forgotten the exec; the client still knows how it ended.
    assert (await client.wait(container_id, "e1"))[0] == 0
    # The id is free again.
    await client.exec(container_id, "e1", process("/bin/true"))


class _PlainBackend:
    def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        pass


class _AsyncBackend:
    async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        pass


@pytest.mark.parametrize("backend", [_PlainBackend(), _AsyncBackend()], ids=["plain", "async"])
async def test_an_exited_exec_is_released_whatever_the_backend(
    containers: ContainerFactory, new_client: NewClient, supervisor: Supervisor, backend: Backend
) -> None:
    # A plain backend runs on a worker thread; the release that follows it needs the loop.
    container_id = await containers.run()
    async with new_client(backend=backend) as owner:
        output = CollectOutput()
        await owner.exec(container_id, "e1", process("/bin/echo", "hi"), attach_stdio=output)
        async with asyncio.timeout(30):
            assert await output_of(owner, output) == (b"hi\n", b"")
        await eventually(exec_released(supervisor, container_id, "e1"), "the release")
        assert exec_fifos(owner, container_id, "e1") == []
        assert (await owner.wait(container_id, "e1"))[0] == 0  # remembered after the release
        await owner.exec(container_id, "e1", process("/bin/true"))  # containerd forgot it


async def test_a_background_child_holding_the_output_does_not_stall_the_release(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor
) -> None:
    # moby#39383: the exec exits, but a child it left behind keeps its stdout open.
    container_id = await containers.run()
    output = CollectOutput()
    spec = process("/bin/sh", "-c", "sleep 300 & echo started")
    async with asyncio.timeout(60):
        await client.exec(container_id, "e1", spec, attach_stdio=output)
        assert (await client.wait(container_id, "e1"))[0] == 0
        # The release after its exit event does not wait for that output to end ...
        await eventually(exec_released(supervisor, container_id, "e1"), "the exec's release")
        # ... and deleting the exec closes the shim's copy, so the output ends too.
        assert await output_of(client, output) == (b"started\n", b"")
    assert exec_fifos(client, container_id, "e1") == []
    assert (await client.wait(container_id, "e1"))[0] == 0  # remembered after the release


@pytest.mark.async_only(
    reason="calls the exec table's release, an internal the blocking Client does not expose"
)
async def test_release_exec_never_raises(client: AsyncClient, containers: ContainerFactory) -> None:
    container_id = await containers.run()
    await client._execs.release(container_id, "never-started")
    await client._execs.release("no-such-container", "e1")
    await client._execs.release(container_id, "../bad")


async def test_a_missing_executable_fails_the_exec_start_and_cleans_up(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    output = CollectOutput()
    with pytest.raises(LibcontainerdError, match="/bin/nope") as raised:
        await client.exec(
            container_id, "e1", process("/bin/nope"), with_stdin=True, attach_stdio=output
        )
    # containerd passes runc's failure on as UNKNOWN: no more specific kind exists.
    assert raised.value.code == "UNKNOWN"
    assert exec_fifos(client, container_id, "e1") == []
    async with asyncio.timeout(30):
        assert await output_of(client, output) == (b"", b"")
    with pytest.raises(NotFound):
        await client.wait(container_id, "e1")
    await client.exec(container_id, "e1", process("/bin/true"))


async def test_an_exec_id_in_use_raises_already_exists(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.exec(container_id, "e1", process("/bin/sleep", "300"), attach_stdio=discard)
    with pytest.raises(AlreadyExists, match=r"'e1'.*exec by that id is running \(pid \d+\)"):
        await client.exec(container_id, "e1", process("/bin/true"), attach_stdio=discard)
    with pytest.raises(AlreadyExists, match=r"'e1'.*exec by that id is running"):
        await client.exec(container_id, "e1", process("/bin/true"))
    # The running exec kept its FIFOs.
    assert exec_fifos(client, container_id, "e1") == ["e1-stderr", "e1-stdout"]
    # An exited exec is released, and its id is free again as soon as wait() returns.
    await client.exec(container_id, "e2", process("/bin/true"))
    assert (await client.wait(container_id, "e2"))[0] == 0
    await client.exec(container_id, "e2", process("/bin/true"))


REUSES = 30


async def test_an_exec_id_can_be_reused_as_soon_as_wait_returns(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    # wait() may answer before the exit event that releases the exec arrives: the
    # release must neither refuse the next exec of that id nor delete it.
    container_id = await containers.run()
    async with asyncio.timeout(120):
        for round_ in range(REUSES):
            spec = process("/bin/sh", "-c", f"exit {round_ % 7}")
            output = CollectOutput() if round_ % 2 else None
            await client.exec(container_id, "again", spec, attach_stdio=output)
            assert (await client.wait(container_id, "again"))[0] == round_ % 7, round_
            if output is not None:
                assert await output_of(client, output) == (b"", b"")
        await client.exec(container_id, "again", process("/bin/sleep", "300"))
        await client.signal_process(container_id, "again", "SIGKILL")
        assert (await client.wait(container_id, "again"))[0] == 137


async def test_an_exec_of_another_client_is_left_for_it_to_release(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor
) -> None:
    container_id = await containers.run()
    async with AsyncClient(supervisor.address, namespace=TEST_NAMESPACE) as other:
        await other.exec(container_id, "theirs", process("/bin/sleep", "0.2"))
    # Its client has gone before its exit: this one sees the exit, and leaves the exec be.
    async with asyncio.timeout(30):
        assert (await client.wait(container_id, "theirs"))[0] == 0
    await asyncio.sleep(0.5)  # time enough for a release, were it to come
    with pytest.raises(AlreadyExists, match=r"'theirs'.*has exited but is not deleted yet"):
        await client.exec(container_id, "theirs", process("/bin/true"))


async def test_exec_without_a_task_raises_failed_precondition(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create()
    with pytest.raises(FailedPrecondition, match="not running"):
        await client.exec(container_id, "e1", process("/bin/true"), attach_stdio=discard)
    assert exec_fifos(client, container_id, "e1") == []


async def test_exec_in_a_stopped_container_raises_failed_precondition(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run(["/bin/true"])
    await client.wait(container_id)
    with pytest.raises(FailedPrecondition, match="stopped"):
        await client.exec(container_id, "e1", process("/bin/true"))


async def test_exec_in_a_paused_container_raises_failed_precondition(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    await client.pause(container_id)
    with pytest.raises(FailedPrecondition, match="paused"):
        await client.exec(container_id, "e1", process("/bin/true"), attach_stdio=discard)
    assert exec_fifos(client, container_id, "e1") == []


async def test_exec_in_an_unknown_container_raises_not_found(client: AsyncClient) -> None:
    with pytest.raises(NotFound, match="no such container"):
        await client.exec("no-such-container", "e1", process("/bin/true"))


async def test_wait_for_an_unknown_exec_names_it(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    with pytest.raises(NotFound, match="no process 'zz'"):
        await client.wait(container_id, "zz")
    with pytest.raises(NotFound, match="no process 'zz'"):
        await client.resize_terminal(container_id, "zz", 80, 24)
    with pytest.raises(NotFound, match="no process 'zz'"):
        await client.close_stdin(container_id, "zz")


# -- refused before anything is sent ---------------------------------------------------------
# An unknown container would give NotFound: InvalidArgument shows nothing was asked.


@pytest.mark.parametrize("bad_id", ["../x", "", "a b", "x" * 77, INIT_PROCESS_ID])
async def test_a_bad_exec_id_is_refused(client: AsyncClient, bad_id: str) -> None:
    with pytest.raises(InvalidArgument, match="process id"):
        await client.exec("no-such-container", bad_id, process("/bin/true"))


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"cwd": "/"}, r"process\.args"),
        ({"args": [], "cwd": "/"}, r"process\.args"),
        ({"args": ["/bin/true"], "cwd": "tmp"}, r"process\.cwd"),
        ({"args": ["/bin/true"]}, r"process\.cwd"),
        ({"args": ["/bin/true"], "cwd": "/", "env": ["NOEQUALS"]}, r"process\.env\[0\]"),
        ({"args": ["/bin/true"], "cwd": "/", "terminal": "yes"}, r"process\.terminal"),
    ],
)
async def test_a_bad_process_spec_is_refused_naming_the_field(
    client: AsyncClient, spec: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidArgument, match=named):
        await client.exec("no-such-container", "e1", spec)


@pytest.mark.parametrize(
    ("width", "height", "named"),
    [(-1, 24, "width"), (0, 24, "width"), (80, 65536, "height"), (80, True, "height")],
)
async def test_a_bad_terminal_size_is_refused(
    client: AsyncClient, width: int, height: int, named: str
) -> None:
    with pytest.raises(InvalidArgument, match=f"terminal {named}"):
        await client.resize_terminal("no-such-container", INIT_PROCESS_ID, width, height)


async def test_bad_ids_are_refused_by_close_stdin_and_resize(client: AsyncClient) -> None:
    with pytest.raises(InvalidArgument, match="process id"):
        await client.close_stdin("no-such-container", "../x")
    with pytest.raises(InvalidArgument, match="container id"):
        await client.resize_terminal("../x", INIT_PROCESS_ID, 80, 24)


async def test_a_terminal_exec_needs_attached_stdio(client: AsyncClient) -> None:
    with pytest.raises(InvalidArgument, match="terminal"):
        await client.exec("no-such-container", "e1", process("/bin/sh", terminal=True))
