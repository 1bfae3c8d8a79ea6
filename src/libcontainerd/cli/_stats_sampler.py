"""Containers' resource use as ``lcd stats`` shows it, one record per container and sample.

Why it exists: containerd reports cumulative CPU time, not a rate; CPU % needs
the previous sample of the same container (the time used over the time
between the two, as ``docker stats`` computes it), and a container that comes
or goes between two samples must neither fail the command nor show a stale
rate. The records are what ``lcd stats --json`` prints.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from ..client import AsyncClient
from ..errors import FailedPrecondition, NotFound
from ..types import Stats, Status
from ._output import iso

__all__ = ["StatsSampler"]

_WITH_METRICS = (Status.RUNNING, Status.PAUSED, Status.PAUSING)


class StatsSampler:
    """Samples containers' metrics, each compared with the previous sample of the same container."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._previous: dict[str, tuple[Stats, float]] = {}

    async def targets(self, container_ids: Sequence[str]) -> list[str]:
        """The given ids, or without any, every container with metrics now (running or paused)."""
        if container_ids:
            return list(container_ids)
        listing = await self._client.list_containers()
        return [info.id for info in listing if info.status in _WITH_METRICS]

    async def sample(self, container_ids: Sequence[str], *, named: bool) -> list[dict[str, Any]]:
        """One record per container; NotFound for a named container that does not exist.

        A named container without metrics (no task, or stopped) gets a record
        of nulls; one found by listing that has gone since is left out.
        """
        records = await asyncio.gather(*(self._record(cid, named) for cid in container_ids))
        return [record for record in records if record is not None]

    async def _record(self, container_id: str, named: bool) -> dict[str, Any] | None:
        try:
            sample = await self._client.stats(container_id)
        except (NotFound, FailedPrecondition) as error:
            self._previous.pop(container_id, None)
            if named and isinstance(error, NotFound) and "no such container" in str(error):
                raise NotFound(f"no such container: {container_id!r}") from None
            return _stats_record(container_id, None, None) if named else None
        now = time.monotonic()
        cpu_percent = None
        previous = self._previous.get(container_id)
        if previous is not None:
            before, before_at = previous
            elapsed = (sample.read - before.read).total_seconds()
            if elapsed <= 0:  # a runtime without read times: our own clock
                elapsed = now - before_at
            if elapsed > 0:
                used = max(0, sample.cpu_usage_ns - before.cpu_usage_ns)
                cpu_percent = used / (elapsed * 1e9) * 100
        self._previous[container_id] = (sample, now)
        return _stats_record(container_id, sample, cpu_percent)


def _stats_record(
    container_id: str, sample: Stats | None, cpu_percent: float | None
) -> dict[str, Any]:
    if sample is None:
        return {"id": container_id, "read": None, "cpu_percent": None} | dict.fromkeys(
            (
                "cpu_usage_ns",
                "memory_usage_bytes",
                "memory_limit_bytes",
                "memory_percent",
                "pids_current",
                "pids_limit",
                "blkio_read_bytes",
                "blkio_write_bytes",
                "cgroup_version",
            )
        )
    limit = sample.memory_limit_bytes
    return {
        "id": container_id,
        "read": iso(sample.read),
        "cpu_percent": None if cpu_percent is None else round(cpu_percent, 2),
        "cpu_usage_ns": sample.cpu_usage_ns,
        "memory_usage_bytes": sample.memory_usage_bytes,
        "memory_limit_bytes": limit,
        "memory_percent": round(sample.memory_usage_bytes / limit * 100, 2) if limit else None,
        "pids_current": sample.pids_current,
        "pids_limit": sample.pids_limit,
        "blkio_read_bytes": sample.blkio_read_bytes,
        "blkio_write_bytes": sample.blkio_write_bytes,
        "cgroup_version": sample.cgroup_version,
    }
