"""Checkpoint and restore on a real containerd, runc and CRIU.

The tests that need CRIU skip, saying why, when no working CRIU is found
(``python3 scripts/criu.py`` provisions one; ``./run`` does it). The tests of
what happens without one run everywhere.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from libcontainerd import _typeurl, oci
from libcontainerd._api.containerd.api.services.containers.v1 import containers_pb2
from libcontainerd._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from libcontainerd.client import AsyncClient
from libcontainerd.errors import (
    AlreadyExists,
    CheckpointUnsupported,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from libcontainerd.stdio import CollectOutput, LogFile
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID, Status

from .containers import (
    TEST_NAMESPACE,
    Capture,
    ContainerFactory,
    call_containerd,
    checkpoint_and_restore,
    eventually,
    live_shims,
    output_of,
    process_alive,
)

pytestmark = pytest.mark.integration

# Counts in a shell variable (memory CRIU must restore) and writes each value
# through fd 3, opened once before any checkpoint (a file CRIU must reopen).
COUNTER = [
    "/bin/sh",
    "-c",
    "exec 3>>/out/log; i=0;"
    " while true; do i=$((i+1)); echo $i > /out/n.tmp; mv /out/n.tmp /out/n; echo $i >&3;"
    " sleep 0.02; done",
]


class Counter:
    """A counting container, watched through a bind-mounted folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def value(self) -> int:
        text = (self.folder / "n").read_text().strip() if (self.folder / "n").exists() else ""
        return int(text or 0)

    def logged(self) -> list[int]:
        return [int(line) for line in (self.folder / "log").read_text().split()]

    async def reaches(self, value: int) -> None:
        await eventually(lambda: self.value() >= value, f"the counter to reach {value}")


async def start_counter(containers: ContainerFactory, folder: Path) -> tuple[str, Counter]:
    os.makedirs(folder)
    container_id = await containers.run(COUNTER, oci.with_bind_mount(str(folder), "/out"))
    counter = Counter(folder)
    await counter.reaches(5)
    return container_id, counter


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def leftovers(folder: Path) -> list[str]:
    return [name for name in entries(folder) if name.endswith(".partial")]


# -- checkpoint and restore ---------------------------------------------------------------


