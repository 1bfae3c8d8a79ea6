"""FIFO sets, DirectIO and the ready-made attachers, with this test playing the shim."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from libcontainerd import _fifo
from libcontainerd._fifo import FifoSet
from libcontainerd.errors import FailedPrecondition, InvalidArgument
from libcontainerd.stdio import (
    CollectOutput,
    CopyToFiles,
    DirectIO,
    LogFile,
    discard,
)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class FakeShim:
    """Opens the shim's ends of a FifoSet's FIFOs, as containerd's runc shim does."""

    def __init__(self, fifos: FifoSet) -> None:
        self.stdout = os.open(fifos.stdout, os.O_WRONLY | os.O_NONBLOCK)
        self.stderr = os.open(fifos.stderr, os.O_WRONLY | os.O_NONBLOCK) if fifos.stderr else -1
        self.stdin = os.open(fifos.stdin, os.O_RDONLY | os.O_NONBLOCK) if fifos.stdin else -1

    def close_output(self) -> None:
        for fd in (self.stdout, self.stderr):
            if fd >= 0:
                os.close(fd)
        self.stdout = self.stderr = -1

    def close(self) -> None:
        self.close_output()
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1

    async def write_stdout(self, data: bytes) -> None:
        """Write all of ``data``, waiting while the FIFO is full (nobody reads it)."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.stdout, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.01)

    async def read_stdin(self) -> bytes:
        """Everything written to stdin, until every writer has closed it."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(self.stdin, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "fifos"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def shims() -> Iterator[list[FakeShim]]:
    made: list[FakeShim] = []
    yield made
    for shim in made:
        shim.close()


def make(directory: Path, *, stdin: bool = True, terminal: bool = False) -> FifoSet:
    return FifoSet.create(str(directory), "c1", "init", stdin=stdin, terminal=terminal)


# -- the directory and the files ------------------------------------------------------


def test_fifos_follow_the_layout_and_are_0600(directory: Path) -> None:
    fifos = make(directory)
    try:
        for stream in ("stdin", "stdout", "stderr"):
            path = directory / f"init-{stream}"
            assert getattr(fifos, stream) == str(path)
            mode = path.stat().st_mode
            assert stat.S_ISFIFO(mode)
            assert stat.S_IMODE(mode) == 0o600
    finally:
        fifos.close()


def test_a_terminal_process_has_no_stderr_and_stdin_only_when_asked(directory: Path) -> None:
    fifos = make(directory, stdin=False, terminal=True)
    try:
        assert (fifos.stdin, fifos.stderr) == ("", "")
        assert sorted(os.listdir(directory)) == ["init-stdout"]
    finally:
        fifos.close()


def test_private_dirs_are_made_0700_and_existing_ones_narrowed(tmp_path: Path) -> None:
    root = tmp_path / "state" / "fifo"
    (root / "ns").mkdir(parents=True, mode=0o755)
    os.chmod(root / "ns", 0o755)
    deepest = _fifo.make_private_dirs(str(root), "ns", "c1")
    assert deepest == str(root / "ns" / "c1")
    for path in (root, root / "ns", root / "ns" / "c1"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_private_dirs_refuse_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "fifo"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "ns").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FailedPrecondition, match="must be a directory"):
        _fifo.make_private_dirs(str(root), "ns", "c1")


def test_existing_fifos_are_refused_and_left_alone(directory: Path) -> None:
    first = make(directory)
    try:
        with pytest.raises(FileExistsError):
            make(directory)
        assert sorted(os.listdir(directory)) == ["init-stderr", "init-stdin", "init-stdout"]
    finally:
        first.close()


def test_removing_a_process_leaves_the_others(directory: Path) -> None:
    init = make(directory)
    other = FifoSet.create(str(directory), "c1", "e1", stdin=False, terminal=False)
    init.close()
    other.close()
    _fifo.remove_process_fifos(str(directory), "init")
    assert sorted(os.listdir(directory)) == ["e1-stderr", "e1-stdout"]
    _fifo.remove_fifo_dir(str(directory))
    assert not directory.exists()


