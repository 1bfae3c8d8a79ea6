"""The lcd command on the suite's containerd, run as a user runs it (a subprocess per call)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from libcontainerd.client import AsyncClient
from libcontainerd.errors import NotFound
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import Status

from .containers import remove_container
from .lcd import LCD, Result, check_terminal_shell, environment, lcd, spawn_lcd

pytestmark = pytest.mark.integration

CLI_NAMESPACE = "lcdcli"


class Lcd:
    """``lcd --address <the suite's containerd> --namespace lcdcli ...``, and what to observe."""

    def __init__(self, supervisor: Supervisor, workdir: Path, client: AsyncClient) -> None:
        self.root_dir = workdir / "root"
        self.env = environment(workdir / "state", self.root_dir)
        self.prefix = ("--address", supervisor.address, "--namespace", CLI_NAMESPACE)
        self.client = client  # the library, to observe what lcd did
        self.spawned: list[asyncio.subprocess.Process] = []

    async def __call__(self, *args: str, stdin: str | None = None) -> Result:
        return await lcd(self.env, *self.prefix, *args, stdin=stdin)

    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        process = await spawn_lcd(self.env, *self.prefix, *args)
        self.spawned.append(process)
        return process

    def rootfs(self, container_id: str) -> Path:
        return self.root_dir / "rootfs" / CLI_NAMESPACE / container_id

    def log(self, container_id: str) -> Path:
        return self.root_dir / "logs" / CLI_NAMESPACE / f"{container_id}.log"

    async def listing(self) -> dict[str, dict[str, Any]]:
        result = await self("ps", "-a", "--json")
        assert result.status == 0, result
        return {record["id"]: record for record in json.loads(result.stdout)}

    async def status(self, container_id: str) -> Status | None:
        try:
            return await self.client.status(container_id)
        except NotFound:
            return None

    async def until(self, condition: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
        async with asyncio.timeout(seconds):
            while not await condition():
                await asyncio.sleep(0.05)

    async def until_status(self, container_id: str, status: Status | None) -> None:
        async def reached() -> bool:
            return await self.status(container_id) is status

        await self.until(reached)


@pytest.fixture
async def cli(supervisor: Supervisor, workdir: Path) -> AsyncIterator[Lcd]:
    async with AsyncClient(supervisor.address, CLI_NAMESPACE) as client:
        runner = Lcd(supervisor, workdir, client)
        try:
            yield runner
        finally:
            for process in runner.spawned:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            for info in await client.list_containers():
                await remove_container(client, info.id)


async def finished(process: asyncio.subprocess.Process, seconds: float = 30) -> Result:
    async with asyncio.timeout(seconds):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


# --- lcd run ----------------------------------------------------------------------


async def test_run_exits_with_the_containers_exit_status_and_keeps_it_without_a_task(
    cli: Lcd,
) -> None:
    result = await cli("run", "--name", "three", "--", "sh", "-c", "exit 3")
    assert result.status == 3
    assert result.stdout == ""
    record = (await cli.listing())["three"]
    assert await cli.status("three") is None  # its task was deleted once lcd saw the exit
    assert (record["status"], record["exit_code"]) == ("stopped", 3)  # the exit lcd kept
    assert cli.rootfs("three").is_dir()


async def test_run_rm_removes_the_container_and_its_root_filesystem(cli: Lcd) -> None:
    result = await cli("run", "--rm", "--name", "gone", "--", "true")
    assert result.status == 0, result
    assert "gone" not in await cli.listing()
    assert not cli.rootfs("gone").exists()


async def test_a_missing_program_exits_127_and_leaves_nothing(cli: Lcd) -> None:
    result = await cli("run", "--name", "nope", "--", "no-such-program")
    assert result.status == 127
    assert "executable file not found" in result.one_error_line()
    assert "nope" not in await cli.listing()
    assert not cli.rootfs("nope").exists()


async def test_a_program_that_cannot_be_run_exits_126(cli: Lcd) -> None:
    result = await cli("run", "--rm", "--", "/etc/passwd")
    assert result.status == 126
    assert "permission denied" in result.one_error_line()


async def test_run_options_reach_the_containers_process(cli: Lcd) -> None:
    check = (
        '[ "$FOO" = bar ] && [ "$(pwd)" = /tmp ] && [ "$(id -u):$(id -g)" = 65534:65534 ]'
        ' && [ "$(hostname)" = box ]'
    )
    plain = await cli("run", "--rm", "--", "sh", "-c", check)
    assert plain.status == 1
    options = ("-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "--hostname", "box")
    configured = await cli("run", "--rm", *options, "--", "sh", "-c", check)
    assert configured.status == 0, configured


def _cgroup(controller: str, container_id: str, name: str) -> str:
    return (Path("/sys/fs/cgroup", controller, CLI_NAMESPACE, container_id) / name).read_text()


async def test_resource_limits_reach_the_cgroup_and_update_changes_them(cli: Lcd) -> None:
    limits = ("--memory", "64m", "--pids-limit", "20", "--cpus", "0.5")
    result = await cli("run", "-d", "--name", "limited", *limits, "--", "sleep", "300")
    assert result.lines == ["limited"], result
    assert int(_cgroup("memory", "limited", "memory.limit_in_bytes")) == 64 << 20
    assert _cgroup("pids", "limited", "pids.max").strip() == "20"
    assert int(_cgroup("cpu", "limited", "cpu.cfs_quota_us")) == 50_000

    updated = await cli("update", "--memory", "128m", "--pids-limit", "30", "limited")
    assert updated.lines == ["limited"], updated
    assert int(_cgroup("memory", "limited", "memory.limit_in_bytes")) == 128 << 20
    assert _cgroup("pids", "limited", "pids.max").strip() == "30"


async def test_a_name_in_use_is_refused_and_the_running_container_is_untouched(
    cli: Lcd,
) -> None:
    assert (await cli("run", "-d", "--name", "dup", "--", "sleep", "300")).status == 0
    second = await cli("run", "--name", "dup", "--", "true")
    assert second.status == 125
    assert "'dup' already exists" in second.one_error_line()
    assert await cli.status("dup") is Status.RUNNING
    assert (cli.rootfs("dup") / "bin" / "busybox").is_file()


async def test_kill_ends_a_foreground_run_with_128_plus_the_signal(cli: Lcd) -> None:
    running = await cli.spawn("run", "--name", "victim", "--", "sleep", "300")
    await cli.until_status("victim", Status.RUNNING)
    killed = await cli("kill", "victim")
    assert killed.lines == ["victim"], killed
    result = await finished(running)
    assert result.status == 128 + signal.SIGKILL


async def test_ctrl_c_is_forwarded_to_the_container(cli: Lcd) -> None:
    script = "trap 'exit 42' INT; while true; do sleep 0.1; done"
    running = await cli.spawn("run", "--name", "trapper", "--", "sh", "-c", script)
    await cli.until_status("trapper", Status.RUNNING)
    await asyncio.sleep(0.3)  # the shell sets its trap once it runs
    running.send_signal(signal.SIGINT)
    result = await finished(running)
    assert result.status == 42, result


async def test_a_second_ctrl_c_kills_a_container_that_ignores_the_first(cli: Lcd) -> None:
    running = await cli.spawn("run", "--name", "stubborn", "--", "sleep", "300")
    await cli.until_status("stubborn", Status.RUNNING)
    running.send_signal(signal.SIGINT)
    await asyncio.sleep(0.5)
    assert await cli.status("stubborn") is Status.RUNNING  # pid 1 ignores an unhandled SIGINT
    running.send_signal(signal.SIGINT)
    result = await finished(running)
    assert result.status == 128 + signal.SIGKILL
    assert "press Ctrl-C again to kill it" in result.stderr


async def test_run_copies_stdout_and_stderr_apart(cli: Lcd) -> None:
    script = "echo out; echo err >&2; echo out2; exit 3"
    result = await cli("run", "--rm", "--", "sh", "-c", script)
    assert result.status == 3
    assert result.stdout == "out\nout2\n"
    assert result.stderr == "err\n"


async def test_run_i_copies_stdin_to_the_container_until_its_end(cli: Lcd) -> None:
    result = await cli("run", "--rm", "-i", "--", "cat", stdin="line one\nline two\n")
    assert result.status == 0, result
    assert result.stdout == "line one\nline two\n"


async def test_run_without_i_gives_the_container_no_input(cli: Lcd) -> None:
    result = await cli("run", "--rm", "--", "cat", stdin="not for the container\n")
    assert result.status == 0, result
    assert result.stdout == ""


async def test_a_reader_that_goes_away_does_not_stall_the_container(cli: Lcd) -> None:
    # `lcd run -- seq 1 100000 | head -1`: once the reader has gone, output is dropped.
    argv = [LCD, *cli.prefix, "run", "--rm", "--", "seq", "1", "100000"]
    first, status = await asyncio.to_thread(_first_line_then_hang_up, argv, cli.env)
    assert first == b"1\n"
    assert status == 0


def _first_line_then_hang_up(argv: list[str], env: dict[str, str]) -> tuple[bytes, int]:
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    try:
        first = process.stdout.readline()
        process.stdout.close()
        return first, process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_run_it_connects_a_terminal(cli: Lcd) -> None:
    argv = [LCD, *cli.prefix, "run", "--rm", "-it", "--", "sh"]
    await check_terminal_shell(argv, cli.env, rows=33, columns=111, status=7)


# --- the lifecycle, one command at a time --------------------------------------------


async def test_a_detached_container_through_ps_pause_resume_stop_start_and_rm(cli: Lcd) -> None:
    started = await cli("run", "-d", "--name", "web", "--", "sleep", "300")
    assert started.lines == ["web"], started

    record = (await cli.listing())["web"]
    assert record["status"] == "running"
    assert record["pid"] > 0
    assert record["created_at"].endswith("Z")
    table = (await cli("ps")).lines
    assert table[0].split() == ["ID", "COMMAND", "STATUS", "PID", "CREATED", "UPTIME", "PORTS"]
    assert any(line.split()[:4] == ["web", "sleep", "300", "running"] for line in table[1:])
    assert (await cli("ps", "-q")).lines == ["web"]

    assert (await cli("pause", "web")).lines == ["web"]
    assert (await cli.listing())["web"]["status"] == "paused"
    assert (await cli("resume", "web")).lines == ["web"]
    assert await cli.status("web") is Status.RUNNING

    refused = await cli("rm", "web")
    assert refused.one_error_line() == (
        "lcd: container 'web' is running: stop it first, or use 'lcd rm -f'"
    )

    assert (await cli("stop", "-t", "1", "web")).lines == ["web"]  # sleep ignores TERM
    assert await cli.status("web") is None  # the task is gone, its exit kept
    assert (await cli.listing())["web"]["exit_code"] == 137
    assert (await cli("ps", "-q")).lines == []

    assert (await cli("start", "web")).lines == ["web"]
    assert await cli.status("web") is Status.RUNNING

    assert (await cli("rm", "-f", "web")).lines == ["web"]
    assert "web" not in await cli.listing()
    assert not cli.rootfs("web").exists()


async def test_create_then_start_runs_the_container(cli: Lcd) -> None:
    created = await cli("create", "--name", "later", "--", "sh", "-c", "exit 5")
    assert created.lines == ["later"], created
    assert (await cli.listing())["later"]["status"] is None
    assert (await cli("start", "later")).lines == ["later"]
    await cli.until_status("later", Status.STOPPED)
    record = (await cli.listing())["later"]
    assert record["status"] == "stopped"
    assert record["exit_code"] == 5
    assert any("exited (5)" in line for line in (await cli("ps", "-a")).lines)
    # Starting again replaces the stopped task.
    assert (await cli("start", "later")).lines == ["later"]
    assert (await cli("rm", "-f", "later")).lines == ["later"]


async def test_rm_force_removes_a_paused_container(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "frozen", "--", "sleep", "300")).status == 0
    assert (await cli("pause", "frozen")).status == 0
    assert (await cli("rm", "-f", "frozen")).lines == ["frozen"]
    assert "frozen" not in await cli.listing()


async def test_rm_of_several_containers_reports_each_and_fails_if_one_did(cli: Lcd) -> None:
    assert (await cli("create", "--name", "one", "--", "true")).status == 0
    result = await cli("rm", "one", "missing")
    assert result.status == 1
    assert result.lines == ["one"]
    assert result.one_error_line() == "lcd: no such container: 'missing'"


async def test_top_lists_the_containers_processes(cli: Lcd) -> None:
    script = "sleep 301 & exec sleep 300"
    assert (await cli("run", "-d", "--name", "busy", "--", "sh", "-c", script)).status == 0
    await cli.until(lambda: _has_pids(cli, "busy", 2))
    processes = json.loads((await cli("top", "--json", "busy")).stdout)
    assert sorted(process["command"] for process in processes) == ["sleep 300", "sleep 301"]
    assert {process["pid"] for process in processes} == set(await cli.client.list_pids("busy"))
    table = (await cli("top", "busy")).lines
    assert table[0].split() == ["PID", "PPID", "UID", "STATE", "STARTED", "TIME", "COMMAND"]
    assert len(table) == 3


async def _has_pids(cli: Lcd, container_id: str, count: int) -> bool:
    return len(await cli.client.list_pids(container_id)) == count


async def test_kill_says_when_a_container_has_no_task(cli: Lcd) -> None:
    assert (await cli("create", "--name", "idle", "--", "true")).status == 0
    line = (await cli("kill", "idle")).one_error_line()
    assert line == "lcd: container 'idle' is not running (it has no task)"


@pytest.mark.parametrize(
    "command",
    [
        ["start"],
        ["kill"],
        ["kill", "-s", "TERM"],
        ["stop"],
        ["pause"],
        ["resume"],
        ["update", "--pids-limit", "5"],
        ["rm"],
        ["rm", "-f"],
        ["top"],
    ],
)
async def test_an_unknown_container_is_one_line_and_status_1(cli: Lcd, command: list[str]) -> None:
    line = (await cli(*command, "ghost")).one_error_line()
    assert "'ghost'" in line or '"ghost"' in line
    assert "no such container" in line or "not found" in line


# --- streams and facts ---------------------------------------------------------------


async def test_events_json_streams_one_object_per_line_as_they_happen(cli: Lcd) -> None:
    watcher = await cli.spawn("events", "--json")
    assert watcher.stderr is not None
    assert watcher.stdout is not None
    async with asyncio.timeout(30):
        assert b"listening for events" in await watcher.stderr.readline()
    assert (await cli("run", "--rm", "--name", "brief", "--", "sh", "-c", "exit 4")).status == 4
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while not seen or seen[-1]["type"] != "exit":
            record = json.loads(await watcher.stdout.readline())
            if record["container_id"] == "brief":
                seen.append(record)
    assert [record["type"] for record in seen] == ["create", "start", "exit"]
    assert seen[-1]["exit_code"] == 4
    assert seen[-1]["exited_at"].endswith("Z")
    watcher.send_signal(signal.SIGINT)
    assert (await finished(watcher)).status == 0


async def test_version_reports_lcd_and_containerd(cli: Lcd, supervisor: Supervisor) -> None:
    report = json.loads((await cli("version", "--json")).stdout)
    assert report["containerd"] == (await cli.client.version()).version
    assert report["address"] == supervisor.address
    assert report["namespace"] == CLI_NAMESPACE
    assert report["libcontainerd"]


# --- logs and start -a -------------------------------------------------------------


async def test_a_detached_containers_output_goes_to_its_log(cli: Lcd) -> None:
    script = "echo first; echo oops >&2; sleep 0.5; echo last"
    assert (await cli("run", "-d", "--name", "chatty", "--", "sh", "-c", script)).status == 0
    followed = await cli("logs", "-f", "chatty")  # ends when the container stops
    assert followed.status == 0, followed
    # Each stream to its own, as docker logs does.
    assert (followed.stdout, followed.stderr) == ("first\nlast\n", "oops\n")
    assert (await cli("logs", "chatty")).stdout == followed.stdout
    assert (await cli("rm", "chatty")).status == 0
    assert not cli.log("chatty").exists()


async def test_logs_of_a_container_run_with_i_in_the_foreground_say_there_are_none(
    cli: Lcd,
) -> None:
    assert (await cli("run", "-i", "--name", "fg", "--", "true")).status == 0
    line = (await cli("logs", "fg")).one_error_line()
    assert line.startswith("lcd: container 'fg' has no log")


async def test_start_appends_to_the_log_and_start_a_attaches(cli: Lcd) -> None:
    created = await cli("create", "--name", "twice", "--", "sh", "-c", "echo hi; exit 6")
    assert created.lines == ["twice"], created
    assert (await cli("start", "twice")).lines == ["twice"]
    await cli.until_status("twice", Status.STOPPED)
    attached = await cli("start", "-a", "twice")
    assert attached.status == 6
    assert attached.stdout == "hi\n"
    assert (await cli("start", "twice")).status == 0
    await cli.until_status("twice", Status.STOPPED)
    assert (await cli("logs", "twice")).stdout == "hi\nhi\nhi\n"  # start -a's output too


async def test_start_ai_connects_stdin(cli: Lcd) -> None:
    assert (await cli("create", "--name", "echoer", "--", "cat")).status == 0
    result = await cli("start", "-ai", "echoer", stdin="round trip\n")
    assert result.status == 0, result
    assert result.stdout == "round trip\n"


async def test_a_container_with_a_terminal_is_only_started_attached(cli: Lcd) -> None:
    assert (await cli("create", "-t", "--name", "tty", "--", "sh")).status == 0
    line = (await cli("start", "tty")).one_error_line()
    assert line == (
        "lcd: container 'tty' has a terminal, which needs lcd attached:"
        " start it with 'lcd start -ai tty'"
    )
    assert await cli.status("tty") is None


# --- exec ---------------------------------------------------------------------------


async def test_exec_output_and_exit_status(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "host", "--", "sleep", "300")).status == 0
    script = "echo out; echo err >&2; exit 5"
    result = await cli("exec", "host", "--", "sh", "-c", script)
    assert result.status == 5
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert await cli.status("host") is Status.RUNNING


