"""The benchmark runner's quick mode works: it exits 0 and writes its results as JSON.

Benchmarks are not tests: nothing here looks at a timing. This only proves
that `python -m bench --quick` (a few seconds, tiny counts, no Go build, no
Docker) runs end to end on a real containerd and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .ci import missing

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration

TOOLS = ("containerd", "runc", "ctr")


@pytest.mark.timeout(90)
def test_quick_benchmark_run_exits_0_and_writes_valid_json(tmp_path: Path) -> None:
    # A skip on a developer's machine without them; a failure in CI, which provisions them.
    if os.geteuid() != 0:
        missing("containers need root")
    if absent := [tool for tool in TOOLS if shutil.which(tool) is None]:
        missing(f"the benchmark needs {', '.join(absent)} on PATH")
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick"
    benchmarks = results["benchmarks"]
    for name in (
        "lifecycle",
        "pause_resume",
        "throughput",
        "client_cpu",
        "grpc_calls",
        "event_pipeline",
        "memory",
        "import",
    ):
        assert name in benchmarks, name
    assert benchmarks["lifecycle"]["systems"]["ours"]["n"] == results["options"]["iterations"]
    assert results["targets"]
    assert "notes" not in results, results.get("notes")
