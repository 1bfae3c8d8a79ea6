"""The benchmark runner: every system side by side, in one run, round-robin per iteration.

It starts a private containerd (libcontainerd's Supervisor, in a fresh folder
under /tmp), runs each benchmark with the systems interleaved so that drift
hits all alike, prints medians with their spread and the ratio of ours to
each anchor, writes everything as JSON, and stops and removes all it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from libcontainerd import Supervisor, rootfs

from . import images, provision
from .inprocess import import_times
from .measure import format_seconds, ratio, ratio_interval, rotate, summarize
from .systems import (
    Ctr,
    DockerDaemon,
    DockerPy,
    Env,
    GoClient,
    Ours,
    RawGrpc,
    Runc,
    System,
    Unsupported,
)

DEFAULT_JSON = provision.CACHE / "results.json"

# name -> (what it does, method of System)
LATENCY_BENCHMARKS: dict[str, tuple[str, str]] = {
    "lifecycle": ("create, start, wait for exit, delete of /bin/true", "lifecycle"),
    "exec": ("exec /bin/true in a running container and wait for it", "exec"),
    "pause_resume": ("pause then resume a running container", "pause_resume"),
    "stats": ("one-shot metrics of a running container", "stats"),
    "version": ("containerd's version (docker-py: dockerd's)", "version"),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Run:
    """One benchmark run: its options, its systems and what it measured."""

    def __init__(self, options: argparse.Namespace, env: Env) -> None:
        self.options = options
        self.env = env
        self.systems: list[System] = []
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []

    def system(self, name: str) -> System | None:
        return next((system for system in self.systems if system.name == name), None)

    # -- latency: round-robin per iteration ------------------------------------------

    async def latency(
        self, name: str, systems: list[System], iterations: int, warmup: int
    ) -> dict[str, Any]:
        description, method = LATENCY_BENCHMARKS.get(name, (name, name))
        samples: dict[str, list[float]] = {}
        rows: list[dict[str, float]] = []  # one per measured iteration, for paired intervals
        skipped: dict[str, str] = {}
        active = list(systems)
        for iteration in range(warmup + iterations):
            row: dict[str, float] = {}
            if iteration >= warmup:
                rows.append(row)
            for system in rotate(active, iteration):
                if system.name in skipped:
                    continue
                action: Callable[[], Awaitable[float]] = getattr(system, method)
                try:
                    elapsed = await action()
                except Unsupported as reason:
                    skipped[system.name] = str(reason)
                    continue
                except Exception as error:  # a broken anchor is reported, not fatal
                    skipped[system.name] = f"failed: {error}"
                    log(f"bench: {name} on {system.label} failed: {error}")
                    continue
                if iteration >= warmup:
                    samples.setdefault(system.name, []).append(elapsed)
                    row[system.name] = elapsed
        order = [system.name for system in systems]
        result: dict[str, Any] = {
            "description": description,
            "unit": "seconds",
            "systems": {name: summarize(samples[name]) for name in order if name in samples},
            "skipped": skipped,
        }
        result["ratios"] = self._ratios(result["systems"], "median")
        result["ratio_intervals_90"] = {
            name: ratio_interval(
                [(row["ours"], row[name]) for row in rows if {"ours", name} <= set(row)]
            )
            for name in result["systems"]
            if name != "ours"
        }
        return result

    @staticmethod
    def _ratios(systems: dict[str, Any], key: str, ours: str = "ours") -> dict[str, float | None]:
        mine = systems.get(ours, {}).get(key)
        return {
            name: ratio(mine, summary.get(key)) for name, summary in systems.items() if name != ours
        }

    # -- throughput --------------------------------------------------------------------

    async def throughput(
        self, systems: list[System], count: int, concurrencies: list[int], rounds: int = 1
    ) -> dict[str, Any]:
        """``count`` lifecycles per system and level, ``rounds`` times, levels and systems
        interleaved; the median round's rate counts."""
        runs: dict[int, dict[str, list[tuple[float, list[float]]]]] = {
            level: {} for level in concurrencies
        }
        skipped: dict[str, str] = {}
        turn = 0
        for _ in range(rounds):
            for concurrency in concurrencies:
                for system in rotate(systems, turn):
                    if system.name in skipped:
                        continue
                    try:
                        wall, latencies = await system.throughput(count, concurrency)
                    except Unsupported as reason:
                        skipped[system.name] = str(reason)
                        continue
                    except Exception as error:
                        skipped[system.name] = f"failed: {error}"
                        log(f"bench: throughput on {system.label} failed: {error}")
                        continue
                    runs[concurrency].setdefault(system.name, []).append((wall, latencies))
                turn += 1
        levels: dict[str, Any] = {}
        order = [system.name for system in systems]
        for concurrency, by_system in runs.items():
            rates: dict[str, Any] = {}
            for name in order:
                if name not in by_system:
                    continue
                per_second = [count / wall for wall, _ in by_system[name]]
                rates[name] = {
                    "per_second": statistics.median(per_second),
                    "rounds": per_second,
                    "latency": summarize([x for _, lat in by_system[name] for x in lat]),
                }
            levels[str(concurrency)] = {
                "systems": rates,
                "ratios": self._ratios(rates, "per_second"),
            }
        best: dict[str, float] = {}
        for level in levels.values():
            for name, rate in level["systems"].items():
                best[name] = max(best.get(name, 0.0), rate["per_second"])
        return {
            "description": (
                f"{count} lifecycles of /bin/true at each concurrency, median of {rounds}"
                " interleaved round(s)"
            ),
            "unit": "lifecycles per second",
            "concurrency": levels,
            "best": best,
            "best_ratios": {
                name: ratio(best.get("ours"), value)
                for name, value in best.items()
                if name != "ours"
            },
            "skipped": skipped,
        }

    # -- client CPU ----------------------------------------------------------------------

    async def cpu(self, systems: list[System], count: int) -> dict[str, Any]:
        per_lifecycle: dict[str, float] = {}
        skipped: dict[str, str] = {}
        for system in systems:
            try:
                per_lifecycle[system.name] = await system.cpu_per_lifecycle(count)
            except Unsupported as reason:
                skipped[system.name] = str(reason)
            except Exception as error:
                skipped[system.name] = f"failed: {error}"
        return {
            "description": (
                f"user+sys CPU seconds per lifecycle, over {count} sequential lifecycles:"
                " ours, Go and docker-py their own process; ctr and runc the command's"
                " process tree"
            ),
            "unit": "seconds",
            "systems": per_lifecycle,
            "ratios": {
                name: ratio(per_lifecycle.get("ours"), value)
                for name, value in per_lifecycle.items()
                if name != "ours"
            },
            "skipped": skipped,
        }


