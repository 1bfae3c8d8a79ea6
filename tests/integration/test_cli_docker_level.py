"""lcd at Docker's level: the commands and options a Docker user types, on the real containerd.

Each test runs the installed ``lcd`` (a subprocess per call) as test_cli.py
does, with its ``cli`` fixture; bad inputs are checked with their exit
status and their one line on stderr.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from libcontainerd.types import Status

from . import test_cli
from .lcd import lcd
from .test_cli import Lcd

pytestmark = pytest.mark.integration

cli = test_cli.cli  # the fixture: lcd on the suite's containerd, in namespace lcdcli

# --- the input device is not a TTY (item 9) -------------------------------------------


async def test_run_it_without_a_terminal_on_stdin_is_refused_as_docker_does(cli: Lcd) -> None:
    result = await cli("run", "-it", "--name", "notty", "--", "sh")
    assert result.status == 125
    assert result.one_error_line().startswith("lcd: the input device is not a TTY")
    assert "notty" not in await cli.listing()
    assert not cli.rootfs("notty").exists()


async def test_exec_it_without_a_terminal_on_stdin_is_refused(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "host", "--", "sleep", "300")).status == 0
    result = await cli("exec", "-it", "host", "--", "sh")
    assert result.status == 125
    assert result.one_error_line().startswith("lcd: the input device is not a TTY")
    assert await cli.status("host") is Status.RUNNING


async def test_start_ai_of_a_terminal_container_without_a_terminal_is_refused(cli: Lcd) -> None:
    assert (await cli("create", "-t", "--name", "tty", "--", "sh")).status == 0
    result = await cli("start", "-ai", "tty")
    assert result.status == 125
    assert result.one_error_line().startswith("lcd: the input device is not a TTY")
    assert await cli.status("tty") is None


async def test_run_i_with_piped_input_still_works(cli: Lcd) -> None:
    result = await cli("run", "--rm", "-i", "--", "cat", stdin="piped\n")
    assert (result.status, result.stdout) == (0, "piped\n")


# --- a foreground run keeps its exit and its output (item 10) --------------------------


async def test_a_foreground_run_keeps_its_exit_code_for_ps(cli: Lcd) -> None:
    assert (await cli("run", "--name", "x", "--", "sh", "-c", "exit 3")).status == 3
    assert await cli.status("x") is None  # no task, no shim left behind
    record = (await cli.listing())["x"]
    assert (record["status"], record["exit_code"]) == ("stopped", 3)
    assert record["exited_at"] is not None
    table = await cli("ps", "-a")
    (row,) = [line for line in table.lines if line.startswith("x ")]
    assert "exited (3)" in row
    silent = await cli("logs", "x")  # it said nothing: its log is there, and empty
    assert (silent.status, silent.stdout, silent.stderr) == (0, "", "")


async def test_a_foreground_run_keeps_its_output_for_logs(cli: Lcd) -> None:
    script = "echo out; echo err >&2; exit 3"
    run = await cli("run", "--name", "x", "--", "sh", "-c", script)
    assert (run.status, run.stdout, run.stderr) == (3, "out\n", "err\n")
    logs = await cli("logs", "x")
    assert (logs.status, logs.stdout, logs.stderr) == (0, "out\n", "err\n")


async def test_a_foreground_run_with_rm_keeps_nothing(cli: Lcd) -> None:
    assert (await cli("run", "--rm", "--name", "gone", "--", "echo", "hi")).status == 0
    assert "gone" not in await cli.listing()
    assert not cli.log("gone").exists()


async def test_stop_keeps_the_exit_of_the_task_it_deletes(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "s", "--", "sleep", "300")).status == 0
    assert (await cli("stop", "-t", "0.2", "s")).lines == ["s"]
    assert await cli.status("s") is None
    record = (await cli.listing())["s"]
    assert (record["status"], record["exit_code"]) == ("stopped", 137)  # pid 1 ignores TERM


async def test_a_new_start_shows_the_new_task_not_the_kept_exit(cli: Lcd) -> None:
    script = "[ -e /once ] && exit 4; touch /once; exit 3"
    assert (await cli("run", "--name", "again", "--", "sh", "-c", script)).status == 3
    assert (await cli("start", "again")).status == 0
    await cli.until_status("again", Status.STOPPED)
    assert (await cli.listing())["again"]["exit_code"] == 4  # the task's, not the kept 3
    assert (await cli("rm", "again")).status == 0
    assert "again" not in await cli.listing()


# --- inspect, wait, unpause, ps COMMAND ------------------------------------------------


async def test_inspect_prints_container_task_spec_and_labels(cli: Lcd) -> None:
    created = await cli("create", "--name", "i", "--label", "tier=web", "--", "sleep", "300")
    assert created.status == 0, created
    before = json.loads((await cli("inspect", "i")).stdout)
    assert [entry["id"] for entry in before] == ["i"]
    (entry,) = before
    assert entry["labels"]["tier"] == "web"
    assert entry["task"] is None
    assert entry["state"]["status"] is None
    assert entry["command"] == ["sleep", "300"]
    assert entry["spec"]["process"]["args"] == ["sleep", "300"]
    assert entry["root"] == str(cli.rootfs("i"))
    assert entry["image"] is None
    assert entry["network"]["network"] == "lcd0"  # lcd run's default, as docker run's bridge

    assert (await cli("start", "i")).status == 0
    (running,) = json.loads((await cli("inspect", "i")).stdout)
    assert running["task"]["status"] == "running"
    assert running["state"]["pid"] == running["task"]["pid"] > 0


async def test_inspect_of_a_missing_container_prints_the_others_and_exits_1(cli: Lcd) -> None:
    assert (await cli("create", "--name", "here", "--", "true")).status == 0
    result = await cli("inspect", "here", "nope")
    assert result.status == 1
    assert [entry["id"] for entry in json.loads(result.stdout)] == ["here"]
    assert result.stderr.splitlines() == ["lcd: no such container: 'nope'"]


async def test_inspect_of_a_bad_id_is_a_usage_failure(cli: Lcd) -> None:
    result = await cli("inspect", "../x")
    assert result.status == 1
    assert "not a valid identifier" in result.one_error_line()


async def test_wait_prints_the_exit_code_when_the_container_stops(cli: Lcd) -> None:
    script = "sleep 0.3; exit 4"
    assert (await cli("run", "-d", "--name", "w", "--", "sh", "-c", script)).status == 0
    result = await cli("wait", "w")
    assert (result.status, result.lines) == (0, ["4"])


async def test_wait_of_a_container_run_in_the_foreground_prints_its_kept_exit(cli: Lcd) -> None:
    assert (await cli("run", "--name", "fg", "--", "sh", "-c", "exit 5")).status == 5
    assert (await cli("wait", "fg")).lines == ["5"]


async def test_wait_of_a_container_never_started_is_refused(cli: Lcd) -> None:
    assert (await cli("create", "--name", "idle", "--", "true")).status == 0
    result = await cli("wait", "idle", "missing")
    assert result.status == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "lcd: container 'idle' has not been started",
        "lcd: no such container: 'missing'",
    ]


async def test_unpause_is_resume(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "p", "--", "sleep", "300")).status == 0
    assert (await cli("pause", "p")).lines == ["p"]
    assert await cli.status("p") is Status.PAUSED
    assert (await cli("unpause", "p")).lines == ["p"]
    assert await cli.status("p") is Status.RUNNING


async def test_ps_shows_the_command(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "c", "--", "sleep", "300")).status == 0
    table = await cli("ps")
    assert table.lines[0].split()[:3] == ["ID", "COMMAND", "STATUS"]
    (row,) = [line for line in table.lines if line.startswith("c ")]
    assert "sleep 300" in row
    assert (await cli.listing())["c"]["command"] == ["sleep", "300"]


# --- cp ---------------------------------------------------------------------------------


async def test_cp_copies_a_file_out_of_a_running_container(cli: Lcd, tmp_path: Path) -> None:
    script = "echo made-inside > /made; sleep 300"
    assert (await cli("run", "-d", "--name", "src", "--", "sh", "-c", script)).status == 0
    made = cli.rootfs("src") / "made"

    async def written() -> bool:
        return made.exists() and made.read_text() == "made-inside\n"

    await cli.until(written)
    result = await cli("cp", "src:/made", str(tmp_path))
    assert (result.status, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "made").read_text() == "made-inside\n"


async def test_cp_sees_a_running_containers_mounts(cli: Lcd, tmp_path: Path) -> None:
    script = "echo in-tmpfs > /scratch/f; sleep 300"
    options = ("--mount", "type=tmpfs,target=/scratch")
    assert (await cli("run", "-d", "--name", "m", *options, "--", "sh", "-c", script)).status == 0

    async def copied() -> bool:
        result = await cli("cp", "m:/scratch/f", str(tmp_path / "f"))
        return result.status == 0

    await cli.until(copied)
    assert (tmp_path / "f").read_text() == "in-tmpfs\n"
    assert not (cli.rootfs("m") / "scratch" / "f").exists()  # it was the tmpfs's


async def test_cp_copies_a_directory_into_a_stopped_container(cli: Lcd, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_text("hello\n")
    (site / "sub" / "run.sh").write_text("echo ran\n")
    (site / "sub" / "run.sh").chmod(0o755)
    (site / "link").symlink_to("index.html")
    command = ("sh", "-c", "cat /srv/site/index.html /srv/site/link; /srv/site/sub/run.sh")
    assert (await cli("create", "--name", "dst", "--", *command)).status == 0
    (cli.rootfs("dst") / "srv").mkdir()
    assert (await cli("cp", str(site), "dst:/srv")).status == 0
    assert (cli.rootfs("dst") / "srv" / "site" / "link").is_symlink()
    started = await cli("start", "-a", "dst")
    assert (started.status, started.stdout) == (0, "hello\nhello\nran\n")


async def test_cp_of_a_directorys_contents_with_dot(cli: Lcd, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a").write_text("A")
    assert (await cli("create", "--name", "d", "--", "true")).status == 0
    (cli.rootfs("d") / "target").mkdir()
    assert (await cli("cp", f"{source}/.", "d:/target")).status == 0
    assert (cli.rootfs("d") / "target" / "a").read_text() == "A"
    out = tmp_path / "out"
    assert (await cli("cp", "d:/target", str(out))).status == 0  # a missing DEST is the copy
    assert (out / "a").read_text() == "A"


async def test_cp_never_writes_through_a_containers_link_to_the_host(
    cli: Lcd, tmp_path: Path
) -> None:
    host_dir = tmp_path / "host-only"
    host_dir.mkdir()
    payload = tmp_path / "payload"
    payload.write_text("x")
    assert (await cli("create", "--name", "evil", "--", "true")).status == 0
    root = cli.rootfs("evil")
    (root / "escape").symlink_to(host_dir)  # absolute: means host_dir inside the container
    (root / "up").symlink_to("../../../../../../../../" + str(host_dir))
    for target in ("evil:/escape/", "evil:/up/", "evil:/../../../../" + str(host_dir)):
        result = await cli("cp", str(payload), target)
        assert result.status == 1, (target, result)
        assert "does not exist in the container" in result.one_error_line()
    assert list(host_dir.iterdir()) == []


async def test_cp_never_reads_through_a_containers_link_on_the_host(
    cli: Lcd, tmp_path: Path
) -> None:
    assert (await cli("create", "--name", "evil", "--", "true")).status == 0
    root = cli.rootfs("evil")
    (root / "secret").symlink_to("/etc/shadow")
    assert (await cli("cp", "evil:/secret", str(tmp_path / "got"))).status == 0
    assert os.readlink(tmp_path / "got") == "/etc/shadow"  # the link itself, not the host file
    escaped = await cli("cp", "evil:/../../../../../etc/passwd", str(tmp_path / "passwd"))
    assert escaped.status == 0, escaped
    assert (tmp_path / "passwd").read_bytes() == (root / "etc" / "passwd").read_bytes()


async def test_cp_bad_inputs(cli: Lcd, tmp_path: Path) -> None:
    assert (await cli("create", "--name", "b", "--", "true")).status == 0
    neither = await cli("cp", str(tmp_path), str(tmp_path / "x"))
    assert neither.status == 2
    assert "one of SRC and DEST must be ID:PATH" in neither.one_error_line()
    both = await cli("cp", "b:/etc", "b:/tmp")
    assert both.status == 2
    missing = await cli("cp", "b:/no/such", str(tmp_path))
    assert missing.status == 1
    assert "no such directory in the container: /no" in missing.one_error_line()
    unknown = await cli("cp", "nope:/etc", str(tmp_path))
    assert unknown.status == 1
    assert "no such container" in unknown.one_error_line()


# --- run/create options -----------------------------------------------------------------


async def test_read_only_makes_the_root_filesystem_read_only(cli: Lcd) -> None:
    result = await cli("run", "--rm", "--read-only", "--", "touch", "/x")
    assert result.status == 1
    assert "Read-only file system" in result.stderr
    assert (await cli("run", "--rm", "--", "touch", "/x")).status == 0


async def test_volume_binds_a_host_directory_and_makes_a_missing_one(
    cli: Lcd, tmp_path: Path
) -> None:
    shared = tmp_path / "made-by-v"
    result = await cli("run", "--rm", "-v", f"{shared}:/data", "--", "sh", "-c", "echo hi >/data/f")
    assert result.status == 0, result
    assert (shared / "f").read_text() == "hi\n"
    readonly = await cli("run", "--rm", "-v", f"{shared}:/data:ro", "--", "touch", "/data/g")
    assert readonly.status == 1
    assert not (shared / "g").exists()


async def test_mount_bind_and_tmpfs(cli: Lcd, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("bound\n")
    options = (
        "--mount",
        f"type=bind,source={tmp_path},target=/in,readonly",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
    )
    script = "cat /in/f && ! touch /in/g 2>/dev/null && grep ' /t tmpfs ' /proc/mounts"
    result = await cli("run", "--rm", *options, "--", "sh", "-c", script)
    assert result.status == 0, result
    assert result.stdout.startswith("bound\n")
    assert "size=1024k" in result.stdout


async def test_cap_drop_and_cap_add(cli: Lcd) -> None:
    script = "grep CapEff /proc/self/status"
    dropped = await cli("run", "--rm", "--cap-drop", "ALL", "--", "sh", "-c", script)
    assert dropped.stdout.split() == ["CapEff:", "0000000000000000"]
    raw = await cli(
        "run", "--rm", "--cap-drop", "ALL", "--cap-add", "net_raw", "--", "sh", "-c", script
    )
    assert int(raw.stdout.split()[1], 16) == 1 << 13  # CAP_NET_RAW alone
    chown = await cli("run", "--rm", "--cap-drop", "CHOWN", "--", "chown", "1:1", "/tmp")
    assert chown.status == 1


async def test_label_user_workdir_and_env_file(cli: Lcd, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nA=from-file\nB=file\n\n")
    check = '[ "$A:$B" = "from-file:flag" ] && [ "$(id -u)" = 1000 ] && [ "$(pwd)" = /tmp ]'
    options = ("--env-file", str(env_file), "-e", "B=flag", "-u", "1000", "-w", "/tmp")
    result = await cli(
        "run", "--name", "l", "-l", "a=b", "--label", "c=d=e", *options, "--", "sh", "-c", check
    )
    assert result.status == 0, result
    labels = (await cli.listing())["l"]["labels"]
    assert (labels["a"], labels["c"]) == ("b", "d=e")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-v", "data:/d"], "--volume: volume 'data:/d': named volumes are not supported"),
        (["-v", "/d"], "--volume: volume '/d': anonymous volumes are not supported"),
        (["-v", "/a:/b:rx"], "--volume: volume '/a:/b:rx': the mode must be ro or rw"),
        (["--mount", "type=volume,target=/d"], "--mount: mount 'type=volume,target=/d':"),
        (["--mount", "type=bind,source=/no/such/dir,target=/d"], "bind source path does not"),
        (["--mount", "type=tmpfs,target=/t,tmpfs-mode=9"], "is not an octal mode"),
        (["--cap-add", "CAP_NOPE"], "--cap-add: "),
        (["--env-file", "/no/such/file"], "--env-file: cannot read /no/such/file"),
        (["--label", "=v"], "--label: label '=v' must look like KEY=VALUE"),
        (["--label", "bare"], "--label: label 'bare' must look like KEY=VALUE"),
        (["--cpus", "1000"], "--cpus: range of CPUs is from 0.01 to"),
        (["--memory", "1m"], "--memory: minimum memory limit allowed is 6MB"),
    ],
)
async def test_bad_run_options_are_refused_before_anything_is_made(
    cli: Lcd, args: list[str], message: str
) -> None:
    result = await cli("run", "--name", "bad", *args, "--", "true")
    assert result.status == 125, result
    assert message in result.one_error_line()
    assert "bad" not in await cli.listing()
    assert not cli.rootfs("bad").exists()


async def test_update_refuses_more_cpus_than_the_host_has(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "u", "--", "sleep", "300")).status == 0
    result = await cli("update", "--cpus", "1000", "u")
    assert result.status == 1
    cpus = len(os.sched_getaffinity(0))
    assert result.one_error_line() == (
        f"lcd: --cpus: range of CPUs is from 0.01 to {cpus:.2f},"
        f" as there are only {cpus} CPUs available"
    )
    assert (await cli("update", "--cpus", "0.5", "u")).lines == ["u"]


# --- logs --tail, --since, -t -----------------------------------------------------------


async def test_logs_tail_prints_the_last_lines(cli: Lcd) -> None:
    assert (await cli("run", "--name", "n", "--", "seq", "1", "10")).status == 0
    assert (await cli("logs", "--tail", "3", "n")).lines == ["8", "9", "10"]
    assert (await cli("logs", "-n", "0", "n")).stdout == ""
    assert len((await cli("logs", "--tail", "all", "n")).lines) == 10
    bad = await cli("logs", "--tail", "x", "n")
    assert bad.status == 2


_STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"


async def test_logs_t_starts_each_line_with_when_it_was_written(cli: Lcd) -> None:
    script = "echo one; echo err >&2; printf 'no newline'"
    assert (await cli("run", "--name", "n", "--", "sh", "-c", script)).status == 0
    logs = await cli("logs", "-t", "n")
    assert logs.status == 0, logs
    assert re.fullmatch(rf"{_STAMP} one\n{_STAMP} no newline", logs.stdout), logs
    assert re.fullmatch(rf"{_STAMP} err\n", logs.stderr), logs
    moment = datetime.fromisoformat(logs.stdout[:26] + "+00:00")
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 600


async def test_logs_of_a_detached_container_keep_times_too(cli: Lcd) -> None:
    assert (await cli("run", "-d", "--name", "d", "--", "sh", "-c", "echo a; echo b")).status == 0
    await cli.until(lambda: _log_has(cli, "d", 2))
    logs = await cli("logs", "--timestamps", "d")
    assert re.fullmatch(rf"{_STAMP} a\n{_STAMP} b\n", logs.stdout), logs
    assert (await cli("logs", "d")).stdout == "a\nb\n"
    assert (await cli("logs", "--tail", "1", "-t", "d")).stdout.endswith(" b\n")


async def _log_has(cli: Lcd, container_id: str, lines: int) -> bool:
    log = cli.log(container_id)
    return log.exists() and len(log.read_bytes().splitlines()) >= lines


async def test_logs_since_skips_what_came_before(cli: Lcd) -> None:
    script = "echo early; sleep 0.5; echo late; sleep 300"
    assert (await cli("run", "-d", "--name", "s", "--", "sh", "-c", script)).status == 0
    await cli.until(lambda: _log_has(cli, "s", 2))
    early, late = (await cli("logs", "-t", "s")).lines
    # A moment just after the first line was written (its time, to the microsecond, + 1 us).
    moment = datetime.fromisoformat(early.split()[0][:26] + "+00:00") + timedelta(microseconds=1)
    assert late.split()[0] > moment.strftime("%Y-%m-%dT%H:%M:%S.%f")  # the sleep put them apart
    since = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert (await cli("logs", "--since", since, "s")).stdout == "late\n"
    assert (await cli("logs", "--since", f"{moment.timestamp():.6f}", "s")).stdout == "late\n"
    assert (await cli("logs", "--since", "1h", "s")).stdout == "early\nlate\n"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await cli("logs", "--since", future, "s")).stdout == ""


async def test_logs_since_refuses_what_is_not_a_moment(cli: Lcd) -> None:
    assert (await cli("run", "--name", "n", "--", "true")).status == 0
    for bad in ("yesterday", "-5m", "10x", ""):
        result = await cli("logs", "--since", bad, "n")
        assert result.status == 2, result
        line = result.one_error_line()
        assert line.startswith("lcd logs: Invalid value for '--since'"), line
        assert "RFC 3339" in line, line


# --- run --init -----------------------------------------------------------------------


async def test_run_init_puts_an_init_at_pid_1_that_passes_the_exit_status_on(cli: Lcd) -> None:
    ps = await cli("run", "--rm", "--init", "--", "ps", "-o", "pid,comm")
    assert ps.status == 0, ps
    assert ps.lines[1].split() == ["1", "docker-init"]
    assert (await cli("run", "--rm", "--init", "--", "sh", "-c", "exit 7")).status == 7


async def test_run_init_reaps_zombies_that_a_plain_pid_1_leaves(cli: Lcd) -> None:
    # An orphan re-parented to PID 1: sleep (the exec'd PID 1) never reaps it; the init does.
    script = "(sleep 0.1 &); exec sleep 300"
    for name, init in (("reaped", ["--init"]), ("zombie", [])):
        assert (await cli("run", "-d", *init, "--name", name, "--", "sh", "-c", script)).status == 0

    async def sleeps(name: str) -> list[str]:
        """The states of the container's sleep processes."""
        table = await cli("exec", name, "--", "ps", "-o", "stat,comm")
        return [line.split()[0] for line in table.lines[1:] if line.split()[1:] == ["sleep"]]

    async def orphans_ended() -> bool:
        return len(await sleeps("reaped")) == 1 and (await sleeps("zombie")).count("Z") == 1

    await cli.until(orphans_ended)
    assert "Z" not in await sleeps("reaped")