# -- data, EOF and descriptors ----------------------------------------------------------


async def test_output_reaches_the_readers_apart_and_ends_with_eof(
    directory: Path, shims: list[FakeShim]
) -> None:
    fifos = make(directory, stdin=False)
    direct = await fifos.connect()
    shim = FakeShim(fifos)
    shims.append(shim)
    fifos.attach()
    os.write(shim.stdout, b"out")
    os.write(shim.stderr, b"err")
    shim.close_output()
    assert direct.stderr is not None
    async with asyncio.timeout(10):
        assert await direct.stdout.read() == b"out"
        assert await direct.stderr.read() == b"err"
    fifos.close()


async def test_readers_see_no_eof_while_the_shim_has_not_attached(
    directory: Path, shims: list[FakeShim]
) -> None:
    # Before attach(), a writer that comes and goes (a shim failing half-way,
    # or opening and reopening) must not end our streams: the keeper holds them.
    fifos = make(directory, stdin=False)
    direct = await fifos.connect()
    shim = FakeShim(fifos)
    os.write(shim.stdout, b"early")
    shim.close()
    async with asyncio.timeout(10):
        assert await direct.stdout.readexactly(5) == b"early"
    await asyncio.sleep(0.1)  # let the loop poll the FIFO
    assert not direct.stdout.at_eof()
    fifos.attach()
    async with asyncio.timeout(10):
        assert await direct.stdout.read() == b""
    fifos.close()


async def test_stdin_reaches_the_shim_and_its_close_is_reported_once(
    directory: Path, shims: list[FakeShim]
) -> None:
    reports: list[str] = []
    fifos = make(directory)
    direct = await fifos.connect(lambda: reports.append("closed"))
    shim = FakeShim(fifos)
    shims.append(shim)
    fifos.attach()
    assert direct.stdin is not None
    direct.stdin.write(b"hello")
    direct.stdin.close()
    async with asyncio.timeout(10):
        await direct.stdin.wait_closed()
        assert await shim.read_stdin() == b"hello"
    assert reports == ["closed"]
    fifos.close()
    assert reports == ["closed"]


async def test_stdin_written_before_the_shim_attaches_is_kept(
    directory: Path, shims: list[FakeShim]
) -> None:
    fifos = make(directory)
    direct = await fifos.connect()
    assert direct.stdin is not None
    direct.stdin.write(b"early")
    direct.stdin.close()
    shim = FakeShim(fifos)
    shims.append(shim)
    fifos.attach()
    async with asyncio.timeout(10):
        assert await shim.read_stdin() == b"early"
    fifos.close()


LATE_SHIM = """
import os, select, subprocess, sys, time
path, delay, writer_first = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "yes"
# containerd's fifo package takes an O_PATH handle first, then opens in a goroutine.
handle = os.open(path, os.O_PATH)
# The runc shim opens a writer of its own (closed on CloseIO), maybe before its reader.
own_writer = os.open(path, os.O_WRONLY | os.O_NONBLOCK) if writer_first else -1
child = subprocess.Popen(["sleep", "60"])  # "the process": its parent, this, is "the shim"
print(child.pid, flush=True)
time.sleep(delay)  # the runc shim opens stdin in a goroutine, maybe after Create returned
if own_writer >= 0:
    os.close(own_writer)  # as on CloseIO, once our writer closed
fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
data = b""
while select.select([fd], [], [], 10)[0]:
    chunk = os.read(fd, 65536)
    if not chunk:
        break
    data += chunk
child.kill()
child.wait()
print(repr(data), flush=True)
"""


