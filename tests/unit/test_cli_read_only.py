"""Read-only lcd commands never start a daemon: with none answering they say how to start one.

A mistyped ``--state-dir`` (or ``$LIBCONTAINERD_STATE_DIR``) used to make
``lcd ps`` start a second containerd on the shared data folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LCD = str(Path(sys.executable).with_name("lcd"))

READ_ONLY = [
    ["ps"],
    ["ps", "-a"],
    ["top", "web"],
    ["stats", "--no-stream"],
    ["events"],
    ["logs", "web"],
    ["version"],
    ["inspect", "web"],
    ["cp", "web:/etc/hosts", "/nonexistent-lcd-test-target"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda args: " ".join(args))
def test_a_read_only_command_with_no_daemon_says_so_and_starts_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    state = tmp_path / "mistyped-state"
    env = {k: v for k, v in os.environ.items() if k != "CONTAINERD_ADDRESS"}
    env["LIBCONTAINERD_STATE_DIR"] = str(state)
    env["LIBCONTAINERD_ROOT_DIR"] = str(tmp_path / "root")

    result = subprocess.run(
        [LCD, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"lcd: no containerd answers at {state}/containerd.sock")
    assert "'lcd daemon start'" in line
    assert "started" not in line
    assert not state.exists()  # no daemon, not even its folder
    assert not (tmp_path / "root").exists()