# -- phases that run in other processes ---------------------------------------------------


def _python_module(*args: str, timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=provision.REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def profile_lifecycles(ours: Ours, count: int, path: Path) -> dict[str, Any]:
    """cProfile of ``count`` lifecycles of ours on the event loop's thread (where our code runs)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        await ours.lifecycle()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    path.write_text(text.getvalue())
    top = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: -item[1][2],
    )[:15]:
        top.append(
            {
                "function": f"{filename.split('site-packages/')[-1].split('/src/')[-1]}:{line}"
                f"({function})",
                "calls_per_lifecycle": calls / count,
                "tottime_per_lifecycle": tottime / count,
                "cumtime_per_lifecycle": cumtime / count,
            }
        )
    return {"lifecycles": count, "report": str(path), "top_by_own_time": top}


# -- targets -----------------------------------------------------------------------------


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    bench = results.get("benchmarks", {})

    def interval(name: str, anchor: str) -> Any:
        return _get(bench, name, "ratio_intervals_90", anchor)

    checks: list[tuple[str, Any, str, float]] = [
        ("lifecycle vs Go", _get(bench, "lifecycle", "ratios", "go"), "<=", 1.0),
        ("lifecycle vs ctr", _get(bench, "lifecycle", "ratios", "ctr"), "<=", 0.8),
        ("lifecycle vs docker-py", _get(bench, "lifecycle", "ratios", "docker"), "<=", 0.3),
        ("exec vs Go", _get(bench, "exec", "ratios", "go"), "<=", 1.0),
        ("pause+resume vs Go", _get(bench, "pause_resume", "ratios", "go"), "<=", 1.1),
        ("stats vs Go", _get(bench, "stats", "ratios", "go"), "<=", 1.5),
        ("stats vs docker-py", _get(bench, "stats", "ratios", "docker"), "<=", 0.01),
        (
            "throughput at concurrency 4 vs Go",
            _get(bench, "throughput", "concurrency", "4", "ratios", "go"),
            ">=",
            1.0,
        ),
        (
            "throughput at best concurrency vs Go",
            _get(bench, "throughput", "best_ratios", "go"),
            ">=",
            1.3,
        ),
        ("client CPU per lifecycle vs Go", _get(bench, "client_cpu", "ratios", "go"), "<=", 1.0),
        ("version() vs raw grpcio call", _get(bench, "version_vs_raw", "ratio"), "<=", 1.2),
        (
            "event pipeline, events/s on one core (async backend)",
            _get(bench, "event_pipeline", "async_backend", "events_per_second"),
            ">=",
            50_000,
        ),
        (
            "event pipeline, events/s on one core (plain backend)",
            _get(bench, "event_pipeline", "plain_backend", "events_per_second"),
            ">=",
            50_000,
        ),
        (
            "client memory per tracked container, KiB",
            _kib(_get(bench, "memory", "traced_bytes_per_container")),
            "<=",
            20,
        ),
        ("import libcontainerd vs import grpc", _get(bench, "import", "ratio"), "<=", 1.5),
    ]
    calls_ours = _get(bench, "grpc_calls", "per_operation", "ours", "lifecycle")
    calls_go = _get(bench, "grpc_calls", "per_operation", "go", "lifecycle")
    intervals = {
        "lifecycle vs Go": interval("lifecycle", "go"),
        "lifecycle vs ctr": interval("lifecycle", "ctr"),
        "lifecycle vs docker-py": interval("lifecycle", "docker"),
        "exec vs Go": interval("exec", "go"),
        "pause+resume vs Go": interval("pause_resume", "go"),
        "stats vs Go": interval("stats", "go"),
        "stats vs docker-py": interval("stats", "docker"),
    }
    targets = []
    for name, value, op, limit in checks:
        target: dict[str, Any] = {
            "target": name,
            "value": value,
            "rule": f"{op} {limit:g}",
            "met": None if value is None else (value <= limit if op == "<=" else value >= limit),
        }
        bounds = intervals.get(name)
        if bounds is not None and value is not None:
            low, high = bounds
            target["interval_90"] = [low, high]
            # Settled when the whole interval lies on one side of the limit.
            target["settled"] = (
                high <= limit or low > limit if op == "<=" else low >= limit or high < limit
            )
        targets.append(target)
    targets.append(
        {
            "target": "gRPC calls per lifecycle, fewer than the Go client's",
            "value": calls_ours,
            "rule": f"< {calls_go if calls_go is not None else 12}",
            "met": None if calls_ours is None else calls_ours < (calls_go or 12),
        }
    )
    return targets


def _kib(value: float | None) -> float | None:
    return None if value is None else value / 1024


# -- printing ------------------------------------------------------------------------------


def print_report(results: dict[str, Any], labels: dict[str, str]) -> None:
    out = sys.stdout
    machine = results["machine"]
    print(
        f"\nlibcontainerd benchmarks — {machine['cpus']} CPUs, containerd"
        f" {machine['containerd']}, runc {machine['runc']}, {results['mode']} mode",
        file=out,
    )
    bench = results["benchmarks"]
    for name in LATENCY_BENCHMARKS:
        if name not in bench:
            continue
        result = bench[name]
        print(f"\n{name}: {result['description']}", file=out)
        print(
            f"  {'system':<26}{'median':>10}{'p25-p75':>22}{'n':>5}{'ours/x':>9}"
            f"  {'90% interval':<12}",
            file=out,
        )
        for system, summary in result["systems"].items():
            spread = f"{format_seconds(summary['p25'])}-{format_seconds(summary['p75'])}"
            share = result["ratios"].get(system)
            shown = "" if system == "ours" else (f"{share:.2f}" if share else "-")
            bounds = result.get("ratio_intervals_90", {}).get(system)
            interval = f"  {bounds[0]:.2f}-{bounds[1]:.2f}" if bounds else ""
            print(
                f"  {labels.get(system, system):<26}{format_seconds(summary['median']):>10}"
                f"{spread:>22}{summary['n']:>5}{shown:>9}{interval}",
                file=out,
            )
        for system, reason in result["skipped"].items():
            print(f"  {labels.get(system, system):<26}skipped: {reason}", file=out)
    if "version_vs_raw" in bench:
        raw = bench["version_vs_raw"]
        print(
            f"\nversion() vs a raw grpcio call on an open channel: "
            f"{format_seconds(raw['ours'])} vs {format_seconds(raw['raw'])}"
            f" = {raw['ratio']:.2f}x",
            file=out,
        )
    if "throughput" in bench:
        result = bench["throughput"]
        print(f"\nthroughput: {result['description']} (lifecycles/s)", file=out)
        for level, data in result["concurrency"].items():
            row = ", ".join(
                f"{labels.get(name, name)} {rate['per_second']:.1f}"
                + ("" if name == "ours" else f" ({data['ratios'].get(name) or 0:.2f}x)")
                for name, rate in data["systems"].items()
            )
            print(f"  concurrency {level:>2}: {row}", file=out)
    if "client_cpu" in bench:
        result = bench["client_cpu"]
        row = ", ".join(
            f"{labels.get(name, name)} {format_seconds(value)}"
            for name, value in result["systems"].items()
        )
        print(f"\nclient CPU per lifecycle: {row}", file=out)
    if "grpc_calls" in bench:
        for system, ops in bench["grpc_calls"]["per_operation"].items():
            row = ", ".join(f"{op} {count}" for op, count in ops.items())
            print(f"gRPC calls, {labels.get(system, system)}: {row}", file=out)
    if "event_pipeline" in bench:
        events = bench["event_pipeline"]
        print(
            "\nevent pipeline on one core: "
            + ", ".join(
                f"{kind} {events[kind]['events_per_second']:,.0f}/s"
                for kind in ("decode_only", "async_backend", "plain_backend")
                if kind in events
            ),
            file=out,
        )
    if "memory" in bench:
        memory = bench["memory"]
        print(
            f"client memory per tracked container: "
            f"{memory['traced_bytes_per_container']:.0f} B traced,"
            f" {memory['rss_bytes_per_container']:.0f} B RSS",
            file=out,
        )
        if "traced_bytes_kept_per_finished_lifecycle" in memory:
            print(
                f"  kept per finished lifecycle: "
                f"{memory['traced_bytes_kept_per_finished_lifecycle']:.0f} B",
                file=out,
            )
    if "import" in bench:
        imports = bench["import"]
        print(
            f"import: libcontainerd {format_seconds(imports['median']['libcontainerd'])},"
            f" grpc {format_seconds(imports['median']['grpc'])} = {imports['ratio']:.2f}x",
            file=out,
        )
    if "images" in bench:
        print(images.report(bench["images"]), file=out)
    if "levers" in bench:
        print("\ncontainerd levers (lifecycle median; throughput):", file=out)
        levels = bench["levers"]["throughput"]["concurrency"]
        for name, summary in bench["levers"]["systems"].items():
            rates = "".join(
                f"{level['systems'][name]['per_second']:>8.1f}/s at {concurrency}"
                for concurrency, level in levels.items()
                if name in level["systems"]
            )
            print(
                f"  {labels.get(name, name):<26}{format_seconds(summary['median']):>10}{rates}",
                file=out,
            )
    print("\ntargets:", file=out)
    for target in results["targets"]:
        value = target["value"]
        shown = "-" if value is None else (f"{value:,.2f}" if isinstance(value, float) else value)
        state = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        if target.get("settled") is False:
            low, high = target["interval_90"]
            state += f" (within noise: 90% interval {low:.2f}-{high:.2f})"
        print(f"  {target['target']:<56}{shown!s:>12}  {target['rule']:<10}{state}", file=out)
    for note in results.get("notes", []):
        print(f"note: {note}", file=out)


# -- machine and clean-up ----------------------------------------------------------------------


def _version_of(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    words = done.stdout.split()
    return words[2] if len(words) > 2 else done.stdout.strip()


def machine() -> dict[str, Any]:
    cgroup = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[:3]
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), ""
        )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "containerd": _version_of(["containerd", "--version"]),
        "runc": _version_of(["runc", "--version"]),
        "cgroup": cgroup,
        "load_average_at_start": load,
    }


def remove_workdir(workdir: Path) -> None:
    """Unmount whatever is mounted below ``workdir`` (deepest first), then delete it."""
    inside = str(workdir) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4].replace("\\040", " ") for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(inside)), key=len, reverse=True):
        subprocess.run(["umount", point], check=False, capture_output=True)
    shutil.rmtree(workdir, ignore_errors=True)


# The cgroup parents the run's containers live under: /<namespace>/<id>, and our dockerd's.
# containerd and runc remove each container's cgroup but not these, so the runner does.
CGROUP_PARENTS = (
    "bench-lcd",
    "bench-lcd-g",
    "bench-go",
    "bench-go-g",
    "bench-go-l",
    "bench-ctr",
    "bench-img-lcd",
    "bench-img-go",
    "bench-runc",
    "bench-docker",
    "bench-mem",
    "bench-exp",
    "bench-exp-go",
    "bench-exp-idle",
    "bench-exp-probe",
    "bench-exp-stream_on",
    "bench-exp-stream_off",
    "bench-exp-bare",
    "bench-exp-grpc_defaults",
    "bench-exp-no_event_engine_client",
    "bench-exp-daemon",
    "bench-exp-split",
    "bench-exp-groups",
)


def remove_cgroup_parents(names: tuple[str, ...] = CGROUP_PARENTS) -> None:
    """Remove the run's empty cgroup parents in every hierarchy; one still in use stays."""
    for name in names:
        for parent in [*Path("/sys/fs/cgroup").glob(f"*/{name}"), Path("/sys/fs/cgroup") / name]:
            if not parent.is_dir():
                continue
            for child in sorted(parent.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                parent.rmdir()


def leftovers(workdir: Path) -> list[str]:
    """Processes whose command line still names the run's folder (there should be none)."""
    found = []
    marker = str(workdir).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read()
        except OSError:
            continue
        if marker in argv:
            shown = argv.replace(b"\0", b" ").decode(errors="replace")[:120]
            found.append(f"{entry}: {shown}")
    return found


# -- the run -----------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench", description="libcontainerd against its anchors, side by side, in one run."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long smoke run: tiny counts, no Go build, no docker",
    )
    parser.add_argument(
        "--with-docker",
        action="store_true",
        help="install docker.io and docker-py if needed, run a private dockerd,"
        " and add docker-py as an anchor",
    )
    parser.add_argument("--no-go", action="store_true", help="leave out the Go client anchor")
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where to write the results (default {DEFAULT_JSON})",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=30,
        help="measured iterations per latency benchmark (default 30)",
    )
    parser.add_argument("--warmup", type=int, default=5, help="warm-up iterations (default 5)")
    parser.add_argument(
        "--count", type=int, default=100, help="lifecycles per throughput measurement (default 100)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of each throughput measurement; the median counts (default 3)",
    )
    parser.add_argument(
        "--concurrency", default="1,4,16", help="throughput concurrency levels (default 1,4,16)"
    )
    parser.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="synthetic events for the event pipeline (default 100000)",
    )
    parser.add_argument(
        "--containers",
        type=int,
        default=1000,
        help="created containers for the memory benchmark (default 1000)",
    )
    parser.add_argument(
        "--no-levers",
        action="store_true",
        help="skip the containerd levers (shim grouping, one lease)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile ours (cProfile of lifecycles) into .cache/bench/",
    )
    options = parser.parse_args(argv)
    if options.quick:
        options.iterations, options.warmup, options.count, options.rounds = 3, 1, 4, 1
        options.concurrency = "1,4"
        options.events, options.containers = 5000, 20
        options.no_go, options.with_docker, options.no_levers = True, False, True
    options.concurrency_levels = [int(level) for level in options.concurrency.split(",")]
    return options


