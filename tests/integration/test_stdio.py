"""Attached stdio of a container's main process on a real containerd: FIFOs, streams, log files."""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import signal
import stat
import struct
import termios
from pathlib import Path

import pytest

from libcontainerd import oci
from libcontainerd.client import AsyncClient
from libcontainerd.errors import AlreadyExists, InvalidArgument, LibcontainerdError, NotFound
from libcontainerd.stdio import (
    AttachTerminal,
    CollectOutput,
    CopyToFiles,
    DirectIO,
    LogFile,
    discard,
)
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID

from .containers import (
    TEST_NAMESPACE,
    Capture,
    ContainerFactory,
    fd_targets,
    new_fds,
    output_of,
)

pytestmark = pytest.mark.integration


def fifo_dir_of(client: AsyncClient, container_id: str) -> Path:
    return Path(client.fifo_dir) / TEST_NAMESPACE / container_id


def fifos_of(client: AsyncClient, container_id: str) -> list[str]:
    directory = fifo_dir_of(client, container_id)
    return sorted(os.listdir(directory)) if directory.exists() else []


async def test_stdout_and_stderr_arrive_apart(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/sh", "-c", "echo out; echo err >&2; echo out2"])
    output = CollectOutput()
    async with asyncio.timeout(30):
        await client.start(container_id, attach_stdio=output)
        assert await output_of(client, output) == (b"out\nout2\n", b"err\n")
        assert (await client.wait(container_id))[0] == 0


async def test_stdin_round_trips_through_cat(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/cat"])
    output = CollectOutput(stdin=b"line one\nline two\n")
    async with asyncio.timeout(30):
        await client.start(container_id, with_stdin=True, attach_stdio=output)
        assert await output_of(client, output) == (b"line one\nline two\n", b"")
        assert (await client.wait(container_id))[0] == 0


async def test_an_empty_stdin_closed_at_once_ends_cat(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    # The writer is closed inside the callback, before the task exists: the
    # CloseIO must wait for Tasks.Create or cat waits for EOF forever.
    container_id = await containers.create(["/bin/cat"])
    async with asyncio.timeout(30):
        await client.start(container_id, with_stdin=True, attach_stdio=discard)
        assert (await client.wait(container_id))[0] == 0


async def test_close_stdin_delivers_eof_after_the_written_input(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/sh", "-c", "cat; echo end"])
    capture = Capture()
    async with asyncio.timeout(30):
        await client.start(container_id, with_stdin=True, attach_stdio=capture)
        await capture.write(b"typed\n")
        assert await capture.readline() == b"typed\n"
        await client.close_stdin(container_id, INIT_PROCESS_ID)
        assert await capture.read() == b"end\n"
        assert (await client.wait(container_id))[0] == 0


async def test_ten_megabytes_of_output_arrive_complete(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    size = 10 * 1024 * 1024
    container_id = await containers.create(
        ["/bin/sh", "-c", f"yes 0123456789abcdef | head -c {size}"]
    )
    output = CollectOutput()
    async with asyncio.timeout(60):
        await client.start(container_id, attach_stdio=output)
        stdout, stderr = await output_of(client, output)
    assert stderr == b""
    assert len(stdout) == size
    assert stdout == (b"0123456789abcdef\n" * (size // 17 + 1))[:size]


async def test_an_async_callback_is_awaited_before_the_task_is_created(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/echo", "hello"])
    seen: list[DirectIO] = []

    async def attach(io: DirectIO) -> None:
        await asyncio.sleep(0)
        with pytest.raises(NotFound, match="has no task"):
            await client.status(container_id)
        seen.append(io)
        discard(io)

    async with asyncio.timeout(30):
        await client.start(container_id, attach_stdio=attach)
        assert (await client.wait(container_id))[0] == 0
    assert [(io.container_id, io.process_id, io.terminal) for io in seen] == [
        (container_id, INIT_PROCESS_ID, False)
    ]
    assert seen[0].stdin is None
    assert seen[0].stderr is not None


async def test_a_terminal_container_runs_with_attached_stdio_and_is_resized(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/sh"], oci.with_terminal(True))
    capture = Capture()
    async with asyncio.timeout(30):
        await client.start(container_id, with_stdin=True, attach_stdio=capture)
        assert capture.io.terminal
        assert capture.io.stderr is None
        await client.resize_terminal(container_id, INIT_PROCESS_ID, 101, 37)
        await capture.write(b"stty size; echo to-stderr >&2; exit 4\n")
        output = await capture.read()
        assert (await client.wait(container_id))[0] == 4
    assert b"37 101" in output
    assert b"to-stderr" in output


async def test_a_terminal_container_without_attached_stdio_is_refused(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/sh"], oci.with_terminal(True))
    with pytest.raises(InvalidArgument, match="terminal"):
        await client.start(container_id)
    with pytest.raises(NotFound, match="has no task"):
        await client.status(container_id)


async def test_with_stdin_without_attach_stdio_is_refused(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/cat"])
    with pytest.raises(InvalidArgument, match="with_stdin"):
        await client.start(container_id, with_stdin=True)
    with pytest.raises(InvalidArgument, match="attach_stdio must be a callback"):
        await client.start(container_id, attach_stdio="stdout.log")  # type: ignore[arg-type]


async def test_without_attached_stdio_no_fifo_is_made(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    assert not fifo_dir_of(client, container_id).exists()


async def test_fifo_directories_are_private_and_follow_the_layout(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor
) -> None:
    container_id = await containers.create()
    await client.start(container_id, with_stdin=True, attach_stdio=discard)
    root = Path(client.fifo_dir)
    assert root == Path(supervisor.address).parent / "fifo"
    directory = fifo_dir_of(client, container_id)
    for path in (root, root / TEST_NAMESPACE, directory):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert sorted(os.listdir(directory)) == ["init-stderr", "init-stdin", "init-stdout"]
    for name in os.listdir(directory):
        mode = (directory / name).stat().st_mode
        assert stat.S_ISFIFO(mode)
        assert stat.S_IMODE(mode) == 0o600


async def test_delete_leaves_no_fifo_and_no_file_descriptor(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    async def run_once() -> str:
        container_id = await containers.create(["/bin/sh", "-c", "cat; echo done; echo e >&2"])
        output = CollectOutput(stdin=b"x\n")
        await client.start(container_id, with_stdin=True, attach_stdio=output)
        assert await output_of(client, output) == (b"x\ndone\n", b"e\n")
        await client.wait(container_id)
        await client.delete_task(container_id)
        await client.delete(container_id)
        return container_id

    async with asyncio.timeout(60):
        await run_once()  # warm up: gRPC and asyncio open what they keep for good
        before = fd_targets()
        ids = [await run_once() for _ in range(3)]
        await asyncio.sleep(0.1)  # transports close their pipes a loop turn after EOF
    assert new_fds(before) == {}
    for container_id in ids:
        assert not fifo_dir_of(client, container_id).exists()


async def test_delete_task_removes_the_fifos_of_a_restarted_client(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor
) -> None:
    container_id = await containers.create(["/bin/true"])
    async with AsyncClient(supervisor.address, namespace=TEST_NAMESPACE) as first:
        await first.start(container_id, with_stdin=True, attach_stdio=discard)
    assert fifo_dir_of(client, container_id).exists()
    await client.wait(container_id)
    await client.delete_task(container_id)
    assert not fifo_dir_of(client, container_id).exists()


async def test_a_failing_callback_aborts_the_start_and_leaves_nothing(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create()

    def refuse(io: DirectIO) -> None:
        raise RuntimeError("no terminal here")

    with pytest.raises(RuntimeError, match="no terminal here"):
        await client.start(container_id, with_stdin=True, attach_stdio=refuse)
    with pytest.raises(NotFound, match="has no task"):
        await client.status(container_id)
    assert fifos_of(client, container_id) == []
    assert await client.start(container_id, attach_stdio=discard) > 0


async def test_a_failed_start_removes_its_fifos(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/does-not-exist"])
    output = CollectOutput()
    with pytest.raises(LibcontainerdError, match="does-not-exist"):
        await client.start(container_id, with_stdin=True, attach_stdio=output)
    assert fifos_of(client, container_id) == []
    async with asyncio.timeout(30):
        assert await output_of(client, output) == (b"", b"")


async def test_copy_to_files_writes_the_output_to_files(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path
) -> None:
    container_id = await containers.create(["/bin/sh", "-c", "echo out; echo err >&2"])
    copier = CopyToFiles(tmp_path / "out.log", tmp_path / "err.log")
    async with asyncio.timeout(30):
        await client.start(container_id, attach_stdio=copier)
        await output_of(client, copier)
    assert (tmp_path / "out.log").read_bytes() == b"out\n"
    assert (tmp_path / "err.log").read_bytes() == b"err\n"


async def test_starting_twice_keeps_the_running_tasks_fifos(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    capture = Capture()
    cat = {"args": ["/bin/cat"], "cwd": "/"}
    await client.exec(container_id, "e1", cat, with_stdin=True, attach_stdio=capture)
    with pytest.raises(AlreadyExists):
        await client.start(container_id, with_stdin=True, attach_stdio=discard)
    with pytest.raises(AlreadyExists):
        await client.start(container_id, attach_stdio=CollectOutput())
    assert fifos_of(client, container_id) == ["e1-stderr", "e1-stdin", "e1-stdout"]
    # The exec's streams still work.
    await capture.write(b"still here\n")
    async with asyncio.timeout(30):
        assert await capture.readline() == b"still here\n"


async def test_stale_fifos_of_a_crashed_client_are_replaced(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/echo", "fresh"])
    directory = fifo_dir_of(client, container_id)
    directory.mkdir(parents=True, mode=0o700)
    for stream in ("stdin", "stdout", "stderr"):
        os.mkfifo(directory / f"init-{stream}", 0o600)
    output = CollectOutput()
    async with asyncio.timeout(30):
        await client.start(container_id, attach_stdio=output)
        assert await output_of(client, output) == (b"fresh\n", b"")
    assert fifos_of(client, container_id) == ["init-stderr", "init-stdout"]


def set_window_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


async def read_until(fd: int, marker: bytes) -> bytes:
    """Read from ``fd`` until ``marker`` has arrived; returns all that was read."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    received = b""
    try:
        while marker not in received:
            await readable.wait()
            readable.clear()
            if select.select([fd], [], [], 0)[0]:  # readiness may be stale, fd is blocking
                received += os.read(fd, 65536)
    finally:
        loop.remove_reader(fd)
    return received


async def size_seen_by(master: int, expected: bytes) -> None:
    """Ask the shell behind ``master`` for its terminal size until it reports ``expected``."""
    while True:
        # The marker is computed by the shell, so the echo of the typed line is not taken
        # for it. busybox's sh swallows what is typed before its prompt is ready: retry.
        os.write(master, b"stty size; echo $((6*7))x\n")
        try:
            output = await asyncio.wait_for(read_until(master, b"42x"), 2)
        except TimeoutError:
            continue
        if expected in output:
            return


@pytest.mark.async_only(
    reason="AttachTerminal follows the window size with a SIGWINCH handler on the loop it runs"
    " on, and the blocking Client's loop runs in a background thread, where Python allows none"
)
async def test_attach_terminal_connects_a_pty_and_follows_its_window_size(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    master, user_terminal = os.openpty()
    try:
        set_window_size(user_terminal, 30, 100)
        mode_before = termios.tcgetattr(user_terminal)
        handler_before = signal.getsignal(signal.SIGWINCH)
        attacher = AttachTerminal(
            client, input_fd=user_terminal, output_fd=user_terminal, error_fd=user_terminal
        )
        spec = {"args": ["/bin/sh"], "cwd": "/", "terminal": True}
        async with asyncio.timeout(60):
            await client.exec(container_id, "t1", spec, with_stdin=True, attach_stdio=attacher)
            await size_seen_by(master, b"30 100")
            # A terminal in raw mode while attached: our side does not echo.
            assert not termios.tcgetattr(user_terminal)[3] & termios.ECHO
            set_window_size(user_terminal, 40, 120)
            os.kill(os.getpid(), signal.SIGWINCH)
            await size_seen_by(master, b"40 120")
            os.write(master, b"exit 9\n")
            await attacher
            assert (await client.wait(container_id, "t1"))[0] == 9
        assert termios.tcgetattr(user_terminal) == mode_before
        assert signal.getsignal(signal.SIGWINCH) == handler_before
    finally:
        os.close(master)
        os.close(user_terminal)


async def test_attach_terminal_leaves_the_callers_terminal_cooked_for_a_process_without_one(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.run()
    master, user_terminal = os.openpty()
    try:
        mode_before = termios.tcgetattr(user_terminal)
        attacher = AttachTerminal(
            client, input_fd=user_terminal, output_fd=user_terminal, error_fd=user_terminal
        )
        cat = {"args": ["/bin/cat"], "cwd": "/"}
        async with asyncio.timeout(60):
            await client.exec(container_id, "c1", cat, with_stdin=True, attach_stdio=attacher)
            assert termios.tcgetattr(user_terminal) == mode_before
            # Cooked: the line is echoed by our terminal and cat returns it; Ctrl-D is EOF.
            os.write(master, b"typed\n")
            output = await read_until(master, b"typed\r\ntyped\r\n")
            assert output.count(b"typed") == 2
            os.write(master, b"\x04")
            await output_of(client, attacher)
            assert (await client.wait(container_id, "c1"))[0] == 0
        assert termios.tcgetattr(user_terminal) == mode_before
    finally:
        os.close(master)
        os.close(user_terminal)


# -- log-file mode ----------------------------------------------------------------------


async def test_log_file_mode_keeps_output_while_no_client_is_attached(
    containers: ContainerFactory, supervisor: Supervisor, tmp_path: Path
) -> None:
    control = tmp_path / "control"
    control.mkdir()
    log_path = tmp_path / "logs" / "app.log"
    container_id = await containers.create(
        [
            "/bin/sh",
            "-c",
            "echo before; while [ ! -e /ctl/go ]; do sleep 0.05; done; echo after; echo err >&2",
        ],
        oci.with_bind_mount(str(control), "/ctl"),
    )
    async with AsyncClient(supervisor.address, namespace=TEST_NAMESPACE) as first:
        await first.start(container_id, attach_stdio=LogFile(log_path))
    # No client runs now; the container only writes its second line once told to.
    (control / "go").touch()
    async with AsyncClient(supervisor.address, namespace=TEST_NAMESPACE) as second:
        async with asyncio.timeout(30):
            assert (await second.wait(container_id))[0] == 0
        await second.delete_task(container_id)
    # The shim copies stdout and stderr apart, so only each one's own order holds; its
    # last write can land a moment after the exit is reported (and after the delete).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(content := log_path.read_bytes()) < len(b"before\nafter\nerr\n"):
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert content.replace(b"err\n", b"", 1) == b"before\nafter\n"
    assert b"err\n" in content
    assert not (Path(second.fifo_dir) / TEST_NAMESPACE / container_id).exists()


@pytest.mark.parametrize(
    ("first", "last"), [("", ">&2"), (">&2", "")], ids=["stdout-first", "stderr-first"]
)
async def test_log_file_keeps_what_one_stream_writes_after_the_other_closed(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path, first: str, last: str
) -> None:
    # containerd's shim (1.6 to 2.x) shares one file between both copies when
    # stdout and stderr name the same path, and its stdout copy closes that
    # file when stdout ends: stderr written afterwards would be lost.
    closed = "1" if not first else "2"
    log_path = tmp_path / "logs" / "app.log"
    container_id = await containers.create(
        ["/bin/sh", "-c", f"echo one {first}; exec {closed}>&-; sleep 0.3; echo two {last}"]
    )
    await client.start(container_id, attach_stdio=LogFile(log_path))
    async with asyncio.timeout(30):
        assert (await client.wait(container_id))[0] == 0
    await client.delete_task(container_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (content := log_path.read_bytes()) != b"one\ntwo\n" and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert content == b"one\ntwo\n"


async def test_log_file_mode_refuses_stdin_and_a_terminal(
    client: AsyncClient, containers: ContainerFactory, tmp_path: Path
) -> None:
    log_file = LogFile(tmp_path / "app.log")
    container_id = await containers.create(["/bin/cat"])
    with pytest.raises(InvalidArgument, match="log-file mode"):
        await client.start(container_id, with_stdin=True, attach_stdio=log_file)
    terminal_id = await containers.create(["/bin/sh"], oci.with_terminal(True))
    with pytest.raises(InvalidArgument, match="log-file mode"):
        await client.start(terminal_id, attach_stdio=log_file)