async def test_exec_starts_from_the_containers_process_and_takes_options(cli: Lcd) -> None:
    run_options = ("-e", "FOO=from-run", "-w", "/tmp", "-u", "nobody")
    assert (
        await cli("run", "-d", "--name", "base", *run_options, "--", "sleep", "300")
    ).status == 0
    show = 'echo "$FOO $(pwd) $(id -u)"'
    inherited = await cli("exec", "base", "--", "sh", "-c", show)
    assert inherited.stdout == "from-run /tmp 65534\n", inherited
    options = ("-e", "FOO=from-exec", "-w", "/", "-u", "0")
    changed = await cli("exec", *options, "base", "--", "sh", "-c", show)
    assert changed.stdout == "from-exec / 0\n", changed


async def test_exec_i_copies_stdin(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "cats", "--", "sleep", "300")).status == 0
    result = await cli("exec", "-i", "cats", "--", "cat", stdin="to the exec\n")
    assert result.status == 0, result
    assert result.stdout == "to the exec\n"


async def test_exec_d_prints_the_exec_id_and_leaves_it_running(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "busy2", "--", "sleep", "300")).status == 0
    result = await cli("exec", "-d", "busy2", "--", "sleep", "301")
    assert result.status == 0, result
    (exec_id,) = result.lines
    assert exec_id.startswith("exec-")
    processes = json.loads((await cli("top", "--json", "busy2")).stdout)
    assert {p["exec_id"] for p in processes if p["command"] == "sleep 301"} == {exec_id}