async def run(options: argparse.Namespace) -> dict[str, Any]:
    go_binary = None if options.no_go else provision.go_client()
    if options.with_docker:
        provision.docker()
    workdir = Path(tempfile.mkdtemp(prefix="lcdb-", dir="/tmp"))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if options.quick else "full",
        "machine": machine(),
        "options": {
            key: value
            for key, value in vars(options).items()
            if isinstance(value, int | str | bool | list)
        },
        "benchmarks": {},
    }
    bench = results["benchmarks"]
    supervisor = Supervisor(workdir / "s", workdir / "r")
    docker_daemon: DockerDaemon | None = None
    systems: list[System] = []
    labels: dict[str, str] = {}
    try:
        root = rootfs.busybox(workdir / "rootfs")
        await supervisor.start()
        env = Env(workdir=workdir, address=supervisor.address, rootfs=root, quick=options.quick)
        log(f"bench: containerd {supervisor.version} (pid {supervisor.pid}) in {workdir}")
        ours = Ours(env)
        systems = [ours]
        if go_binary is not None:
            systems.append(GoClient(env, go_binary))
        systems += [Ctr(env), Runc(env)]
        if options.with_docker:
            docker_daemon = DockerDaemon(env)
            docker_daemon.start()
            systems.append(DockerPy(env, docker_daemon))
        raw = RawGrpc(env)
        for system in [*systems, raw]:
            await system.start()
        labels = {system.name: system.label for system in [*systems, raw]}
        session = Run(options, env)

        for name in LATENCY_BENCHMARKS:
            log(f"bench: {name}")
            bench[name] = await session.latency(name, systems, options.iterations, options.warmup)

        log("bench: version() vs raw grpcio")
        pairs = await session.latency(
            "version", [ours, raw], options.iterations * 10, options.warmup
        )
        ours_median = pairs["systems"]["ours"]["median"]
        raw_median = pairs["systems"]["raw-grpc"]["median"]
        bench["version_vs_raw"] = {
            "ours": ours_median,
            "raw": raw_median,
            "ratio": ours_median / raw_median,
            "samples": options.iterations * 10,
        }

        log("bench: throughput")
        bench["throughput"] = await session.throughput(
            systems, options.count, options.concurrency_levels, options.rounds
        )
        log("bench: client CPU")
        bench["client_cpu"] = await session.cpu(systems, max(options.iterations, 3))

        log("bench: gRPC calls")
        calls = {"ours": await ours.count_calls()}
        for system in systems:
            if system.calls and system.name != "ours":
                calls[system.name] = system.calls
        bench["grpc_calls"] = {
            "by_method": calls,
            "per_operation": {
                name: {op: sum(methods.values()) for op, methods in ops.items()}
                for name, ops in calls.items()
            },
        }

        if not options.no_levers:
            log("bench: containerd levers")
            levers: list[System] = [Ours(env, namespace="bench-lcd-g", group="lcd-group")]
            if go_binary is not None:
                levers += [
                    GoClient(env, go_binary, namespace="bench-go-g", group="go-group"),
                    GoClient(env, go_binary, namespace="bench-go-l", lease=True),
                ]
            for system in levers:
                await system.start()
            systems += levers
            labels.update({system.name: system.label for system in levers})
            compared = [
                system
                for system in systems
                if system.name in ("ours", "ours-grouped", "go", "go-grouped", "go-lease")
            ]
            bench["levers"] = await session.latency(
                "lifecycle", compared, options.iterations, options.warmup
            )
            bench["levers"]["description"] = (
                "lifecycle with containerd's levers: runc v2 shim grouping (the spec annotation"
                " io.containerd.runc.v2.group on every container, a long-running one keeping"
                " the group's shim alive) and, for Go, one long-lived lease instead of one per"
                " container"
            )
            bench["levers"]["throughput"] = await session.throughput(
                compared, options.count, [4, max(options.concurrency_levels)], options.rounds
            )
            for system in levers:
                if system.calls:
                    bench["grpc_calls"]["by_method"][system.name] = system.calls

        if options.profile:
            log("bench: profile")
            bench["profile"] = await profile_lifecycles(
                ours, options.iterations, provision.CACHE / "profile-lifecycle.txt"
            )

        for system in systems:
            await system.close()
        await raw.close()
        systems = []

        log("bench: event pipeline")
        bench["event_pipeline"] = _python_module("bench.inprocess", "events", str(options.events))
        log("bench: client memory")
        bench["memory"] = _python_module(
            "bench.inprocess",
            "memory",
            supervisor.address,
            str(root),
            str(options.containers),
            str(0 if options.quick else 200),
        )
        log("bench: import time")
        imports = import_times(2 if options.quick else 15)
        imports["ratio"] = imports["median"]["libcontainerd"] / imports["median"]["grpc"]
        bench["import"] = imports
        if not options.quick:
            log("bench: images (Debian minbase: import vs ctr, lifecycle vs Go, import RSS)")
            bench["images"] = await images.run_all(
                env,
                go_binary,
                Path(shutil.which("ctr") or "ctr"),
                options.iterations,
                options.warmup,
                options.rounds,
            )
    finally:
        for system in systems:
            with contextlib.suppress(Exception):
                await system.close()
        if docker_daemon is not None:
            docker_daemon.stop()
        await supervisor.stop()
        remove_workdir(workdir)
        remove_cgroup_parents()
        left = leftovers(workdir)
        if left:
            results.setdefault("notes", []).append(f"processes left running: {left}")
    results["labels"] = labels
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["targets"] = evaluate_targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    if os.geteuid() != 0:
        log("bench: containers need root; run it as root")
        return 1
    started = time.monotonic()
    results = asyncio.run(run(options))
    results["seconds"] = time.monotonic() - started
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_report(results, results["labels"])
    print(f"\nresults: {options.json} ({results['seconds']:.0f} s)")
    return 0
