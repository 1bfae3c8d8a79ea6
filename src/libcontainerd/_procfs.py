"""What /proc says about a host process: parent, state, user, start time, CPU time, command.

Used by the ``lcd`` command to show processes (``lcd top``) and uptimes
(``lcd ps``, ``lcd daemon status``); containerd reports neither.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["ProcessInfo", "process_alive", "process_info"]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One host process. ``uid`` is the effective user id; ``command`` its argv joined by spaces
    (``[name]`` when it has none: a zombie or a kernel thread)."""

    pid: int
    ppid: int
    state: str
    uid: int
    started_at: datetime
    cpu_seconds: float
    command: str
    argv: tuple[str, ...]


@functools.cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _boot_time() -> datetime:
    # Read each time: cheap, and suspend/resume can move it.
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), UTC)
    raise OSError("/proc/stat has no btime line")


def process_info(pid: int) -> ProcessInfo | None:
    """What /proc knows about ``pid``, or None when there is no such process (or it is hidden)."""
    base = Path(f"/proc/{pid}")
    try:
        stat = (base / "stat").read_text()
        status = (base / "status").read_text()
        raw_argv = (base / "cmdline").read_bytes()
        boot = _boot_time()
    except OSError:
        return None
    name = stat[stat.find("(") + 1 : stat.rfind(")")]
    # The fields after the parenthesised name: state is the 3rd field of the
    # line, ppid the 4th, utime and stime the 14th and 15th, starttime the 22nd.
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20:
        return None
    ticks = _clock_ticks()
    uid = 0
    for line in status.splitlines():
        if line.startswith("Uid:"):
            parts = line.split()
            uid = int(parts[2]) if len(parts) > 2 else int(parts[1])
            break
    argv = tuple(part.decode(errors="replace") for part in raw_argv.split(b"\0") if part)
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        state=fields[0],
        uid=uid,
        started_at=boot + timedelta(seconds=int(fields[19]) / ticks),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
        command=" ".join(argv) if argv else f"[{name}]",
        argv=argv,
    )


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    info = process_info(pid)
    return info is not None and info.state not in ("Z", "X")