@pytest.mark.parametrize("writer_first", ["no", "yes"])
async def test_stdin_keeps_its_keeper_until_a_late_shim_reads_it(
    directory: Path, writer_first: str
) -> None:
    fifos = make(directory)
    direct = await fifos.connect()
    shim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LATE_SHIM,
        fifos.stdin,
        "0.5",
        writer_first,
        stdout=asyncio.subprocess.PIPE,
    )
    assert shim.stdout is not None
    try:
        process = int(await shim.stdout.readline())
        fifos.attach(process)
        await asyncio.sleep(0.1)  # a writer-only shim must not count as holding it
        assert direct.stdin is not None
        direct.stdin.write(b"hello")
        direct.stdin.close()  # before the shim has opened its end
        async with asyncio.timeout(30):
            assert await shim.stdout.readline() == b"b'hello'\n"  # and then EOF
    finally:
        if shim.returncode is None:
            shim.kill()
        await shim.wait()
    fifos.close()
    assert fifos.closed


async def test_a_stdin_keeper_waits_no_longer_than_its_process(directory: Path) -> None:
    fifos = make(directory)
    await fifos.connect()
    sleeper = await asyncio.create_subprocess_exec("sleep", "60")
    fifos.attach(sleeper.pid)  # its parent (this test) holds the FIFO: dropped at once
    await asyncio.sleep(0.05)
    assert fifos._keepers == {}
    sleeper.kill()
    await sleeper.wait()
    fifos.close()


async def test_closing_the_set_reports_no_stdin_close_and_ends_the_readers(
    directory: Path,
) -> None:
    reports: list[str] = []
    fifos = make(directory)
    direct = await fifos.connect(lambda: reports.append("closed"))
    fifos.close()
    async with asyncio.timeout(10):
        assert await direct.stdout.read() == b""
    await asyncio.sleep(0)
    assert reports == []
    assert fifos.closed


async def test_wait_attached_says_whether_the_shim_ever_attached(directory: Path) -> None:
    attached = make(directory)
    attached.attach()
    assert await attached.wait_attached()
    attached.close()
    _fifo.remove_process_fifos(str(directory), "init")
    abandoned = make(directory)
    waiter = asyncio.ensure_future(abandoned.wait_attached())
    abandoned.close()
    assert await waiter is False


async def test_released_readers_end_at_the_shims_eof(
    directory: Path, shims: list[FakeShim]
) -> None:
    fifos = make(directory)
    direct = await fifos.connect()
    shim = FakeShim(fifos)
    shims.append(shim)
    fifos.attach()
    os.write(shim.stdout, b"last words")
    fifos.release()
    assert direct.stdin is not None
    assert direct.stdin.is_closing()
    shim.close_output()
    async with asyncio.timeout(10):
        assert await direct.stdout.read() == b"last words"


async def test_released_readers_end_even_if_no_shim_ever_wrote(directory: Path) -> None:
    # An exec whose start failed: the shim never opened the FIFOs.
    fifos = make(directory)
    direct = await fifos.connect()
    fifos.release()
    async with asyncio.timeout(10):
        assert await direct.stdout.read() == b""
    assert direct.stderr is not None
    async with asyncio.timeout(10):
        assert await direct.stderr.read() == b""


async def test_no_descriptor_is_left_open(directory: Path) -> None:
    async def cycle(index: int) -> None:
        fifos = FifoSet.create(str(directory), "c1", f"p{index}", stdin=True, terminal=False)
        if index % 2:
            await fifos.connect()
        fifos.attach()
        fifos.close()
        await asyncio.sleep(0)  # transports close their pipes on the next loop turn

    await cycle(0)
    await cycle(1)
    before = open_fds()
    for index in range(2, 12):
        await cycle(index)
    await asyncio.sleep(0.01)
    assert open_fds() == before


def test_a_failed_create_leaves_nothing(directory: Path) -> None:
    (directory / "init-stderr").write_text("not a fifo")
    before = open_fds()
    with pytest.raises(FileExistsError):
        make(directory)
    assert open_fds() == before
    assert sorted(os.listdir(directory)) == ["init-stderr"]


async def test_recorded_fifos_are_reopened_and_log_uris_skipped(
    directory: Path, shims: list[FakeShim]
) -> None:
    original = make(directory, stdin=False)
    shim = FakeShim(original)
    shims.append(shim)
    original.close()
    recorded = {"stdin": "", "stdout": "fifo://" + original.stdout, "stderr": "file:///var/log/x"}
    restored = FifoSet.open_recorded("c1", "init", recorded, terminal=False)
    assert restored is not None
    assert await restored.wait_attached()
    direct = await restored.connect()
    assert direct.stdin is None
    assert direct.stderr is None
    os.write(shim.stdout, b"after restore")
    shim.close_output()
    async with asyncio.timeout(10):
        assert await direct.stdout.read() == b"after restore"
    restored.close()


