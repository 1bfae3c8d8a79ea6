"""What /proc says about a host process: parent, state, user, start time, CPU time, command.

Used by the ``lcd`` command to show processes (``lcd top``) and uptimes
(``lcd ps``, ``lcd daemon status``), which containerd reports neither; by
the :class:`Supervisor` to tell its containerd from a process that reuses its
pid; and by the event stream to find a container's OOM count on this host
(:func:`oom_count_file`). ``/proc/<pid>/stat`` is parsed in one place,
:func:`parse_stat`.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "ProcessInfo",
    "ProcessStat",
    "oom_count_file",
    "parse_stat",
    "process_alive",
    "process_info",
    "process_stat",
    "read_pid_file",
]

_PID = re.compile(r"[0-9]+")
_CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class ProcessStat:
    """The fields of ``/proc/<pid>/stat`` this library reads; times in clock ticks.

    ``start_ticks`` (since boot) tells a process from a later one that reuses its pid.
    """

    name: str
    state: str
    ppid: int
    user_ticks: int
    system_ticks: int
    start_ticks: int

    @property
    def exited(self) -> bool:
        """True once the process has exited: a zombie not yet reaped, or one being torn down."""
        return self.state in ("Z", "X")


def parse_stat(text: str) -> ProcessStat | None:
    """The fields of a ``/proc/<pid>/stat`` line, or None if it is cut short or malformed.

    The command name sits in parentheses and may itself hold spaces and
    parentheses, so it runs from the first ``(`` to the last ``)``.
    """
    opening, closing = text.find("("), text.rfind(")")
    if opening < 0 or closing < opening:
        return None
    # The fields after the name: state is the 3rd field of the line, ppid the
    # 4th, utime and stime the 14th and 15th, starttime the 22nd.
    fields = text[closing + 1 :].split()
    if len(fields) < 20:
        return None
    try:
        return ProcessStat(
            name=text[opening + 1 : closing],
            state=fields[0],
            ppid=int(fields[1]),
            user_ticks=int(fields[11]),
            system_ticks=int(fields[12]),
            start_ticks=int(fields[19]),
        )
    except ValueError:
        return None


def process_stat(pid: int) -> ProcessStat | None:
    """``/proc/<pid>/stat`` parsed, or None when there is no such process (or it is hidden)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return parse_stat(text)


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
        stat = parse_stat((base / "stat").read_text())
        status = (base / "status").read_text()
        raw_argv = (base / "cmdline").read_bytes()
        boot = _boot_time()
    except OSError:
        return None
    if stat is None:
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
        ppid=stat.ppid,
        state=stat.state,
        uid=uid,
        started_at=boot + timedelta(seconds=stat.start_ticks / ticks),
        cpu_seconds=(stat.user_ticks + stat.system_ticks) / ticks,
        command=" ".join(argv) if argv else f"[{stat.name}]",
        argv=argv,
    )


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    stat = process_stat(pid)
    return stat is not None and not stat.exited


def read_pid_file(path: str) -> int | None:
    """The positive pid a pid file holds, or None (missing, unreadable, or not a pid).

    A pid is ASCII digits, with white space around it allowed: no sign, no
    underscores, no other script's digits (all of which ``int()`` accepts).
    """
    try:
        text = Path(path).read_text(errors="replace")[:32].strip()
    except OSError:
        return None
    if _PID.fullmatch(text) is None:
        return None
    pid = int(text)
    return pid if pid > 0 else None


def oom_count_file(pid: int, container_id: str) -> Path | None:
    """The file of the memory cgroup of ``pid`` that counts its OOM kills, or None.

    cgroup v1: ``memory.oom_control`` of the memory hierarchy; v2:
    ``memory.events`` (each has an ``oom_kill`` line). Only a cgroup whose
    last component names ``container_id`` is taken (containerd's default path
    ends in the id, systemd's scope names it), so a pid this process sees in
    another pid namespace than the runtime's, or a cgroup tree mounted
    elsewhere, gives None, and the caller asks containerd instead.
    """
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidate = None
    for line in lines:
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):  # v1 (or hybrid): the memory hierarchy
            candidate = _CGROUP_ROOT / "memory" / path.lstrip("/") / "memory.oom_control"
            break
        if controllers == "":  # v2's unified hierarchy, unless a v1 memory line follows
            candidate = _CGROUP_ROOT / path.lstrip("/") / "memory.events"
    if candidate is None:
        return None
    name = candidate.parent.name
    if name != container_id and not name.endswith(f"-{container_id}.scope"):
        return None
    return candidate if candidate.is_file() else None
