"""The code stays what the style guide asks: ruff-clean, ruff-formatted, ``mypy --strict`` clean.

Run here so CI refuses a change that breaks them, like any failing test: the
package, the benchmarks, the scripts and the tests themselves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECKED = ["src", "bench", "scripts", "tests"]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "--no-cache", *CHECKED)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_the_code_is_formatted() -> None:
    done = _run("ruff", "format", "--check", "--no-cache", *CHECKED)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


@pytest.mark.timeout(300)
def test_mypy_strict_finds_nothing(tmp_path: Path) -> None:
    done = _run("mypy", "--strict", "--cache-dir", str(tmp_path), *CHECKED)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
