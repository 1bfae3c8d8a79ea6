"""Where the client's CPU goes, native frames included: ``python -m bench.native_profile``.

    .venv/bin/python -m bench.native_profile [--seconds S]

``client_cpu`` counts the CPU of each step and cProfile (``bench/run
--profile``) sees Python functions only; neither says how much of a call's
cost is this library's own code and how much the gRPC machinery under it.
This runs lifecycles of /bin/true (create, start, wait, delete_task, delete)
for ``S`` seconds and meanwhile (1) reads every thread's CPU time from /proc,
so the event-loop thread is told apart from gRPC's own threads, and (2) has
py-spy sample the loop thread with native frames (py-spy is fetched into
``.cache/bench/tools`` on first use; the library does not depend on it). Each
sample of the loop thread is put down to the code it was in: native gRPC
(the Cython layer and the C core under it), a system call, or the Python
code of this library, of grpc.aio, of asyncio, of protobuf, else other; a
sample waiting in the event loop's epoll_wait is idle and left out (py-spy
cannot tell it from a busy one). py-spy stops the process at every sample,
which inflates its CPU several times over: the per-thread figures come from
a first half run without it, and the shares of samples overstate Python
code against native code (``bench.experiments``' ``bare_grpc_lifecycle_cpu``
says what the library itself adds).
Starts its own containerd under /tmp and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from libcontainerd import AsyncClient, EventInfo, EventType, Supervisor, oci, rootfs

from .inprocess import lifecycle as library_lifecycle
from .runner import remove_cgroup_parents, remove_workdir

NAMESPACE = "bench-native"
TOOLS = Path(__file__).resolve().parent.parent / ".cache" / "bench" / "tools"
PY_SPY = TOOLS / "bin" / "py-spy"
_OWNERS = (
    ("libcontainerd/", "libcontainerd (Python)"),
    ("grpc/", "grpc.aio (Python)"),
    ("asyncio/", "asyncio (Python)"),
    ("google/protobuf/", "protobuf (Python)"),
)
_SYSCALLS = frozenset({"read", "write", "recvmsg", "sendmsg", "syscall", "__poll"})
# py-spy cannot tell a thread blocked in the event loop's epoll_wait from a busy one.
_IDLE = frozenset({"epoll_wait", "epoll_pwait"})


class _NoOpBackend:
    async def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
        return None


def _py_spy() -> Path:
    if not PY_SPY.exists():
        print(f"bench: installing py-spy into {TOOLS} (pip)", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(TOOLS), "py-spy"],
            check=True,
        )
    return PY_SPY


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user+sys) of each thread of this process, by ``name/tid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            text = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def _is_python(frame: str) -> bool:
    return ".py:" in frame


def classify(stack: list[str]) -> str:
    """The code a sample of the loop thread was in (``stack`` root first)."""
    for frame in reversed(stack):
        if _is_python(frame):
            location = frame[frame.rindex("(") + 1 :]
            for marker, owner in _OWNERS:
                if marker in location:
                    return owner
            return "other Python"
        if "cygrpc" in frame or "libgrpc" in frame:
            return "grpc native (Cython, C core)"
        function = frame.split(" ", 1)[0]
        if function in _IDLE:
            return "idle"
        if function in _SYSCALLS:
            return "system calls"
    return "other"


def summarise(raw: str, loop_tid: int) -> dict[str, Any]:
    """Shares of the loop thread's samples by :func:`classify`, from py-spy's raw output."""
    owners: Counter[str] = Counter()
    for line in raw.splitlines():
        head, _, count = line.rpartition(" ")
        if not head.startswith(f"thread ({loop_tid}):") or not count.isdigit():
            continue
        owners[classify(head.split(";")[1:])] += int(count)
    idle = owners.pop("idle", 0)
    total = sum(owners.values()) or 1
    return {
        "samples": sum(owners.values()),
        "idle_samples_left_out": idle,
        "share": {owner: round(n / total, 3) for owner, n in owners.most_common()},
    }


async def measure(seconds: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lcdnat-", dir="/tmp"))
    supervisor = Supervisor(workdir / "s", workdir / "r")
    spy = _py_spy()
    try:
        root = rootfs.busybox(workdir / "rootfs")
        await supervisor.start()
        async with AsyncClient(
            supervisor.address, namespace=NAMESPACE, backend=_NoOpBackend()
        ) as client:
            lifecycle = functools.partial(
                library_lifecycle, client, spec=oci.default_spec(["/bin/true"], root)
            )

            for warm in range(5):
                await lifecycle(f"warm-{warm}")
            count = 0

            async def lifecycles_for(duration: float) -> int:
                nonlocal count
                done, deadline = 0, time.monotonic() + duration
                while time.monotonic() < deadline:
                    await lifecycle(f"n-{count}")
                    count, done = count + 1, done + 1
                return done

            # Phase 1, nothing watching: CPU per thread.
            before, cpu = _thread_cpu(), time.process_time()
            measured = await lifecycles_for(seconds / 2)
            used, after = time.process_time() - cpu, _thread_cpu()
            # Phase 2: py-spy samples (it stops the process at each sample, so
            # its CPU figures would not hold; only the shares of samples count).
            raw_path = workdir / "py-spy.txt"
            sampler = await asyncio.create_subprocess_exec(
                str(spy),
                "record",
                "--pid",
                str(os.getpid()),
                "--native",
                "--threads",
                "--rate",
                "250",
                "--duration",
                str(max(1, int(seconds / 2))),
                "--format",
                "raw",
                "--output",
                str(raw_path),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            while sampler.returncode is None:
                await lifecycle(f"n-{count}")
                count += 1
            await sampler.wait()
        threads = {
            name: round((after[name] - before.get(name, 0.0)) / measured * 1e6)
            for name in after
            if after[name] > before.get(name, 0.0)
        }
        loop_name = next(name for name in after if name.endswith(f"/{os.getpid()}"))
        return {
            "lifecycles": measured,
            "cpu_us_per_lifecycle": round(used / measured * 1e6),
            "thread_cpu_us_per_lifecycle": dict(sorted(threads.items(), key=lambda i: -i[1])),
            "loop_thread": loop_name,
            "loop_thread_samples": summarise(
                raw_path.read_text() if raw_path.exists() else "", os.getpid()
            ),
        }
    finally:
        await supervisor.stop()
        remove_workdir(workdir)
        remove_cgroup_parents((NAMESPACE,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    options = parser.parse_args(argv)
    if importlib.util.find_spec("grpc") is None:
        print("bench: grpc is not installed", file=sys.stderr)
        return 1
    print(json.dumps(asyncio.run(measure(options.seconds)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