async def test_run_init_forwards_stop_signals_to_the_command(cli: Lcd) -> None:
    # sleep as PID 1 ignores SIGTERM (137 after the grace period); under the init it gets it.
    assert (await cli("run", "-d", "--init", "--name", "i", "--", "sleep", "300")).status == 0
    assert (await cli("stop", "-t", "30", "i")).lines == ["i"]
    assert (await cli.listing())["i"]["exit_code"] == 143
    table = await cli("ps", "-a")
    (row,) = [line for line in table.lines if line.startswith("i ")]
    assert "sleep 300" in row
    assert "docker-init" not in row


async def test_create_init_runs_the_command_under_the_init_with_a_read_only_root(
    cli: Lcd,
) -> None:
    assert (await cli("create", "--init", "--read-only", "--name", "c", "--", "true")).status == 0
    spec = json.loads((await cli("inspect", "c")).stdout)[0]["spec"]
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "true"]
    started = await cli("start", "-a", "c")
    assert started.status == 0, started


async def test_run_init_without_an_init_on_the_host_says_what_to_install(
    cli: Lcd, tmp_path: Path
) -> None:
    # A PATH without tini-static or catatonit (lcd itself is run by its full path).
    env = {**cli.env, "PATH": str(tmp_path)}
    result = await lcd(env, *cli.prefix, "run", "--rm", "--init", "--", "true")
    assert result.status == 125
    line = result.one_error_line()
    assert "--init: no static init on this host" in line
    assert "apt-get install tini" in line


# --- rename ---------------------------------------------------------------------------


async def test_rename_says_that_names_are_containerd_ids(cli: Lcd) -> None:
    assert (await cli("create", "--name", "old", "--", "true")).status == 0
    result = await cli("rename", "old", "new")
    assert result.status == 1
    line = result.one_error_line()
    assert line.startswith("lcd: cannot rename container 'old':"), line
    assert "containerd container ids, which cannot change" in line
    listing = await cli.listing()
    assert "old" in listing
    assert "new" not in listing


async def test_rename_checks_both_names_first(cli: Lcd) -> None:
    assert (await cli("create", "--name", "a", "--", "true")).status == 0
    assert (await cli("create", "--name", "b", "--", "true")).status == 0
    cases = {
        ("ghost", "c"): "lcd: no such container: 'ghost'",
        ("a", "b"): "lcd: the name 'b' is already in use by a container",
        ("a", "bad name"): "lcd: container id 'bad name' is not a valid identifier",
    }
    for (old, new), message in cases.items():
        result = await cli("rename", old, new)
        assert result.status == 1, result
        assert result.one_error_line().startswith(message), result
    assert (await cli("rename", "a")).status == 2  # usage: NEW_NAME missing
