"""Restore on a real containerd: tasks found again after the program restarted, with their stdio."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from libcontainerd import oci
from libcontainerd.client import AsyncClient
from libcontainerd.errors import AlreadyExists, InvalidArgument, NotFound
from libcontainerd.stdio import LogFile, discard
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID, Status

from .containers import (
    TEST_NAMESPACE,
    Capture,
    ContainerFactory,
    NewClient,
    containerd_holds_exec,
    eventually,
)

pytestmark = pytest.mark.integration

HELPER = Path(__file__).with_name("start_attached.py")


async def start_in_another_program(
    supervisor: Supervisor, containers: ContainerFactory, args: list[str], tmp_path: Path
) -> tuple[str, int]:
    """Create and start a container from a separate Python program that then exits."""
    container_id = containers.new_id("restore")
    containers.created.append(container_id)  # removed by the fixture, whatever happens
    spec_path = tmp_path / f"{container_id}.json"
    spec_path.write_text(json.dumps(containers.spec(args, container_id=container_id)))
    helper = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HELPER),
        supervisor.address,
        TEST_NAMESPACE,
        container_id,
        str(spec_path),
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        output, _ = await helper.communicate()
    assert helper.returncode == 0
    return container_id, int(output)


async def test_restore_reattaches_the_stdio_of_a_container_started_by_another_program(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor, tmp_path: Path
) -> None:
    echo = 'echo ready; while read line; do echo "got $line"; done; echo bye'
    container_id, pid = await start_in_another_program(
        supervisor, containers, ["/bin/sh", "-c", echo], tmp_path
    )
    capture = Capture()
    async with asyncio.timeout(30):
        assert await client.restore(container_id, attach_stdio=capture) == (True, pid)
        assert capture.io.stdin is not None
        assert capture.io.stderr is not None
        # Only a process that reads its stdin after the restore can answer this.
        await capture.write(b"ping\n")
        assert await capture.readline() == b"got ping\n"
        # Closing stdin after a restore still delivers EOF.
        await capture.close_stdin()
        assert await capture.read() == b"bye\n"
        assert (await client.wait(container_id))[0] == 0
    await client.delete_task(container_id)
    assert not (Path(client.fifo_dir) / TEST_NAMESPACE / container_id).exists()


async def test_restore_reports_a_paused_container_alive_and_leaves_it_paused(
    containers: ContainerFactory, new_client: NewClient
) -> None:
    container_id = await containers.create()
    async with new_client() as first:
        pid = await first.start(container_id, attach_stdio=discard)
        await first.pause(container_id)
    async with new_client() as second:
        capture = Capture()
        assert await second.restore(container_id, attach_stdio=capture) == (True, pid)
        assert capture.calls == 1
        assert await second.status(container_id) is Status.PAUSED


async def test_restore_of_a_container_without_a_task_gives_false_and_zero(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create()
    capture = Capture()
    assert await client.restore(container_id, attach_stdio=capture) == (False, 0)
    assert capture.calls == 0
    await client.start(container_id)
    await client.signal_process(container_id, INIT_PROCESS_ID, "SIGKILL")
    await client.wait(container_id)
    await client.delete_task(container_id)
    assert await client.restore(container_id) == (False, 0)


async def test_restore_of_a_stopped_task_is_not_alive_and_its_output_ends(
    client: AsyncClient, containers: ContainerFactory, new_client: NewClient
) -> None:
    container_id = await containers.create(["/bin/true"])
    pid = await client.start(container_id, attach_stdio=discard)
    await client.wait(container_id)
    capture = Capture()
    async with new_client() as second:
        assert await second.restore(container_id, attach_stdio=capture) == (False, pid)
        async with asyncio.timeout(30):
            assert await capture.read() == b""


async def test_restore_of_a_task_without_fifos_does_not_call_the_callback(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path
) -> None:
    quiet = await containers.run()
    logged = await containers.create()
    await client.start(logged, attach_stdio=LogFile(tmp_path / "logged.log"))
    capture = Capture()
    assert (await client.restore(quiet, attach_stdio=capture))[0] is True
    assert (await client.restore(logged, attach_stdio=capture))[0] is True
    assert capture.calls == 0


def exec_process(*args: str) -> dict[str, object]:
    return {"args": list(args), "cwd": "/", "env": [oci.DEFAULT_PATH_ENV]}


async def test_restore_adopts_the_live_execs_and_releases_them_after_their_exit(
    containers: ContainerFactory, new_client: NewClient, supervisor: Supervisor
) -> None:
    container_id = await containers.run()
    async with new_client() as first:
        await first.exec(container_id, "kept", exec_process("/bin/sleep", "300"))
    # The program restarted: its new client restores the container and owns its execs.
    async with new_client() as second:
        assert (await second.restore(container_id))[0] is True
        await second.signal_process(container_id, "kept", "SIGKILL")
        async with asyncio.timeout(30):
            assert (await second.wait(container_id, "kept"))[0] == 137

            async def released() -> bool:
                return not await containerd_holds_exec(supervisor.address, container_id, "kept")

            await eventually(released, "containerd to forget the released exec")
            assert (await second.wait(container_id, "kept"))[0] == 137  # still known
            # containerd forgot the exec (else AlreadyExists): its id is free again.
            await second.exec(container_id, "kept", exec_process("/bin/true"))
            assert (await second.wait(container_id, "kept"))[0] == 0


async def test_an_exec_that_exited_while_no_client_ran_keeps_its_id_and_the_error_says_so(
    containers: ContainerFactory, new_client: NewClient
) -> None:
    container_id = await containers.run()
    async with new_client() as first:
        await first.exec(container_id, "gone", exec_process("/bin/sleep", "0.3"))
    await asyncio.sleep(1)  # it exits while no client runs: nobody deletes it
    async with new_client() as second:
        assert (await second.restore(container_id))[0] is True
        # containerd lists no exited execs, so restore cannot adopt it; the error tells why.
        with pytest.raises(AlreadyExists, match=r"'gone'.*has exited but is not deleted yet"):
            await second.exec(container_id, "gone", exec_process("/bin/true"))
        await second.exec(container_id, "other", exec_process("/bin/true"))
        assert (await second.wait(container_id, "other"))[0] == 0


async def test_restore_of_an_unknown_container_raises_not_found(client: AsyncClient) -> None:
    with pytest.raises(NotFound, match="no such container"):
        await client.restore("no-such-container")


async def test_restore_refuses_a_log_file_and_bad_ids(client: AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="callback"):
        await client.restore("no-such-container", attach_stdio=LogFile(tmp_path / "x.log"))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="container id"):
        await client.restore("../x")


async def test_a_terminal_container_restores_with_its_terminal(
    client: AsyncClient, containers: ContainerFactory, new_client: NewClient
) -> None:
    container_id = await containers.create(["/bin/sh"], oci.with_terminal(True))
    async with new_client() as first:
        await first.start(container_id, with_stdin=True, attach_stdio=Capture())
    capture = Capture()
    async with asyncio.timeout(30):
        await client.restore(container_id, attach_stdio=capture)
        assert (capture.io.terminal, capture.io.stderr) == (True, None)
        await client.resize_terminal(container_id, INIT_PROCESS_ID, 99, 33)
        await capture.write(b"stty size; exit 6\n")
        output = await capture.read()
        assert (await client.wait(container_id))[0] == 6
    assert b"33 99" in output
