"""The Supervisor's blocking form, where no containerd is needed: refusals and defaults.

Starting, restarting and stopping a real daemon from blocking code is in
tests/integration/test_supervisor.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from libcontainerd import _paths
from libcontainerd.errors import FailedPrecondition, Unavailable
from libcontainerd.supervisor import Supervisor


def supervisor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("libcontainerd-supervisor")]


async def test_start_blocking_inside_a_running_event_loop_is_refused(tmp_path: Path) -> None:
    daemon = Supervisor(tmp_path / "state", tmp_path / "root")

    with pytest.raises(FailedPrecondition, match=r"use await start\(\)"):
        daemon.start_blocking()

    assert not (tmp_path / "state").exists()
    assert supervisor_threads() == []


async def test_a_with_block_inside_a_running_event_loop_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(FailedPrecondition, match=r"'async with Supervisor\(\.\.\.\)'"),
        Supervisor(tmp_path / "state", tmp_path / "root"),
    ):
        pytest.fail("the block ran")


def test_a_failed_blocking_start_raises_and_leaves_no_thread(tmp_path: Path) -> None:
    daemon = Supervisor(tmp_path / "state", tmp_path / "root", containerd="/nonexistent/containerd")

    with pytest.raises(Unavailable, match="/nonexistent/containerd"):
        daemon.start_blocking()

    assert daemon.pid is None
    assert supervisor_threads() == []


def test_stop_blocking_of_a_supervisor_not_running_does_nothing(tmp_path: Path) -> None:
    daemon = Supervisor(tmp_path / "state", tmp_path / "root")
    daemon.stop_blocking()
    daemon.stop_blocking()
    assert daemon.pid is None


def test_wait_ready_blocking_of_a_supervisor_not_running_raises_unavailable(
    tmp_path: Path,
) -> None:
    daemon = Supervisor(tmp_path / "state", tmp_path / "root")
    with pytest.raises(Unavailable, match=r"call start_blocking\(\) first"):
        daemon.wait_ready_blocking(timeout=1)


def test_the_default_folders_and_file_names_are_the_embedded_daemons() -> None:
    daemon = Supervisor()

    assert daemon.state_dir == _paths.DEFAULT_STATE_DIR
    assert daemon.root_dir == _paths.DEFAULT_ROOT_DIR
    assert daemon.address == _paths.DEFAULT_ADDRESS
    assert daemon.pid_file == _paths.containerd_pid_file(_paths.DEFAULT_STATE_DIR)
    assert daemon.log_path == _paths.containerd_log(_paths.DEFAULT_STATE_DIR)
    assert daemon.config_path == _paths.containerd_config(_paths.DEFAULT_STATE_DIR)
    assert daemon.runc_root == _paths.runc_root(_paths.DEFAULT_ADDRESS)