async def test_exec_of_a_missing_program_exits_127(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "host2", "--", "sleep", "300")).status == 0
    result = await cli("exec", "host2", "--", "no-such-program")
    assert result.status == 127
    assert "executable file not found" in result.one_error_line()


# --- stats --------------------------------------------------------------------------


async def test_stats_no_stream_json_reports_usage_and_limits(cli: Lcd) -> None:
    limits = ("--memory", "64m", "--pids-limit", "20")
    assert (await cli("run", "-d", "--name", "meter", *limits, "--", "sleep", "300")).status == 0
    result = await cli("stats", "--no-stream", "--json", "meter")
    assert result.status == 0, result
    (line,) = result.lines
    record = json.loads(line)
    assert record["id"] == "meter"
    assert record["memory_limit_bytes"] == 64 << 20
    assert 0 < record["memory_usage_bytes"] < 64 << 20
    assert record["memory_percent"] == pytest.approx(
        record["memory_usage_bytes"] / (64 << 20) * 100, abs=0.01
    )
    assert record["pids_current"] == 1
    assert record["pids_limit"] == 20
    assert record["cpu_percent"] is not None
    assert record["cpu_percent"] >= 0
    assert record["read"].endswith("Z")


async def test_stats_without_ids_shows_the_running_containers_in_a_table(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "up", "--", "sleep", "300")).status == 0
    assert (await cli("create", "--name", "down", "--", "true")).status == 0
    table = (await cli("stats", "--no-stream")).lines
    headers = ["ID", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "BLOCK I/O"]
    assert re.split(r"\s{2,}", table[0]) == headers
    assert [line.split()[0] for line in table[1:]] == ["up"]


