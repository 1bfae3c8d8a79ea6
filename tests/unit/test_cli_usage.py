"""lcd as a user types it, where no daemon is needed: help, bad input, usage refused up front.

Each case runs the installed ``lcd`` in a subprocess, pointed at a socket
where nothing answers and at private state folders, so nothing is started.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

LCD = str(Path(sys.executable).with_name("lcd"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "CONTAINERD_ADDRESS"}
    environment["LIBCONTAINERD_STATE_DIR"] = str(tmp_path / "state")
    environment["LIBCONTAINERD_ROOT_DIR"] = str(tmp_path / "root")
    return environment


def lcd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LCD, "--address", "/nonexistent/containerd.sock", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lcd")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["run", "--bogus", "--", "true"], 2, "lcd run: No such option"),
        (["frobnicate"], 2, "No such command 'frobnicate'"),
        (["run", "--memory", "12xb", "--", "true"], 2, "'12xb' is not a size"),
        (["update", "--memory", "12xb", "web"], 2, "'12xb' is not a size"),
        (["kill", "-s", "SIGFOO", "web"], 2, "unknown signal name 'SIGFOO'"),
        (["kill", "-s", "99", "web"], 2, "out of range"),
        (["run"], 2, "missing the command to run"),
        (["run", "-d", "--rm", "--", "true"], 2, "--rm with -d is not supported"),
        (["update", "web"], 2, "give at least one of --memory, --cpus, --pids-limit"),
        (["rm"], 2, "Missing argument 'ID...'"),
        (["run", "--cpus", "-1", "--", "true"], 125, "--cpus: must be a positive number"),
        (["run", "-w", "relative", "--", "true"], 125, "--workdir: must be an absolute path"),
        (["run", "--name", "../x", "--", "true"], 125, "'../x' is not a valid identifier"),
        (["run", "-e", "=x", "--", "true"], 125, "must look like NAME=value"),
        (["-n", "a/b", "ps"], 1, "namespace 'a/b' is not a valid identifier"),
        (["events", "a/b"], 1, "container id 'a/b' is not a valid identifier"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_failure_status(
    env: dict[str, str], args: list[str], status: int, message: str
) -> None:
    line = assert_one_line_failure(lcd(env, *args), status)
    assert message in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-d", "-i", "--", "sh"], "-d with -i/-t is not supported"),
        (["run", "-d", "-t", "--", "sh"], "-d with -i/-t is not supported"),
        (["exec", "-d", "-it", "web", "--", "sh"], "-d with -i/-t is not supported"),
        (["create", "-i", "--", "sh"], "-i applies when the container starts: 'lcd start -ai ID'"),
        (["start", "-a", "one", "two"], "-a and -i attach to one container: give one ID"),
        (["start", "-i", "one", "two"], "-a and -i attach to one container: give one ID"),
        (["exec", "web"], "Missing argument"),
        (["exec", "web", "--"], "missing the command to run"),
        (["stats", "--interval", "0", "web"], "--interval"),
        (["checkpoint", "web"], "Missing argument 'DIR'"),
        (["restore", "web", "/nonexistent/checkpoint"], "does not exist"),
        (["logs"], "Missing argument 'ID'"),
    ],
)
def test_what_cannot_work_is_refused_before_anything_is_contacted(
    env: dict[str, str], args: list[str], message: str
) -> None:
    assert message in assert_one_line_failure(lcd(env, *args), 2)


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["ps"], 1),
        (["version"], 1),
        (["kill", "web"], 1),
        (["run", "--", "true"], 125),
        (["exec", "web", "--", "true"], 125),
        (["stats", "--no-stream"], 1),
        (["logs", "web"], 1),
    ],
)
def test_an_address_where_nothing_answers_is_one_line_and_starts_nothing(
    env: dict[str, str], args: list[str], status: int, tmp_path: Path
) -> None:
    line = assert_one_line_failure(lcd(env, *args), status)
    assert "containerd at /nonexistent/containerd.sock does not answer" in line
    assert not (tmp_path / "state").exists()


COMMANDS = [
    *([name] for name in ("run", "create", "start", "exec", "kill", "stop", "pause", "resume")),
    *([name] for name in ("update", "checkpoint", "restore", "rm", "ps", "top", "stats")),
    *([name] for name in ("events", "logs", "version", "demo", "daemon")),
    *(["daemon", name] for name in ("start", "stop", "status", "run")),
]


@pytest.mark.parametrize("command", [[], *COMMANDS])
def test_every_command_has_help(env: dict[str, str], command: list[str]) -> None:
    result = lcd(env, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: lcd")


def test_lcd_alone_prints_its_help_and_succeeds(env: dict[str, str]) -> None:
    result = lcd(env)
    assert result.returncode == 0
    assert "Commands:" in result.stdout


def test_run_help_says_where_the_output_goes(env: dict[str, str]) -> None:
    text = " ".join(lcd(env, "run", "--help").stdout.split())
    assert "lcd copies the container's stdout and stderr to its own" in text
    assert "With -d the output goes to a log file ('lcd logs')" in text


def test_python_dash_m_runs_the_same_command(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "libcontainerd", "kill", "-s", "NOPE", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown signal name 'NOPE'" in result.stderr


@pytest.fixture
def package_logger() -> Iterator[logging.Logger]:
    """The library's logger, restored after the test (lcd reconfigures it)."""
    package = logging.getLogger("libcontainerd")
    saved = (package.handlers[:], package.level, package.propagate)
    try:
        yield package
    finally:
        package.handlers[:], package.level, package.propagate = saved


@pytest.mark.parametrize(
    ("verbose", "shown"),
    [(0, ["warning"]), (1, ["info", "warning"]), (2, ["debug", "info", "warning"])],
)
def test_library_messages_reach_lcds_stderr_as_one_line_each(
    package_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
    verbose: int,
    shown: list[str],
) -> None:
    from libcontainerd.cli import _app

    _app._configure_logging(verbose)
    log = logging.getLogger("libcontainerd.client")
    log.debug("a detail")
    log.info("a note")
    try:
        raise OSError("deep down")
    except OSError:
        log.warning("event stream lost:\nreconnecting", exc_info=True)
    lines = capsys.readouterr().err.splitlines()
    expected = {
        "debug": "lcd: debug: a detail",
        "info": "lcd: info: a note",
        "warning": "lcd: warning: event stream lost",
    }
    assert [line for line in lines if line.startswith("lcd: ")] == [expected[k] for k in shown]
    # The traceback only with -vv.
    assert ("Traceback" in "\n".join(lines)) == (verbose >= 2)