async def test_a_recorded_fifo_nobody_writes_any_more_ends_at_once(directory: Path) -> None:
    # The restore of a task whose process has exited and whose shim closed its ends.
    original = make(directory, stdin=False)
    original.close()
    restored = FifoSet.open_recorded("c1", "init", {"stdout": original.stdout}, terminal=False)
    assert restored is not None
    direct = await restored.connect()
    async with asyncio.timeout(10):
        assert await direct.stdout.read() == b""
    restored.close()


def test_nothing_to_reopen_gives_none(directory: Path) -> None:
    recorded = {"stdout": str(directory / "gone"), "stderr": "binary:///usr/bin/logger"}
    assert FifoSet.open_recorded("c1", "init", recorded, terminal=False) is None


# -- log files -----------------------------------------------------------------------


def test_a_log_file_is_given_to_the_shim_as_two_spellings_of_one_path() -> None:
    log_file = LogFile(Path("/var/log/app dir/../app.log"))
    assert log_file.path == "/var/log/app.log"
    assert log_file == LogFile("/var/log/app.log")
    stdout, stderr = log_file.stdio_paths
    assert stdout == "/var/log/app.log"
    assert stderr != stdout
    assert os.path.normpath(stderr) == stdout
    assert LogFile("/a b%41?#.log").stdio_paths[0] == "/a b%41?#.log"
    assert LogFile("/app.log").stdio_paths == ("/app.log", "/./app.log")


@pytest.mark.parametrize(
    "bad",
    ["relative.log", "", "/nul\0byte", "/tab\there", "/del\x7f", "/100%.log", "/a%zz", "/a%4"],
)
def test_a_log_file_path_must_be_absolute_and_one_the_shim_can_parse(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="LogFile path"):
        LogFile(bad)


def test_a_log_file_is_created_with_its_folder_and_kept_when_it_exists(tmp_path: Path) -> None:
    log_file = LogFile(tmp_path / "logs" / "deeper" / "app.log")
    log_file.create()
    created = Path(log_file.path)
    assert created.read_bytes() == b""
    assert stat.S_IMODE(created.stat().st_mode) == 0o644 & ~current_umask()
    created.write_bytes(b"kept\n")
    log_file.create()
    assert created.read_bytes() == b"kept\n"