async def test_stats_streams_a_sample_per_interval_until_interrupted(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "live", "--", "sleep", "300")).status == 0
    watcher = await cli.spawn("stats", "--json", "--interval", "0.2", "live")
    assert watcher.stdout is not None
    async with asyncio.timeout(30):
        records = [json.loads(await watcher.stdout.readline()) for _ in range(3)]
    assert [record["id"] for record in records] == ["live"] * 3
    assert records[0]["cpu_percent"] is None  # nothing to compare the first sample with
    assert records[2]["cpu_percent"] is not None
    assert records[0]["read"] < records[1]["read"] < records[2]["read"]
    watcher.send_signal(signal.SIGINT)
    assert (await finished(watcher)).status == 0


# --- checkpoint and restore -----------------------------------------------------------


@pytest.mark.parametrize("network", ["none", "lcd0"])
async def test_checkpoint_exit_then_restore_goes_on_counting(
    cli: Lcd, criu: str, tmp_path: Path, network: str
) -> None:
    """On lcd0 (lcd run's default) the namespace is pinned: it outlives the task, and with
    it the network lock a dump with --exit leaves (an nftables table), which the restore
    must drop before CRIU locks the network again."""
    script = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done"
    run = ("run", "-d", "--network", network, "--name", "counter", "--", "sh", "-c", script)
    assert (await cli(*run)).status == 0
    await cli.until(lambda: _logged_at_least(cli, "counter", 5))
    images = tmp_path / "checkpoint"
    checkpointed = await cli("checkpoint", "--exit", "counter", str(images))
    assert checkpointed.lines == ["counter"], checkpointed
    assert (await cli.listing())["counter"]["status"] == "stopped"
    at_checkpoint = len((await cli("logs", "counter")).stdout.split())

    restored = await cli("restore", "counter", str(images))
    assert restored.lines == ["counter"], restored
    assert await cli.status("counter") is Status.RUNNING
    await cli.until(lambda: _logged_at_least(cli, "counter", at_checkpoint + 10))
    # One unbroken count: it went on from where it was, not from 1.
    numbers = [int(word) for word in (await cli("logs", "counter")).stdout.split()]
    assert numbers == list(range(1, len(numbers) + 1))


