"""``lcd`` against ``ctr`` on one daemon: whole commands, wall time, ratios in one run.

    .venv/bin/python -m bench.cli_speed [--rounds N] [--json PATH]

Issue #18's goals: ``lcd run --rm --network none -- true`` <= 2.0x ``ctr run
--rm --rootfs DIR ID /bin/true`` and ``lcd ps`` <= 2.0x ``ctr containers ls``.
Each round runs the four commands once, in an order rotated per round, so
drift hits all alike; ratios are of medians, with a bootstrap interval over
the rounds' pairs. Floors for context: Python's start-up, and importing
grpc and asyncio (what any gRPC command in Python pays). lcd runs as
installed (``.venv/bin/lcd``) with byte-code caching on, as users have it
(the warm-up writes the caches); ctr is Debian's. Not timed in tests.

lcd is measured both ways: alone (``$LIBCONTAINERD_HELPER=off``: Python
starts and imports grpc and lcd for each command) and through a command
helper (``lcd helper start``, private to the run: each command is a fork of
a resident lcd, see ``libcontainerd.cli._helper``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from libcontainerd import Supervisor, rootfs

from .measure import format_seconds, ratio, ratio_interval, rotate, summarize
from .runner import remove_cgroup_parents, remove_workdir

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "bench-cli"
CTR_NAMESPACE = "bench-cli-ctr"
LCD = str(Path(sys.executable).with_name("lcd"))
# Each of lcd's commands (alone, and through a command helper) and its ctr anchor.
PAIRS = (
    ("lcd_run", "ctr_run"),
    ("lcd_run_helper", "ctr_run"),
    ("lcd_ps", "ctr_ls"),
    ("lcd_ps_helper", "ctr_ls"),
)


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:6]}... failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def measure(
    address: str, root: Path, workdir: Path, rounds: int, warmups: int = 3
) -> dict[str, Any]:
    """The four commands (and two floors), ``rounds`` times each, interleaved."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    helper_socket = str(workdir / "helper.sock")
    env |= {
        "LIBCONTAINERD_STATE_DIR": str(workdir / "state"),
        "LIBCONTAINERD_ROOT_DIR": str(workdir / "root"),
        "LIBCONTAINERD_HELPER": "off",
        "LIBCONTAINERD_HELPER_SOCKET": helper_socket,
    }
    helped = env | {"LIBCONTAINERD_HELPER": "on"}
    ctr = [shutil.which("ctr") or "ctr", "--address", address, "--namespace", CTR_NAMESPACE]
    lcd = [LCD, "--address", address, "--namespace", NAMESPACE]
    counter = iter(range(1 << 30))
    ctr_run = [*ctr, "run", "--rm", "--rootfs", str(root)]
    lcd_run = [*lcd, "run", "--rm", "--network", "none", "--", "true"]
    commands: dict[str, tuple[Callable[[], list[str]], dict[str, str]]] = {
        "ctr_run": (lambda: [*ctr_run, f"c{next(counter)}", "/bin/true"], env),
        "lcd_run": (lambda: lcd_run, env),
        "lcd_run_helper": (lambda: lcd_run, helped),
        "ctr_ls": (lambda: [*ctr, "containers", "ls"], env),
        "lcd_ps": (lambda: [*lcd, "ps"], env),
        "lcd_ps_helper": (lambda: [*lcd, "ps"], helped),
        "python_start": (lambda: [sys.executable, "-c", "pass"], env),
        "python_grpc_asyncio": (lambda: [sys.executable, "-c", "import grpc, asyncio"], env),
    }
    _timed([LCD, "helper", "start", "--socket", helper_socket], env)
    try:
        for make, environ in commands.values():  # warm-up: byte-code caches, busybox template
            for _ in range(warmups):
                _timed(make(), environ)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for index in range(rounds):
            for name in rotate(list(commands), index):
                make, environ = commands[name]
                samples[name].append(_timed(make(), environ))
        served = subprocess.run(
            [LCD, "helper", "status", "--json", "--socket", helper_socket],
            env=env,
            capture_output=True,
            check=True,
        )
    finally:
        _timed([LCD, "helper", "stop", "--socket", helper_socket], env)
    summary = {name: summarize(values) for name, values in samples.items()}
    results: dict[str, Any] = {
        "rounds": rounds,
        "seconds": summary,
        "helper_served": json.loads(served.stdout)["served"],
        "helper_warm": json.loads(served.stdout)["warm"],
    }
    for ours, anchor in PAIRS:
        pairs = list(zip(samples[ours], samples[anchor], strict=True))
        results[f"{ours}/{anchor}"] = {
            "ratio": ratio(summary[ours]["median"], summary[anchor]["median"]),
            "interval_90": ratio_interval(pairs),
            "goal": 2.0,
        }
    return results


def report(results: dict[str, Any]) -> str:
    lines = [f"lcd against ctr, {results['rounds']} rounds (median, p25-p75):"]
    for name, figures in results["seconds"].items():
        lines.append(
            f"  {name:22} {format_seconds(figures['median']):>9}"
            f"  ({format_seconds(figures['p25'])}-{format_seconds(figures['p75'])})"
        )
    lines.append(
        f"  (the helper served {results['helper_served']} commands,"
        f" {results['helper_warm']} of them in its warm worker)"
    )
    for ours, anchor in PAIRS:
        key = f"{ours}/{anchor}"
        entry = results[key]
        low, high = entry["interval_90"] or (float("nan"), float("nan"))
        lines.append(
            f"  {key:22} {entry['ratio']:.2f}x  [90%: {low:.2f}-{high:.2f}]"
            f"  goal <= {entry['goal']:.1f}x"
        )
    return "\n".join(lines)


def run(rounds: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lcdcli-", dir="/tmp"))
    supervisor = Supervisor(workdir / "s", workdir / "r")
    try:
        root = rootfs.busybox(workdir / "rootfs")
        supervisor.start_blocking()
        return measure(supervisor.address, root, workdir, rounds)
    finally:
        supervisor.stop_blocking()
        remove_workdir(workdir)
        remove_cgroup_parents((NAMESPACE, CTR_NAMESPACE))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.cli_speed", description=__doc__)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_CLI_ROUNDS", 30)))
    parser.add_argument("--json", type=Path, default=REPO / ".cache" / "bench" / "cli_speed.json")
    options = parser.parse_args(argv)
    results = run(options.rounds)
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
