"""Running the installed ``lcd`` command in tests, as a user would: a subprocess per call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LCD = str(Path(sys.executable).with_name("lcd"))


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def one_error_line(self) -> str:
        """The failure's single stderr line; asserts there is exactly one and no traceback."""
        assert self.status != 0, self
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, lines
        return lines[0]


def environment(
    state_dir: Path, root_dir: Path, containerd: str | None = None, **extra: str
) -> dict[str, str]:
    """The test's environment: private folders for the embedded daemon, no $CONTAINERD_ADDRESS.

    ``containerd`` is the binary the embedded daemon should run (the matrix's pass).
    """
    env = {key: value for key, value in os.environ.items() if key != "CONTAINERD_ADDRESS"}
    env["LIBCONTAINERD_STATE_DIR"] = str(state_dir)
    env["LIBCONTAINERD_ROOT_DIR"] = str(root_dir)
    if containerd and os.sep in containerd:
        # The embedded daemon finds "containerd" on PATH: this pass's one first.
        env["PATH"] = os.pathsep.join([os.path.dirname(containerd), env.get("PATH", "")])
    env.update(extra)
    return env


async def lcd(
    env: Mapping[str, str], *args: str, seconds: float = 90, stdin: str | None = None
) -> Result:
    """Run ``lcd args...`` to its end; ``stdin`` is its input (else it has none: /dev/null)."""
    completed = await asyncio.to_thread(
        subprocess.run,
        [LCD, *args],
        env=dict(env),
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


async def spawn_lcd(env: Mapping[str, str], *args: str) -> asyncio.subprocess.Process:
    """Start ``lcd args...`` and return at once (stdout and stderr are pipes)."""
    return await asyncio.create_subprocess_exec(
        LCD,
        *args,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