async def _logged_at_least(cli: Lcd, container_id: str, count: int) -> bool:
    # The log holds timestamped records: one line of output each.
    log = cli.log(container_id)
    return log.exists() and len(log.read_text().splitlines()) >= count


async def test_checkpoint_without_exit_leaves_the_container_running(
    cli: Lcd, criu: str, tmp_path: Path
) -> None:
    assert (await cli("run", "-d", "--name", "stays", "--", "sleep", "300")).status == 0
    result = await cli("checkpoint", "stays", str(tmp_path / "images"))
    assert result.lines == ["stays"], result
    assert (tmp_path / "images" / "inventory.img").is_file()
    assert await cli.status("stays") is Status.RUNNING


async def test_restore_of_a_running_container_is_refused(cli: Lcd, tmp_path: Path) -> None:
    assert (await cli("run", "-d", "--name", "busy3", "--", "sleep", "300")).status == 0
    line = (await cli("restore", "busy3", str(tmp_path))).one_error_line()
    assert line == "lcd: container 'busy3' is already running"


# --- failures of the newer commands --------------------------------------------------


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["exec", "ghost", "--", "true"], 125),
        (["exec", "-i", "ghost", "--", "sh"], 125),  # -it: stdin is no TTY, said first
        (["stats", "--no-stream", "ghost"], 1),
        (["checkpoint", "ghost", "/tmp/lcd-no-checkpoint"], 1),
        (["restore", "ghost", "/tmp"], 1),
        (["logs", "ghost"], 1),
        (["start", "-a", "ghost"], 125),
    ],
)
async def test_an_unknown_container_is_one_line_for_the_newer_commands(
    cli: Lcd, command: list[str], status: int
) -> None:
    result = await cli(*command)
    assert result.status == status
    line = result.one_error_line()
    assert "'ghost'" in line
    assert "no such container" in line
