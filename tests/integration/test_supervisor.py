"""The Supervisor against real containerd daemons: start, adopt, restart, stop.

Tests that kill or restart a daemon run their own Supervisor in their own
folders (the ``daemons`` fixture stops them all); only read-only checks use the
session's ``supervisor``. Containers are run with containerd's ``ctr``, so
these tests depend on nothing but the Supervisor itself; the one exception
shows a Supervisor in blocking code serving the blocking ``Client``.
"""

# The tests read small local files (pid file, log, /proc) between awaits.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import libcontainerd
from libcontainerd import oci, rootfs
from libcontainerd.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from libcontainerd.supervisor import MAX_SOCKET_PATH, Supervisor

from .conftest import make_workdir, remove_workdir
from .containers import live_shims

pytestmark = pytest.mark.integration

NAMESPACE = "test"
REPO = Path(__file__).resolve().parents[2]


# -- helpers ---------------------------------------------------------------------


def ctr_beside(containerd: str) -> str:
    """The ctr shipped with this containerd, else the system's."""
    if os.sep in containerd:
        candidate = Path(containerd).parent / "ctr"
        if candidate.is_file():
            return str(candidate)
    return "ctr"


async def ctr(daemon: Supervisor, *args: str, binary: str | None = None) -> str:
    """Run ctr against ``daemon`` in the test namespace; its stdout, or an assertion error."""
    program = binary or ctr_beside(daemon.containerd)
    proc = await asyncio.create_subprocess_exec(
        program,
        "-a",
        daemon.address,
        "-n",
        NAMESPACE,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, f"ctr {' '.join(args)} failed: {err.decode().strip()}"
    return out.decode()


def alive(pid: int) -> bool:
    """True if ``pid`` is a live process (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def shim_pids(daemon: Supervisor, container_id: str) -> list[int]:
    """Live shims serving ``container_id`` for this daemon."""
    return [s.pid for s in live_shims(daemon.address) if s.options.get("-id") == container_id]


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until ``condition()`` is true, checking every 50 ms."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)


async def run_sleeping_container(daemon: Supervisor, workdir: Path, container_id: str) -> int:
    """Run ``/bin/sleep 60`` in a busybox container with ctr; return the task's pid."""
    root = rootfs.busybox(workdir / container_id / "rootfs")
    spec = json.loads(await ctr(daemon, "oci", "spec"))
    spec["process"]["args"] = ["/bin/sleep", "60"]
    spec["process"]["terminal"] = False
    spec["root"] = {"path": str(root), "readonly": True}
    # A top-level cgroup of its own, which runc removes entirely on delete.
    spec["linux"]["cgroupsPath"] = f"/lcd-test-{container_id}"
    config = workdir / container_id / "config.json"
    config.write_text(json.dumps(spec))
    await ctr(
        daemon,
        "run",
        "-d",
        "--null-io",
        "--runc-root",
        daemon.runc_root,
        "--config",
        str(config),
        container_id,
    )
    return int(task_row(await ctr(daemon, "task", "ls"), container_id)[1])


def task_row(listing: str, container_id: str) -> list[str]:
    """The ``ctr task ls`` row of a task: [id, pid, status]."""
    for line in listing.splitlines()[1:]:
        words = line.split()
        if words and words[0] == container_id:
            return words
    raise AssertionError(f"no task {container_id} in:\n{listing}")


async def task_stopped_or_gone(daemon: Supervisor, container_id: str, seconds: float = 30) -> None:
    """Wait until ctr lists the task as not running, or not at all, or cannot answer (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            listing = await ctr(daemon, "task", "ls")
        except (AssertionError, TimeoutError):
            return  # no daemon to ask: nothing to wait for
        rows = [line.split() for line in listing.splitlines()[1:]]
        states = [row[2] for row in rows if len(row) > 2 and row[0] == container_id]
        if states != ["RUNNING"]:
            return
        await asyncio.sleep(0.05)


async def remove_container(daemon: Supervisor, container_id: str) -> None:
    """Kill, reap and delete a task and its container; ignore what is already gone."""
    for args in (("task", "kill", "-s", "KILL", container_id), ("task", "rm", "-f", container_id)):
        proc = await asyncio.create_subprocess_exec(
            ctr_beside(daemon.containerd),
            "-a",
            daemon.address,
            "-n",
            NAMESPACE,
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await proc.wait()
        if args[1] == "kill":
            await task_stopped_or_gone(daemon, container_id)
    proc = await asyncio.create_subprocess_exec(
        ctr_beside(daemon.containerd),
        "-a",
        daemon.address,
        "-n",
        NAMESPACE,
        "container",
        "rm",
        container_id,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


class Daemons:
    """Makes Supervisors in fresh folders; the fixture stops them and kills leftovers."""

    def __init__(self, containerd: str) -> None:
        self.containerd = containerd  # the matrix's pass: the default binary
        self.supervisors: list[Supervisor] = []
        self.workdirs: list[Path] = []
        self.containers: list[tuple[Supervisor, str]] = []
        self.stray_pids: list[int] = []

    def new(self, containerd: str | None = None, **options: Any) -> Supervisor:
        workdir = make_workdir()
        self.workdirs.append(workdir)
        daemon = Supervisor(
            workdir / "state",
            workdir / "root",
            containerd=containerd or self.containerd,
            **options,
        )
        self.supervisors.append(daemon)
        return daemon

    async def cleanup(self) -> None:
        for daemon, container_id in self.containers:
            if daemon.pid is not None:
                await remove_container(daemon, container_id)
        for daemon in self.supervisors:
            await daemon.stop()
        for pid in self.stray_pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        for workdir in self.workdirs:
            remove_workdir(workdir)


@pytest.fixture
async def daemons(containerd: str) -> AsyncIterator[Daemons]:
    made = Daemons(containerd)
    try:
        yield made
    finally:
        await made.cleanup()


# -- the session's daemon: read-only checks ----------------------------------------


async def test_a_started_daemon_answers_on_its_socket(supervisor: Supervisor) -> None:
    out = await ctr(supervisor, "version")
    assert "Server:" in out
    assert supervisor.version is not None
    assert supervisor.version in out


async def test_pid_address_and_log_describe_the_running_daemon(supervisor: Supervisor) -> None:
    assert supervisor.pid is not None
    assert alive(supervisor.pid)
    assert supervisor.config_path in cmdline(supervisor.pid)
    assert Path(supervisor.address).is_socket()
    assert Path(supervisor.address) == Path(supervisor.state_dir) / "containerd.sock"
    assert Path(supervisor.pid_file).read_text().strip() == str(supervisor.pid)
    assert Path(supervisor.log_path).is_file()
    assert supervisor.runc_root == os.path.join(os.path.dirname(supervisor.address), "runc")


async def test_the_config_keeps_everything_in_the_supervisors_folders(
    supervisor: Supervisor,
) -> None:
    config = Path(supervisor.config_path).read_text()
    assert f'address = "{supervisor.address}"' in config
    assert f'root = "{supervisor.root_dir}/daemon"' in config
    assert f'state = "{supervisor.state_dir}/daemon"' in config
    assert '"io.containerd.grpc.v1.cri",' in config


# -- restarts ------------------------------------------------------------------------


async def test_a_killed_daemon_is_restarted_with_a_new_pid(daemons: Daemons) -> None:
    daemon = daemons.new()
    await daemon.start()
    old_pid = daemon.pid
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)
    async with asyncio.timeout(20):
        await daemon.wait_ready(min_restarts=1)

    assert daemon.restarts == 1
    assert daemon.pid is not None
    assert daemon.pid != old_pid
    assert Path(daemon.pid_file).read_text().strip() == str(daemon.pid)
    assert "Server:" in await ctr(daemon, "version")


async def test_a_failing_restart_backs_off_up_to_its_cap_then_recovers(
    daemons: Daemons, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemons.new()
    await daemon.start()
    daemon.restart_delay_max = 0.4
    caplog.set_level(logging.INFO, logger="libcontainerd.supervisor")
    # containerd cannot start while its root is a file: every restart fails at once.
    data = Path(daemon.root_dir) / "daemon"
    data.rename(data.with_name("daemon.away"))
    data.write_text("")
    assert daemon.pid is not None

    def failures() -> list[logging.LogRecord]:
        return [
            record
            for record in caplog.records
            if record.getMessage().startswith("restarting containerd failed")
        ]

    os.kill(daemon.pid, signal.SIGKILL)
    # Five failed restarts, however long a loaded machine takes (the timeout only catches a hang).
    await eventually(lambda: len(failures()) >= 5, seconds=60)
    seen = failures()[:5]
    data.unlink()
    data.with_name("daemon.away").rename(data)
    async with asyncio.timeout(20):
        await daemon.wait_ready(min_restarts=1)

    # Delays 0.1 (announced when it died), then 0.2, 0.4 and the cap, 0.4, 0.4: the
    # schedule the supervisor announces, doubling up to its cap and never beyond.
    announced = [float(record.getMessage().split("next try in ")[1].split()[0]) for record in seen]
    assert announced == [0.2, 0.4, 0.4, 0.4, 0.4], announced
    # And it keeps to it: each wait lasts at least what was announced (no tight loop). Only
    # a lower bound: a loaded machine may take longer, never shorter.
    gaps = [later.created - earlier.created for earlier, later in itertools.pairwise(seen)]
    assert all(gap >= delay - 0.01 for gap, delay in zip(gaps, announced, strict=False)), gaps
    assert daemon.restarts == 1


async def test_a_running_container_survives_a_containerd_restart(
    daemons: Daemons, workdir: Path
) -> None:
    daemon = daemons.new()
    await daemon.start()
    daemons.containers.append((daemon, "survivor"))
    task_pid = await run_sleeping_container(daemon, workdir, "survivor")
    shims = shim_pids(daemon, "survivor")
    assert len(shims) == 1
    assert daemon.pid is not None

    os.kill(daemon.pid, signal.SIGKILL)
    async with asyncio.timeout(20):
        await daemon.wait_ready(min_restarts=1)

    assert task_row(await ctr(daemon, "task", "ls"), "survivor") == [
        "survivor",
        str(task_pid),
        "RUNNING",
    ]
    assert alive(task_pid)
    # runc's state is in the daemon's own folder, not /run/containerd/runc.
    assert (Path(daemon.runc_root) / NAMESPACE / "survivor" / "state.json").is_file()

    await remove_container(daemon, "survivor")
    await eventually(lambda: not alive(task_pid) and not alive(shims[0]))
    assert "survivor" not in await ctr(daemon, "task", "ls")


# -- the pid file -------------------------------------------------------------------


async def test_a_pid_file_naming_an_unrelated_live_process_is_not_adopted(
    daemons: Daemons,
) -> None:
    daemon = daemons.new()
    sleeper = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        Path(daemon.state_dir).mkdir(parents=True)
        Path(daemon.pid_file).write_text(f"{sleeper.pid}\n")

        await daemon.start()

        assert daemon.pid != sleeper.pid
        assert Path(daemon.pid_file).read_text().strip() == str(daemon.pid)
        assert sleeper.returncode is None
        assert alive(sleeper.pid)
        assert cmdline(sleeper.pid) == ["sleep", "60"]
        await daemon.stop()
        assert alive(sleeper.pid)
    finally:
        sleeper.kill()
        await sleeper.wait()
    assert sleeper.returncode == -signal.SIGKILL


async def test_a_pid_file_naming_a_dead_process_is_ignored(daemons: Daemons) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    daemon = daemons.new()
    Path(daemon.state_dir).mkdir(parents=True)
    Path(daemon.pid_file).write_text(f"{gone.pid}\n")

    await daemon.start()

    assert daemon.pid is not None
    assert daemon.pid != gone.pid
    assert Path(daemon.pid_file).read_text().strip() == str(daemon.pid)


_ORPHANING_PROGRAM = """
import asyncio, sys
from libcontainerd.supervisor import Supervisor

async def main():
    daemon = Supervisor(sys.argv[1], sys.argv[2], containerd=sys.argv[3])
    await daemon.start()
    print(daemon.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_daemon_left_by_a_killed_program_is_taken_over_and_restarted(
    daemons: Daemons,
) -> None:
    # Taking over is explicit: by default a daemon found running is only used.
    daemon = daemons.new(take_over=True)
    # Another program starts containerd in these folders, then dies without stopping it.
    env = dict(os.environ, PYTHONPATH=str(Path(libcontainerd.__file__).parents[1]))
    program = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ORPHANING_PROGRAM,
        daemon.state_dir,
        daemon.root_dir,
        daemon.containerd,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert program.stdout is not None
    async with asyncio.timeout(30):
        orphan = int(await program.stdout.readline())
    daemons.stray_pids.append(orphan)
    program.kill()
    await program.wait()
    assert alive(orphan)
    starts = Path(daemon.log_path).read_text().count("--- libcontainerd")

    await daemon.start()

    assert (daemon.pid, daemon.adopted) == (orphan, False)
    assert Path(daemon.log_path).read_text().count("--- libcontainerd") == starts
    assert "Server:" in await ctr(daemon, "version")
    # Not our child, so it is watched by polling; a crash is still noticed.
    os.kill(orphan, signal.SIGKILL)
    async with asyncio.timeout(20):
        await daemon.wait_ready(min_restarts=1)
    assert daemon.pid not in (None, orphan)
    assert "Server:" in await ctr(daemon, "version")


async def test_a_daemon_answering_without_a_pid_file_is_not_started_twice(
    daemons: Daemons,
) -> None:
    first = daemons.new()
    await first.start()
    Path(first.pid_file).unlink()
    second = Supervisor(first.state_dir, first.root_dir, containerd=first.containerd)

    with pytest.raises(Unavailable, match="already answers"):
        await second.start()

    assert second.pid is None
    assert "Server:" in await ctr(first, "version")


async def test_a_pid_file_holding_no_pid_is_ignored_with_a_warning(
    daemons: Daemons, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemons.new()
    Path(daemon.state_dir).mkdir(parents=True)
    Path(daemon.pid_file).write_text("+12\n")  # int() would take it; a pid file may not
    caplog.set_level(logging.WARNING, logger="libcontainerd.supervisor")

    await daemon.start()

    assert daemon.pid is not None
    assert Path(daemon.pid_file).read_text().strip() == str(daemon.pid)
    assert f"pid file {daemon.pid_file} holds '+12\\n', not a pid" in caplog.text


# -- stopping and running side by side -------------------------------------------------


async def test_stop_leaves_no_process_socket_or_pid_file(daemons: Daemons) -> None:
    daemon = daemons.new()
    await daemon.start()
    pid = daemon.pid
    assert pid is not None

    await daemon.stop()

    assert daemon.pid is None
    assert not Path(f"/proc/{pid}").exists()  # exited and reaped
    assert not Path(daemon.address).exists()
    assert not Path(daemon.pid_file).exists()
    with pytest.raises(Unavailable, match="not running"):
        await daemon.wait_ready()


async def test_the_context_manager_starts_and_stops(daemons: Daemons) -> None:
    daemon = daemons.new()
    async with daemon as running:
        assert running is daemon
        pid = daemon.pid
        assert pid is not None
        assert alive(pid)
    assert not Path(f"/proc/{pid}").exists()


async def test_starting_twice_raises_failed_precondition(daemons: Daemons) -> None:
    daemon = daemons.new()
    await daemon.start()
    with pytest.raises(FailedPrecondition, match="already"):
        await daemon.start()


async def test_two_supervisors_in_different_folders_run_side_by_side(daemons: Daemons) -> None:
    first, second = daemons.new(), daemons.new()
    await asyncio.gather(first.start(), second.start())

    assert first.pid != second.pid
    assert first.address != second.address
    assert "Server:" in await ctr(first, "version")
    assert "Server:" in await ctr(second, "version")

    await first.stop()
    assert "Server:" in await ctr(second, "version")


# -- blocking code --------------------------------------------------------------------


def supervisor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("libcontainerd-supervisor")]


def on_a_new_loop(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` on a loop of its own (not asyncio.run: it would unset the suite's loop)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(work)
    finally:
        loop.close()


def run_and_collect(
    client: libcontainerd.Client, workdir: Path, container_id: str, script: str
) -> tuple[bytes, bytes]:
    """Run ``sh -c script`` in a busybox container; its output, once it exited and is deleted."""
    root = rootfs.busybox(workdir / container_id / "rootfs")
    client.create(container_id, oci.default_spec(["/bin/sh", "-c", script], root))
    try:
        collected = libcontainerd.CollectOutput()
        client.start(container_id, attach_stdio=collected)
        output = collected.result(timeout=60)
        assert client.wait(container_id)[0] == 0
        return output
    finally:
        with contextlib.suppress(NotFound):
            client.delete_task(container_id)
        client.delete(container_id)


def test_a_with_block_runs_and_restarts_containerd_for_blocking_code(
    containerd: str, workdir: Path
) -> None:
    with Supervisor(workdir / "state", workdir / "root", containerd=containerd) as daemon:
        assert supervisor_threads() != []
        first = daemon.pid
        assert first is not None
        assert alive(first)
        with libcontainerd.Client(daemon.address, namespace=NAMESPACE) as client:
            assert run_and_collect(client, workdir, "before", "echo before; echo err >&2") == (
                b"before\n",
                b"err\n",
            )

        os.kill(first, signal.SIGKILL)
        daemon.wait_ready_blocking(min_restarts=1, timeout=30)

        assert daemon.restarts == 1
        last = daemon.pid
        assert last not in (None, first)
        assert Path(daemon.pid_file).read_text().strip() == str(last)
        with libcontainerd.Client(daemon.address, namespace=NAMESPACE) as client:
            assert run_and_collect(client, workdir, "after", "echo after") == (b"after\n", b"")
            assert client.list_containers() == []

    assert last is not None
    assert not Path(f"/proc/{last}").exists()  # stopped and reaped
    assert daemon.pid is None
    assert not Path(daemon.address).exists()
    assert not Path(daemon.pid_file).exists()
    assert supervisor_threads() == []
    deadline = time.monotonic() + 10
    while live_shims(daemon.address):
        assert time.monotonic() < deadline, live_shims(daemon.address)
        time.sleep(0.05)


def test_a_blocking_supervisor_refuses_async_calls_from_another_loop(
    containerd: str, workdir: Path
) -> None:
    with Supervisor(workdir / "state", workdir / "root", containerd=containerd) as daemon:
        with pytest.raises(FailedPrecondition, match=r"call stop_blocking\(\), not stop\(\)"):
            on_a_new_loop(daemon.stop())
        with pytest.raises(FailedPrecondition, match=r"call wait_ready_blocking\(\)"):
            on_a_new_loop(daemon.wait_ready())
        assert daemon.pid is not None
        assert alive(daemon.pid)
        with pytest.raises(FailedPrecondition, match="already runs"):
            daemon.start_blocking()
    assert daemon.pid is None


async def test_an_async_supervisor_refuses_stop_blocking(daemons: Daemons) -> None:
    daemon = daemons.new()
    await daemon.start()
    with pytest.raises(FailedPrecondition, match="would block the running event loop"):
        daemon.stop_blocking()

    def from_a_thread() -> None:
        with pytest.raises(FailedPrecondition, match=r"stop it with await stop\(\)"):
            daemon.stop_blocking()

    await asyncio.to_thread(from_a_thread)
    assert daemon.pid is not None
    assert alive(daemon.pid)


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("binary", ["/nonexistent/containerd", "no-such-containerd-binary"])
async def test_a_missing_binary_raises_unavailable_at_once(daemons: Daemons, binary: str) -> None:
    # "At once": without waiting out the start timeout, made long so that only a wait
    # for it (not a slow machine) fails the bound.
    daemon = daemons.new(containerd=binary, start_timeout=120)
    began = time.monotonic()
    with pytest.raises(Unavailable, match=binary):
        await daemon.start()
    assert time.monotonic() - began < 60
    assert daemon.pid is None


async def test_a_daemon_that_exits_during_start_up_raises_unavailable_with_its_log(
    daemons: Daemons,
) -> None:
    daemon = daemons.new(start_timeout=120)  # see above: only waiting it out fails the bound
    Path(daemon.root_dir).mkdir(parents=True)
    (Path(daemon.root_dir) / "daemon").write_text("not a directory")
    began = time.monotonic()

    with pytest.raises(Unavailable) as raised:
        await daemon.start()

    assert time.monotonic() - began < 60
    message = str(raised.value)
    assert "during start-up" in message
    assert daemon.log_path in message
    assert "not a directory" in message  # containerd's own words, from the log
    assert daemon.pid is None
    assert not Path(daemon.pid_file).exists()


async def test_a_state_dir_that_is_a_file_is_refused(workdir: Path) -> None:
    blocker = workdir / "file"
    blocker.write_text("")
    daemon = Supervisor(blocker / "state", workdir / "root")
    with pytest.raises(InvalidArgument, match=str(blocker)):
        await daemon.start()


def test_a_socket_path_too_long_is_refused_before_anything_is_made() -> None:
    state = "/tmp/" + "x" * MAX_SOCKET_PATH
    with pytest.raises(InvalidArgument, match="unix sockets allow at most 107"):
        Supervisor(state, "/tmp/lcd-unused-root")
    assert not Path(state).exists()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"log_level": "loud"}, "log_level"),
        ({"start_timeout": 0}, "start_timeout"),
        ({"stop_timeout": -1.0}, "stop_timeout"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        Supervisor("/tmp/lcd-unused-state", "/tmp/lcd-unused-root", **options)


# -- the version matrix ------------------------------------------------------------------


async def test_each_provisioned_version_starts_answers_and_stops(daemons: Daemons) -> None:
    daemon = daemons.new()
    await daemon.start()
    pid = daemon.pid
    assert pid is not None
    out = await ctr(daemon, "version")
    assert daemon.version is not None
    assert daemon.version in out
    log = Path(daemon.log_path).read_text()
    assert "level=error" not in log
    assert "level=warn" not in log

    await daemon.stop()

    assert not Path(f"/proc/{pid}").exists()
    assert not Path(daemon.address).exists()
    assert not Path(daemon.pid_file).exists()


async def test_each_provisioned_version_keeps_a_container_across_a_restart(
    daemons: Daemons, workdir: Path
) -> None:
    daemon = daemons.new()
    binary = shutil.which(daemons.containerd) or daemons.containerd
    await daemon.start()
    daemons.containers.append((daemon, "kept"))
    task_pid = await run_sleeping_container(daemon, workdir, "kept")
    shim = shim_pids(daemon, "kept")
    # The shim is the one unpacked beside this containerd, found through PATH.
    assert [Path(cmdline(pid)[0]).resolve().parent for pid in shim] == [
        Path(binary).resolve().parent
    ]
    assert daemon.pid is not None

    os.kill(daemon.pid, signal.SIGKILL)
    async with asyncio.timeout(20):
        await daemon.wait_ready(min_restarts=1)

    assert task_row(await ctr(daemon, "task", "ls"), "kept")[2] == "RUNNING"
    await remove_container(daemon, "kept")
    await eventually(lambda: not alive(task_pid) and not shim_pids(daemon, "kept"))