async def test_a_restored_container_counts_on_from_its_checkpoint(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id, counter = await start_counter(containers, tmp_path / "out")
    images = tmp_path / "checkpoint"
    at_checkpoint, _pid = await checkpoint_and_restore(client, container_id, images, counter.value)
    await counter.reaches(at_checkpoint + 10)
    # The log line of a value follows its file: wait for it too.
    await eventually(
        lambda: len(counter.logged()) >= at_checkpoint + 10, "ten more values in the log"
    )
    # One unbroken sequence: the count went on from its checkpointed value, not
    # from 1, and each value after the restore went through the fd opened before it.
    logged = counter.logged()
    assert logged == list(range(1, len(logged) + 1))
    assert len(logged) >= at_checkpoint + 10


async def test_a_container_logging_to_a_file_logs_on_after_its_restore(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    script = "i=0; while true; do i=$((i+1)); echo out-$i; echo err-$i >&2; sleep 0.02; done"
    container_id = await containers.create(["/bin/sh", "-c", script])
    log = tmp_path / "logs" / "counter.log"
    await client.start(container_id, attach_stdio=LogFile(log))
    await eventually(lambda: log.exists() and b"out-5\n" in log.read_bytes(), "five lines")
    images = tmp_path / "checkpoint"
    await client.create_checkpoint(container_id, images, exit=True)
    await client.wait(container_id)
    await client.delete_task(container_id)
    before = log.read_bytes().count(b"out-")

    await client.start(container_id, checkpoint_dir=images, attach_stdio=LogFile(log))
    await eventually(lambda: log.read_bytes().count(b"out-") >= before + 10, "ten more lines")
    # Each stream goes on from the checkpointed count: one unbroken sequence.
    lines = log.read_bytes().split()
    for stream in (b"out-", b"err-"):
        numbers = [int(line[4:]) for line in lines if line.startswith(stream)]
        assert numbers == list(range(1, len(numbers) + 1))


# Echoes each value to stdout before it lands in /out/n, so the value in the file was
# printed before the checkpoint, and the next one printed is one or two above it.
ECHOING_COUNTER = [
    "/bin/sh",
    "-c",
    "i=0; while true; do i=$((i+1)); echo $i; echo $i > /out/n.tmp; mv /out/n.tmp /out/n;"
    " sleep 0.02; done",
]


async def checkpoint_and_stop(client: AsyncClient, container_id: str, images: Path) -> None:
    await client.create_checkpoint(container_id, images, exit=True)
    await client.wait(container_id)
    await client.delete_task(container_id)


def numbers(output: bytes) -> list[int]:
    return [int(line) for line in output.split()]


@pytest.mark.parametrize("terminal", [False, True], ids=["pipes", "terminal"])
async def test_a_restored_counter_goes_on_in_the_collected_output(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str, terminal: bool
) -> None:
    folder = tmp_path / "out"
    os.makedirs(folder)
    options = [oci.with_bind_mount(str(folder), "/out"), oci.with_terminal(terminal)]
    container_id = await containers.create(ECHOING_COUNTER, *options)
    before = CollectOutput()
    await client.start(container_id, attach_stdio=before)
    counter = Counter(folder)
    await counter.reaches(5)
    await checkpoint_and_stop(client, container_id, tmp_path / "checkpoint")
    at_checkpoint = counter.value()
    printed_before = numbers((await output_of(client, before))[0])

    after = CollectOutput()
    pid = await client.start(
        container_id, checkpoint_dir=tmp_path / "checkpoint", attach_stdio=after
    )
    assert process_alive(pid)
    await counter.reaches(at_checkpoint + 10)
    await client.signal_process(container_id, INIT_PROCESS_ID, "SIGKILL")
    assert (await client.wait(container_id))[0] == 137
    stdout, stderr = await output_of(client, after)
    printed_after = numbers(stdout)
    # The restored process printed on from where it stopped, into the new callback.
    assert printed_after[0] in (at_checkpoint + 1, at_checkpoint + 2), printed_after[:3]
    assert printed_after == list(range(printed_after[0], printed_after[0] + len(printed_after)))
    assert printed_before[-1] < printed_after[0]
    assert printed_after[-1] >= at_checkpoint + 10  # printed before it reached the file
    assert stderr == b""
    if terminal:
        assert b"\r\n" in stdout  # a terminal's line endings: the new pty is in place


async def test_a_restored_cat_echoes_its_stdin_and_ends_at_eof(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id = await containers.create(["/bin/cat"])
    first = Capture()
    await client.start(container_id, with_stdin=True, attach_stdio=first)
    await first.write(b"before\n")
    assert await first.readline() == b"before\n"
    await checkpoint_and_stop(client, container_id, tmp_path / "checkpoint")

    restored = CollectOutput(stdin=b"one line\nand another\n")  # written, then EOF
    await client.start(
        container_id, checkpoint_dir=tmp_path / "checkpoint", with_stdin=True, attach_stdio=restored
    )
    assert (await client.wait(container_id))[0] == 0  # cat ended at EOF
    assert await output_of(client, restored) == (b"one line\nand another\n", b"")


async def test_a_restored_process_gets_eof_from_close_stdin(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id = await containers.create(["/bin/cat"])
    await client.start(container_id, with_stdin=True, attach_stdio=Capture())
    await checkpoint_and_stop(client, container_id, tmp_path / "checkpoint")
    restored = CollectOutput()
    await client.start(
        container_id, checkpoint_dir=tmp_path / "checkpoint", with_stdin=True, attach_stdio=restored
    )
    await client.close_stdin(container_id, INIT_PROCESS_ID)
    assert (await client.wait(container_id))[0] == 0
    assert await output_of(client, restored) == (b"", b"")


async def test_a_checkpoint_holds_criu_images_and_nothing_half_written(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id, _ = await start_counter(containers, tmp_path / "out")
    images = tmp_path / "cps" / "first"
    await client.create_checkpoint(container_id, images)
    names = {p.name for p in images.iterdir()}
    assert {"inventory.img", "descriptors.json", "pstree.img"} <= names
    assert leftovers(images.parent) == []


async def test_without_exit_the_container_keeps_running(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id, counter = await start_counter(containers, tmp_path / "out")
    await client.create_checkpoint(container_id, tmp_path / "checkpoint", exit=False)
    assert await client.status(container_id) is Status.RUNNING
    after = counter.value()
    await counter.reaches(after + 5)


async def test_with_exit_the_container_stops_after_the_checkpoint(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id, _ = await start_counter(containers, tmp_path / "out")
    await client.create_checkpoint(container_id, tmp_path / "checkpoint", exit=True)
    exit_code, exited_at = await asyncio.wait_for(client.wait(container_id), 30)
    assert exit_code == 137
    assert exited_at is not None
    assert await client.status(container_id) is Status.STOPPED


async def test_an_existing_empty_directory_receives_the_checkpoint(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id, _ = await start_counter(containers, tmp_path / "out")
    images = tmp_path / "empty"
    images.mkdir()
    await client.create_checkpoint(container_id, str(images))
    assert (images / "inventory.img").is_file()


async def test_a_container_created_with_criu_recorded_runs_it(
    containers: ContainerFactory, criu: str, supervisor: Supervisor
) -> None:
    container_id = await containers.create()
    reply = await call_containerd(
        supervisor.address,
        "/containerd.services.containers.v1.Containers/Get",
        containers_pb2.GetContainerRequest(id=container_id),
        containers_pb2.GetContainerResponse,
    )
    options = _typeurl.unpack(reply.container.runtime.options, runc_pb2.Options)
    assert options is not None
    assert options.criu_path == criu


async def test_without_criu_path_runc_finds_criu_on_containerds_path(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    # An empty criu_path: the shim passes no --criu and runc looks criu up on
    # its PATH, where the Supervisor put the one the library found.
    folder = tmp_path / "out"
    folder.mkdir()
    container_id = await containers.create(
        COUNTER, oci.with_bind_mount(str(folder), "/out"), runtime_options={"criu_path": ""}
    )
    await client.start(container_id)
    await Counter(folder).reaches(3)
    await client.create_checkpoint(container_id, tmp_path / "checkpoint")
    assert (tmp_path / "checkpoint" / "inventory.img").is_file()


def test_the_supervisor_puts_the_criu_first_on_containerds_path(
    supervisor: Supervisor, criu: str
) -> None:
    link = Path(supervisor.state_dir) / "bin" / "criu"
    assert os.readlink(link) == os.path.abspath(criu)
    assert supervisor.pid is not None
    environ = Path(f"/proc/{supervisor.pid}/environ").read_bytes().split(b"\0")
    path = next(item for item in environ if item.startswith(b"PATH=")).decode()[5:]
    assert path.split(":")[0] == str(link.parent)


# -- failures -----------------------------------------------------------------------------


async def test_a_checkpoint_of_a_stopped_container_raises_failed_precondition(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id = await containers.run(["/bin/true"])
    await client.wait(container_id)
    with pytest.raises(FailedPrecondition, match="stopped"):
        await client.create_checkpoint(container_id, tmp_path / "checkpoint")
    assert entries(tmp_path) == []
    assert await client.status(container_id) is Status.STOPPED


async def test_a_checkpoint_into_a_directory_with_files_raises_already_exists(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path
) -> None:
    container_id = await containers.run()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes").write_text("mine")
    with pytest.raises(AlreadyExists, match="already holds files"):
        await client.create_checkpoint(container_id, tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes"]
    assert await client.status(container_id) is Status.RUNNING


async def test_a_checkpoint_of_an_unknown_container_raises_not_found(
    client: AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="no such container"):
        await client.create_checkpoint("no-such-container", tmp_path / "checkpoint")
    assert entries(tmp_path) == []


async def test_a_checkpoint_of_a_container_without_a_task_raises_not_found(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, criu: str
) -> None:
    container_id = await containers.create()
    with pytest.raises(NotFound, match="has no task"):
        await client.create_checkpoint(container_id, tmp_path / "checkpoint")
    assert entries(tmp_path) == []


def broken_criu(folder: Path) -> Path:
    """A stand-in for bookworm's CRIU 3.17 on this kernel: `criu check` fails."""
    path = folder / "criu"
    path.write_text(
        "#!/bin/sh\n"
        "echo 'Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds' >&2\n"
        "exit 1\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def test_without_a_working_criu_checkpoint_raises_checkpoint_unsupported_first(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path
) -> None:
    criu = broken_criu(tmp_path)
    container_id = await containers.create(runtime_options={"criu_path": str(criu)})
    await client.start(container_id)
    with pytest.raises(CheckpointUnsupported, match="vDSO area bounds"):
        await client.create_checkpoint(container_id, tmp_path / "checkpoint")
    assert not (tmp_path / "checkpoint").exists()
    assert leftovers(tmp_path) == []
    assert await client.status(container_id) is Status.RUNNING


async def test_without_a_working_criu_restore_raises_checkpoint_unsupported_first(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "inventory.img").write_bytes(b"x")
    (images / "descriptors.json").write_text("[]")
    container_id = await containers.create(
        runtime_options={"criu_path": str(broken_criu(tmp_path))}
    )
    with pytest.raises(CheckpointUnsupported, match="vDSO area bounds"):
        await client.start(container_id, checkpoint_dir=images)
    with pytest.raises(NotFound, match="has no task"):
        await client.status(container_id)


async def test_a_restore_from_a_missing_or_empty_directory_raises_invalid_argument(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path
) -> None:
    container_id = await containers.create()
    with pytest.raises(InvalidArgument, match="does not exist"):
        await client.start(container_id, checkpoint_dir=tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="holds no checkpoint"):
        await client.start(container_id, checkpoint_dir=tmp_path)
    # Nothing was created, and the container starts normally.
    with pytest.raises(NotFound, match="has no task"):
        await client.status(container_id)
    assert await client.start(container_id) > 0


async def test_a_restore_from_a_corrupt_checkpoint_raises_invalid_argument_and_leaves_no_task(
    client: AsyncClient,
    containers: ContainerFactory,
    tmp_path: Path,
    criu: str,
    supervisor: Supervisor,
) -> None:
    container_id, _ = await start_counter(containers, tmp_path / "out")
    images = tmp_path / "checkpoint"
    await client.create_checkpoint(container_id, images, exit=True)
    await client.wait(container_id)
    await client.delete_task(container_id)
    (images / "inventory.img").write_bytes(b"not a CRIU image")

    shims = {shim.pid for shim in live_shims(supervisor.address)}
    with pytest.raises(InvalidArgument, match=r"cannot restore.*CRIU says") as raised:
        await client.start(container_id, checkpoint_dir=images)
    assert "inventory.img" in raised.value.message
    with pytest.raises(NotFound, match="has no task"):
        await client.status(container_id)
    # With attached stdio too: no task, no FIFO, no shim is left behind.
    with pytest.raises(InvalidArgument, match=r"cannot restore.*CRIU says"):
        await client.start(
            container_id, checkpoint_dir=images, with_stdin=True, attach_stdio=CollectOutput()
        )
    with pytest.raises(NotFound, match="has no task"):
        await client.status(container_id)
    fifo_folder = Path(client.fifo_dir) / TEST_NAMESPACE / container_id
    assert sorted(fifo_folder.glob("init-*")) == []
    await eventually(
        lambda: {shim.pid for shim in live_shims(supervisor.address)} <= shims, "no new shim"
    )
    # The container is unharmed: it starts afresh.
    assert await client.start(container_id) > 0
    assert await client.status(container_id) is Status.RUNNING
    await client.signal_process(container_id, INIT_PROCESS_ID, "SIGKILL")
