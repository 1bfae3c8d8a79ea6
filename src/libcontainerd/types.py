"""The contract, in Python names: what a client reports and what a backend receives.

These mirror Docker's libcontainerd types one for one, so code written
against that contract reads the same here.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Self, TypeAlias, runtime_checkable

from ._api.cgroups.stats.v1 import metrics_pb2 as cgroups_v1
from ._api.cgroups.v2.stats import metrics_pb2 as cgroups_v2

__all__ = [
    "INIT_PROCESS_ID",
    "Backend",
    "CgroupMetrics",
    "ContainerInfo",
    "EventInfo",
    "EventType",
    "ExitStatus",
    "ProcessSummary",
    "Stats",
    "Status",
    "Version",
]

INIT_PROCESS_ID = "init"
"""The process id that names a container's main process in per-process calls."""


class EventType(enum.StrEnum):
    """What happened to a task; the values are the contract's exact strings."""

    UNKNOWN = "unknown"
    EXIT = "exit"
    OOM = "oom"
    CREATE = "create"
    START = "start"
    EXEC_ADDED = "exec-added"
    EXEC_STARTED = "exec-started"
    PAUSED = "paused"
    RESUMED = "resumed"


class Status(enum.StrEnum):
    """A task's state as containerd reports it.

    ``PAUSING`` is the freezer's transition; ``UNKNOWN`` means containerd could
    not tell (for example, the shim is gone).
    """

    RUNNING = "running"
    CREATED = "created"
    STOPPED = "stopped"
    PAUSED = "paused"
    PAUSING = "pausing"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What a backend learns about one event.

    ``process_id`` is as containerd reports it: the container id for the
    init process, the exec id for an exec. ``exited_at`` is set on exits only.
    ``oom_killed`` on an exit: the kernel's OOM killer had killed a process of
    the container by then (its cgroup's count, :attr:`Stats.oom_kills`); on
    other events: a kill (or an ``oom`` event) was seen since its task began.
    """

    container_id: str
    process_id: str = ""
    pid: int = 0
    exit_code: int = 0
    exited_at: datetime | None = None
    oom_killed: bool = False
    error: str = ""


class ExitStatus(tuple[int, datetime | None]):
    """A process's exit as ``wait()`` and ``delete_task()`` give it: ``(exit_code, exited_at)``.

    A 2-tuple, so ``code, exited_at = await client.wait(...)`` unpacks it, and
    it compares equal to the plain tuple; ``oom_killed`` says whether the
    kernel's OOM killer had killed a process of the container by then (its
    cgroup's own count, see :attr:`Stats.oom_kills`).
    """

    oom_killed: bool

    def __new__(cls, exit_code: int, exited_at: datetime | None, oom_killed: bool = False) -> Self:
        status = super().__new__(cls, (exit_code, exited_at))
        status.oom_killed = oom_killed
        return status

    @property
    def exit_code(self) -> int:
        return self[0]

    @property
    def exited_at(self) -> datetime | None:
        return self[1]

    def __getnewargs__(self) -> tuple[int, datetime | None, bool]:
        return self[0], self[1], self.oom_killed

    def __repr__(self) -> str:
        return (
            f"ExitStatus(exit_code={self[0]!r}, exited_at={self[1]!r},"
            f" oom_killed={self.oom_killed!r})"
        )


@dataclass(frozen=True, slots=True)
class Version:
    """containerd's version and the revision it was built from."""

    version: str
    revision: str


@dataclass(frozen=True, slots=True)
class ProcessSummary:
    """One process of a container: its host pid and what containerd said about it."""

    pid: int
    info: dict[str, Any] = field(default_factory=dict)


CgroupMetrics: TypeAlias = cgroups_v1.Metrics | cgroups_v2.Metrics
"""The runtime's full metrics message: cgroup v1 (``io.containerd.cgroups.v1.Metrics``) or v2."""


@dataclass(frozen=True, slots=True)
class Stats:
    """One metrics sample of a container, and the common view of it.

    ``read`` is when containerd collected the sample. ``metrics`` is the whole
    decoded message, v1 or v2 as the host's cgroups are. The other attributes
    mean the same on both (see :mod:`libcontainerd.metrics` for where each
    comes from): counters are 0 when the runtime did not report them, and a
    limit is None when there is none.
    """

    read: datetime
    metrics: CgroupMetrics
    cpu_usage_ns: int
    """CPU time used by all the container's processes, in nanoseconds."""
    memory_usage_bytes: int
    """Memory in use minus inactive page cache, as ``docker stats`` shows it."""
    memory_limit_bytes: int | None
    pids_current: int
    pids_limit: int | None
    blkio_read_bytes: int
    """Bytes read from block devices, summed over devices."""
    blkio_write_bytes: int
    oom_kills: int = 0
    """Processes of the container the kernel's OOM killer killed (v1 ``memory.oom_control``
    ``oom_kill``, v2 ``memory.events`` ``oom_kill``): the ground truth behind ``oom_killed``."""

    def cpu_percent(self, previous: Stats) -> float | None:
        """CPU use since ``previous`` (an earlier sample), in % of one CPU, as ``docker stats``.

        CPU time used between the two samples over the time between them:
        100.0 is one CPU busy, 200.0 two. None when no time passed between them.
        """
        seconds = (self.read - previous.read).total_seconds()
        if seconds <= 0:
            return None
        return max(0, self.cpu_usage_ns - previous.cpu_usage_ns) / (seconds * 1e9) * 100

    @property
    def cgroup_version(self) -> int:
        """1 or 2: which kind of cgroup the sample came from."""
        return 2 if isinstance(self.metrics, cgroups_v2.Metrics) else 1


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container of a namespace, as :meth:`AsyncClient.list_containers` reports it.

    ``status`` and ``pid`` are None when the container has no task (created
    but never started, or its task was deleted); ``exit_code`` and
    ``exited_at`` are set once the task has stopped. ``created_at`` is
    containerd's own record of when the container was created. ``image`` is
    the image its root filesystem came from ("" for a root directory);
    ``command`` its spec's process arguments (what ``docker ps`` shows).
    """

    id: str
    status: Status | None = None
    pid: int | None = None
    exit_code: int | None = None
    exited_at: datetime | None = None
    created_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    image: str = ""
    command: tuple[str, ...] = ()


@runtime_checkable
class Backend(Protocol):
    """Receives every task event, in order per container.

    ``process_event`` may be a plain function or a coroutine function; what it
    raises is logged with the container id and never stops the stream.
    """

    def process_event(
        self, container_id: str, event: EventType, info: EventInfo
    ) -> Awaitable[None] | None: ...
