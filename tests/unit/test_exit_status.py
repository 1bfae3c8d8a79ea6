"""ExitStatus: the 2-tuple wait() and delete_task() always gave, with ``oom_killed`` beside it."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

from libcontainerd import ExitStatus, Stats
from libcontainerd._api.cgroups.stats.v1 import metrics_pb2 as cgroups_v1
from libcontainerd.metrics import from_v1

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_it_unpacks_and_compares_as_the_plain_tuple() -> None:
    status = ExitStatus(137, AT, oom_killed=True)
    code, exited_at = status
    assert (code, exited_at) == (137, AT)
    assert (status.exit_code, status.exited_at, status.oom_killed) == (137, AT, True)
    assert status == (137, AT)
    assert ExitStatus(0, None).oom_killed is False


def test_it_survives_pickling_and_says_what_it_holds() -> None:
    status = ExitStatus(137, AT, True)
    copy = pickle.loads(pickle.dumps(status))
    assert (copy, copy.oom_killed) == (status, True)
    assert repr(status).startswith("ExitStatus(exit_code=137, exited_at=")
    assert repr(status).endswith("oom_killed=True)")


def test_stats_count_oom_kills_and_give_cpu_use_between_two_samples() -> None:
    def sample(seconds: float, cpu_ns: int, kills: int = 0) -> Stats:
        metrics = cgroups_v1.Metrics(
            cpu=cgroups_v1.CPUStat(usage=cgroups_v1.CPUUsage(total=cpu_ns)),
            memory_oom_control=cgroups_v1.MemoryOomControl(oom_kill=kills),
        )
        return from_v1(AT + timedelta(seconds=seconds), metrics)

    first, second = sample(0, 1_000_000_000), sample(2, 4_000_000_000, kills=2)
    assert second.oom_kills == 2
    assert second.cpu_percent(first) == 150.0
    assert first.cpu_percent(first) is None
