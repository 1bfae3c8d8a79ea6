"""lcd daemon start/status/stop, and the on-demand start, in private folders.

Every test points the embedded daemon at a fresh folder under /tmp
($LIBCONTAINERD_STATE_DIR / $LIBCONTAINERD_ROOT_DIR), never at
/run/libcontainerd, and checks that nothing it started is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import make_workdir, remove_workdir
from .containers import process_alive
from .lcd import LCD, Result, environment, lcd

pytestmark = pytest.mark.integration


class Embedded:
    """lcd with the embedded daemon in a private folder (no --address)."""

    def __init__(self, workdir: Path, containerd: str) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "s"
        self.root_dir = workdir / "r"
        self.env = environment(self.state_dir, self.root_dir, containerd)

    async def __call__(self, *args: str) -> Result:
        return await lcd(self.env, *args)

    async def status(self) -> dict[str, Any]:
        result = await self("daemon", "status", "--json")
        assert result.status in (0, 3), result
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def processes(self) -> list[int]:
        """Live processes whose command line mentions our folder (supervisor, containerd, shims)."""
        return _processes_mentioning(str(self.workdir))


def _processes_mentioning(text: str) -> list[int]:
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[-1].split()[0] != "Z":
                    found.append(int(entry.name))
    return found


async def _gone(pids: list[int], seconds: float = 30) -> bool:
    async with asyncio.timeout(seconds):
        while any(process_alive(pid) for pid in pids):
            await asyncio.sleep(0.05)
    return True


@pytest.fixture
async def embedded(containerd: str) -> AsyncIterator[Embedded]:
    daemon = Embedded(make_workdir(), containerd)
    try:
        yield daemon
    finally:
        with contextlib.suppress(Exception):
            await daemon("daemon", "stop")
        for pid in daemon.processes():  # only what a failed test left: ours, by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_workdir(daemon.workdir)


async def test_start_status_and_stop_leave_nothing_running(embedded: Embedded) -> None:
    started = await embedded("daemon", "start")
    assert started.status == 0, started
    assert started.stdout.startswith("started the embedded containerd: supervisor pid")

    report = await embedded.status()
    assert report["running"] is True
    assert report["address"] == str(embedded.state_dir / "containerd.sock")
    assert report["version"]
    assert report["containers"] == 0
    assert report["uptime_seconds"] >= 0
    pids = [report["supervisor_pid"], report["containerd_pid"]]
    assert sorted(embedded.processes()) == sorted(pids)

    text = await embedded("daemon", "status")
    assert text.status == 0
    assert "the embedded containerd is running" in text.stdout
    assert f"pid {report['containerd_pid']}" in text.stdout

    stopped = await embedded("daemon", "stop")
    assert stopped.stdout == f"stopped the embedded containerd (supervisor pid {pids[0]})\n"
    assert await _gone(pids)
    assert embedded.processes() == []
    assert not (embedded.state_dir / "containerd.sock").exists()
    after = await embedded("daemon", "status")
    assert after.status == 3
    assert "not running" in after.stdout


async def test_starting_twice_keeps_the_running_daemon(embedded: Embedded) -> None:
    assert (await embedded("daemon", "start")).status == 0
    first = (await embedded.status())["supervisor_pid"]
    again = await embedded("daemon", "start")
    assert again.status == 0
    assert again.stdout == f"the embedded containerd is already running (supervisor pid {first})\n"


async def test_stop_when_nothing_runs_says_so(embedded: Embedded) -> None:
    result = await embedded("daemon", "stop")
    assert result.status == 0
    assert result.stdout == "the embedded containerd is not running\n"


async def test_a_killed_containerd_is_restarted_by_the_supervisor(embedded: Embedded) -> None:
    assert (await embedded("daemon", "start")).status == 0
    before = await embedded.status()
    os.kill(before["containerd_pid"], signal.SIGKILL)
    async with asyncio.timeout(30):
        while True:
            report = await embedded.status()
            if (
                report["containerd_pid"] not in (None, before["containerd_pid"])
                and report["version"]
            ):
                break
            await asyncio.sleep(0.1)
    assert report["supervisor_pid"] == before["supervisor_pid"]
    # The supervisor logs the restart once the new containerd answers, which may be a
    # moment after status already reports it.
    log = embedded.state_dir / "lcd-daemon.log"
    async with asyncio.timeout(30):
        while "containerd restarted" not in log.read_text():
            await asyncio.sleep(0.1)


async def test_a_containerd_left_without_its_supervisor_is_stopped_too(
    embedded: Embedded,
) -> None:
    assert (await embedded("daemon", "start")).status == 0
    report = await embedded.status()
    os.kill(report["supervisor_pid"], signal.SIGKILL)
    assert await _gone([report["supervisor_pid"]])

    orphaned = await embedded("daemon", "status")
    assert orphaned.status == 3
    assert "runs without its supervisor" in orphaned.stdout

    stopped = await embedded("daemon", "stop")
    assert stopped.stdout == "stopped the embedded containerd (it ran without its supervisor)\n"
    assert await _gone([report["containerd_pid"]])
    assert embedded.processes() == []


async def test_a_command_starts_the_daemon_on_demand_and_says_so(embedded: Embedded) -> None:
    result = await embedded("run", "--rm", "--name", "ondemand", "--", "true")
    assert result.status == 0, result
    assert "started the embedded containerd" in result.stderr
    assert "'lcd daemon stop' stops it" in result.stderr
    assert (await embedded.status())["running"] is True
    # Its busybox root filesystem was made, and removed, under the root folder.
    assert (embedded.root_dir / "rootfs" / "libcontainerd").is_dir()
    assert list((embedded.root_dir / "rootfs" / "libcontainerd").iterdir()) == []

    again = await embedded("ps")
    assert again.status == 0
    assert again.stderr == ""  # already running: nothing to say


async def test_a_daemon_that_cannot_start_is_one_line_and_leaves_nothing(
    embedded: Embedded,
) -> None:
    embedded.env["PATH"] = str(embedded.workdir)  # no containerd there
    result = await embedded("daemon", "start")
    line = result.one_error_line()
    assert line.startswith("lcd: cannot start the embedded containerd:")
    assert "is not an executable file" in line
    assert str(embedded.state_dir / "lcd-daemon.log") in line
    assert embedded.processes() == []


async def test_progress_shows_on_a_terminal_and_only_there(embedded: Embedded) -> None:
    output, started = await asyncio.to_thread(
        _stderr_on_a_terminal, [LCD, "daemon", "start"], embedded.env
    )
    assert started.startswith("started the embedded containerd")
    assert b"starting the embedded containerd" in output  # rich's spinner, on stderr
    stopped = await embedded("daemon", "stop")
    assert stopped.stderr == ""  # not a terminal: no spinner


def _stderr_on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[bytes, str]:
    """Run ``argv`` with stderr on a new pseudo-terminal; what the terminal got, and stdout."""
    controller, terminal = pty.openpty()
    try:
        completed = subprocess.run(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=90,
            check=True,
        )
    finally:
        os.close(terminal)
    output = b""
    with contextlib.suppress(OSError):  # EIO once everything is read
        while chunk := os.read(controller, 4096):
            output += chunk
    os.close(controller)
    return output, completed.stdout
