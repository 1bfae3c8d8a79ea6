"""The contract's enums carry exactly the strings of Docker's libcontainerd."""

import dataclasses

import pytest

from libcontainerd.types import INIT_PROCESS_ID, EventInfo, EventType, Status


def test_event_types_have_the_contract_strings() -> None:
    assert [e.value for e in EventType] == [
        "unknown",
        "exit",
        "oom",
        "create",
        "start",
        "exec-added",
        "exec-started",
        "paused",
        "resumed",
    ]
    member: str = EventType.EXEC_ADDED  # a str enum: its members are strings
    assert member == "exec-added"
    assert str(EventType.EXEC_STARTED) == "exec-started"


def test_statuses_have_the_contract_strings() -> None:
    assert {s.value for s in Status} == {
        "running",
        "created",
        "stopped",
        "paused",
        "pausing",
        "unknown",
    }
    assert str(Status.PAUSING) == "pausing"


def test_init_process_id_is_init() -> None:
    assert INIT_PROCESS_ID == "init"


def test_event_info_is_frozen_with_the_contract_fields() -> None:
    info = EventInfo(container_id="c", process_id="c", pid=3, exit_code=1)
    assert [f.name for f in dataclasses.fields(info)] == [
        "container_id",
        "process_id",
        "pid",
        "exit_code",
        "exited_at",
        "oom_killed",
        "error",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.pid = 4  # type: ignore[misc]