def test_a_log_file_that_cannot_be_created_is_a_failed_precondition(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(FailedPrecondition, match="cannot create the log file"):
        LogFile(tmp_path / "a-file" / "app.log").create()
    with pytest.raises(FailedPrecondition, match="cannot create the log file"):
        LogFile(tmp_path).create()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- ready-made attachers ---------------------------------------------------------------


async def attached_pair(directory: Path, shims: list[FakeShim]) -> tuple[FifoSet, DirectIO]:
    fifos = make(directory)
    direct = await fifos.connect()
    shims.append(FakeShim(fifos))
    fifos.attach()
    return fifos, direct


async def test_collect_output_feeds_stdin_and_returns_both_streams(
    directory: Path, shims: list[FakeShim]
) -> None:
    fifos, direct = await attached_pair(directory, shims)
    collector = CollectOutput(stdin=b"input")
    collector(direct)
    shim = shims[0]
    async with asyncio.timeout(10):
        assert await shim.read_stdin() == b"input"
    os.write(shim.stdout, b"o")
    os.write(shim.stderr, b"e")
    shim.close_output()
    async with asyncio.timeout(10):
        assert await collector == (b"o", b"e")
    fifos.close()


async def test_a_collector_refuses_a_second_process_and_an_early_await(
    directory: Path, shims: list[FakeShim]
) -> None:
    collector = CollectOutput()
    with pytest.raises(FailedPrecondition, match="not attached"):
        await collector
    fifos, direct = await attached_pair(directory, shims)
    collector(direct)
    with pytest.raises(InvalidArgument, match="already"):
        collector(direct)
    fifos.close()
    assert await collector == (b"", b"")


async def test_result_refuses_to_block_the_loop_that_copies(
    directory: Path, shims: list[FakeShim]
) -> None:
    collector = CollectOutput()
    with pytest.raises(FailedPrecondition, match="not attached"):
        collector.result()
    fifos, direct = await attached_pair(directory, shims)
    collector(direct)
    with pytest.raises(FailedPrecondition, match="await it instead"):
        collector.result(timeout=1)
    fifos.close()
    assert await collector == (b"", b"")


async def test_result_waits_from_another_thread_and_a_timeout_leaves_the_copy_going(
    directory: Path, shims: list[FakeShim]
) -> None:
    fifos, direct = await attached_pair(directory, shims)
    collector = CollectOutput()
    collector(direct)
    with pytest.raises(TimeoutError, match=r"did not end within 0\.1 s"):
        await asyncio.to_thread(collector.result, 0.1)
    waiter = asyncio.ensure_future(asyncio.to_thread(collector.result, 30))
    os.write(shims[0].stdout, b"late")
    shims[0].close_output()
    async with asyncio.timeout(30):
        assert await waiter == (b"late", b"")
    assert collector.result() == (b"late", b"")  # done: any thread, at once
    fifos.close()


async def test_an_attacher_can_be_awaited_from_another_event_loop(
    directory: Path, shims: list[FakeShim]
) -> None:
    # The blocking Client's copies run on its own loop; async code elsewhere awaits them.
    fifos, direct = await attached_pair(directory, shims)
    collector = CollectOutput()
    collector(direct)

    def other_loop() -> tuple[bytes, bytes]:
        async def awaited() -> tuple[bytes, bytes]:
            return await collector

        return asyncio.run(awaited())

    waiter = asyncio.ensure_future(asyncio.to_thread(other_loop))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    os.write(shims[0].stdout, b"across")
    shims[0].close_output()
    async with asyncio.timeout(30):
        assert await waiter == (b"across", b"")
    fifos.close()


async def test_stdin_data_needs_a_stdin(directory: Path) -> None:
    fifos = make(directory, stdin=False)
    direct = await fifos.connect()
    with pytest.raises(InvalidArgument, match="with_stdin"):
        CollectOutput(stdin=b"x")(direct)
    fifos.close()


async def test_copy_to_files_appends_to_paths_and_writes_to_open_files(
    directory: Path, tmp_path: Path, shims: list[FakeShim]
) -> None:
    fifos, direct = await attached_pair(directory, shims)
    out_path = tmp_path / "out.log"
    out_path.write_bytes(b"before\n")
    err_file = io.BytesIO()
    copier = CopyToFiles(out_path, err_file)
    copier(direct)
    shim = shims[0]
    os.write(shim.stdout, b"out\n")
    os.write(shim.stderr, b"err\n")
    shim.close_output()
    async with asyncio.timeout(10):
        await copier
    assert out_path.read_bytes() == b"before\nout\n"
    assert err_file.getvalue() == b"err\n"
    assert not err_file.closed
    fifos.close()


async def test_copy_to_files_refuses_a_target_that_is_no_file(directory: Path) -> None:
    fifos = make(directory)
    direct = await fifos.connect()
    with pytest.raises(InvalidArgument, match="copy target"):
        CopyToFiles(42)(direct)  # type: ignore[arg-type]
    fifos.close()


async def test_discard_drains_output_and_closes_stdin(
    directory: Path, shims: list[FakeShim]
) -> None:
    fifos, direct = await attached_pair(directory, shims)
    discard(direct)
    shim = shims[0]
    async with asyncio.timeout(10):
        # Far more than a FIFO and a StreamReader hold: it only fits if drained.
        await shim.write_stdout(b"x" * (2 << 20))
        assert await shim.read_stdin() == b""
    fifos.close()
