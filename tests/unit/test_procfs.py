"""What /proc says about a process: one stat parser, one pid-file reader."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from libcontainerd._procfs import (
    oom_count_file,
    parse_stat,
    process_alive,
    process_info,
    process_stat,
    read_pid_file,
)

# Fields 3..52 of a stat line after the name, as Linux writes them: state, ppid,
# pgrp, session, tty, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime
# (14th), stime (15th), cutime, cstime, priority, nice, threads, itrealvalue,
# starttime (22nd), and the rest.
_AFTER_NAME = " {state} 41 4242 4242 0 -1 4194560 107 0 0 0 17 5 0 0 20 0 1 0 98765 2424832 {rest}"
_REST = " ".join(["0"] * 30)
NOT_A_PID = 2**31 - 1  # above any pid_max, so never a process


def stat_line(name: str, state: str = "S") -> str:
    return f"4243 ({name})" + _AFTER_NAME.format(state=state, rest=_REST) + "\n"


@pytest.fixture
def zombie() -> Iterator[int]:
    """A child that has exited and is not reaped yet; reaped afterwards."""
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while (stat := process_stat(child.pid)) is None or stat.state != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        yield child.pid
    finally:
        child.wait()


# -- parse_stat ----------------------------------------------------------------------


def test_parse_stat_reads_state_parent_times_and_start() -> None:
    stat = parse_stat(stat_line("containerd"))

    assert stat is not None
    assert stat.name == "containerd"
    assert stat.state == "S"
    assert stat.ppid == 41
    assert (stat.user_ticks, stat.system_ticks) == (17, 5)
    assert stat.start_ticks == 98765
    assert not stat.exited


@pytest.mark.parametrize("name", ["a b", "x) (y", "(", ")", ") S 1 2 (", ""])
def test_parse_stat_keeps_a_name_with_spaces_and_parentheses_whole(name: str) -> None:
    stat = parse_stat(stat_line(name))

    assert stat is not None
    assert stat.name == name
    assert (stat.state, stat.ppid, stat.start_ticks) == ("S", 41, 98765)


@pytest.mark.parametrize("state", ["Z", "X"])
def test_parse_stat_says_a_zombie_or_dead_process_has_exited(state: str) -> None:
    stat = parse_stat(stat_line("sleep", state))

    assert stat is not None
    assert stat.state == state
    assert stat.exited


@pytest.mark.parametrize(
    "text",
    [
        "",
        "4243 containerd S 1 2 3",
        stat_line("cut")[:60],
        stat_line("sleep").replace(" 98765 ", " soon "),
    ],
)
def test_parse_stat_refuses_a_line_cut_short_or_malformed(text: str) -> None:
    assert parse_stat(text) is None


# -- real processes ----------------------------------------------------------------------


def test_process_info_describes_this_process() -> None:
    info = process_info(os.getpid())

    assert info is not None
    assert info.ppid == os.getppid()
    assert info.uid == os.geteuid()
    assert info.state == "R"  # this very thread is running: it reads the file
    assert info.started_at <= datetime.now(UTC)
    assert info.cpu_seconds > 0
    assert info.argv == tuple(sys.orig_argv)
    assert info.command == " ".join(sys.orig_argv)


def test_a_command_name_with_spaces_and_parentheses_is_read_whole(tmp_path: Path) -> None:
    # The kernel names a process after the file it executed: here a link to sleep.
    odd = tmp_path / "a) b (c"
    odd.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(odd), "30"])
    try:
        stat = process_stat(child.pid)
        info = process_info(child.pid)

        assert stat is not None
        assert stat.name == "a) b (c"
        assert stat.state in ("S", "R")
        assert stat.ppid == os.getpid()
        assert info is not None
        assert info.argv == (str(odd), "30")
        assert process_alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_a_zombie_has_exited_and_is_shown_by_its_name(zombie: int) -> None:
    stat = process_stat(zombie)
    info = process_info(zombie)

    assert stat is not None
    assert stat.exited
    assert not process_alive(zombie)
    assert info is not None
    assert info.state == "Z"
    assert info.argv == ()  # a zombie has no command line left
    assert info.command == "[true]"


def test_a_process_that_does_not_exist_has_no_stat_or_info() -> None:
    assert process_stat(NOT_A_PID) is None
    assert process_info(NOT_A_PID) is None
    assert not process_alive(NOT_A_PID)


# -- read_pid_file -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "pid"), [("1234\n", 1234), ("  42  \n", 42), ("7", 7)])
def test_read_pid_file_reads_a_pid(tmp_path: Path, text: str, pid: int) -> None:
    path = tmp_path / "daemon.pid"
    path.write_text(text)
    assert read_pid_file(str(path)) == pid


@pytest.mark.parametrize(
    "text",
    ["", "\n", "0", "-5", "+5", "1_000", "0x10", "12 34", "abc", "12abc", "١٢", "²", "\0"],
)
def test_read_pid_file_refuses_anything_but_a_positive_number_in_ascii_digits(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "daemon.pid"
    path.write_text(text)
    assert read_pid_file(str(path)) is None


def test_read_pid_file_of_a_missing_file_or_a_folder_is_none(tmp_path: Path) -> None:
    assert read_pid_file(str(tmp_path / "missing.pid")) is None
    assert read_pid_file(str(tmp_path)) is None


def test_read_pid_file_of_undecodable_bytes_is_none(tmp_path: Path) -> None:
    path = tmp_path / "daemon.pid"
    path.write_bytes(b"\xff\xfe12")
    assert read_pid_file(str(path)) is None


def test_the_oom_count_file_of_a_process_whose_cgroup_does_not_name_the_container() -> None:
    # This test's own process: its cgroup is not named after a container id.
    assert oom_count_file(os.getpid(), "not-this-process-cgroup") is None
    assert oom_count_file(NOT_A_PID, "x") is None
