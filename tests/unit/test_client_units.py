"""Client logic that needs no daemon: addresses, statuses, options, timestamps, releases."""

import asyncio
import functools

import pytest
from google.protobuf import timestamp_pb2

from libcontainerd import _session, _tasks
from libcontainerd import client as client_module
from libcontainerd._api.containerd.api.types.task import task_pb2
from libcontainerd._execs import ExecTable
from libcontainerd._process_stdio import ProcessStdio
from libcontainerd._rpc import Connection
from libcontainerd._typeurl import to_datetime
from libcontainerd.client import AsyncClient, resolve_address
from libcontainerd.errors import InvalidArgument
from libcontainerd.types import EventInfo, EventType, Status


def test_every_wire_status_maps_to_the_contracts_six() -> None:
    wire = {value.number for value in task_pb2.Status.DESCRIPTOR.values}
    assert {_session.status_of(number) for number in wire} == set(Status)
    assert _session.status_of(task_pb2.PAUSING) is Status.PAUSING
    assert _session.status_of(max(wire) + 1) is Status.UNKNOWN


def test_address_prefers_argument_then_environment_then_embedded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONTAINERD_ADDRESS", raising=False)
    assert resolve_address(None) == client_module.DEFAULT_ADDRESS
    monkeypatch.setenv("CONTAINERD_ADDRESS", "unix:///run/other/containerd.sock")
    assert resolve_address(None) == "/run/other/containerd.sock"
    assert resolve_address("/run/mine.sock") == "/run/mine.sock"


def test_a_relative_address_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="absolute"):
        resolve_address("containerd.sock")


def test_runc_root_sits_beside_the_socket() -> None:
    assert AsyncClient("/run/x/containerd.sock").runc_root == "/run/x/runc"
    # For the system daemon that is exactly runc's default root.
    assert AsyncClient("/run/containerd/containerd.sock").runc_root == "/run/containerd/runc"


def test_an_invalid_namespace_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="namespace"):
        AsyncClient("/run/x.sock", namespace="a/b")


def test_go_zero_time_means_never() -> None:
    assert to_datetime(timestamp_pb2.Timestamp(seconds=-62135596800)) is None
    stamp = to_datetime(timestamp_pb2.Timestamp(seconds=1, nanos=500_000_000))
    assert stamp is not None
    assert stamp.isoformat() == "1970-01-01T00:00:01.500000+00:00"


def test_runtime_options_default_the_runc_root_and_refuse_unknown_names() -> None:
    options = _tasks.runc_options({"binary_name": "crun"}, "/run/x/runc")
    assert (options.root, options.binary_name) == ("/run/x/runc", "crun")
    # None means unset, as for every other option: not an empty root (runc's own default).
    assert _tasks.runc_options({"root": None}, "/run/x/runc").root == "/run/x/runc"
    assert _tasks.runc_options({"root": "/run/y"}, "/run/x/runc").root == "/run/y"
    with pytest.raises(InvalidArgument, match="rooot"):
        _tasks.runc_options({"rooot": "/x"}, "/run/x/runc")
    with pytest.raises(InvalidArgument, match="invalid runtime options"):
        _tasks.runc_options({"io_uid": "zero"}, "/run/x/runc")


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ([("binary_name", "runc")], "must be a dict of runc option names, not list"),
        ("binary_name=runc", "must be a dict of runc option names, not str"),
        ({1: "x", "binary_nmae": "runc"}, r"unknown runtime option\(s\) 'binary_nmae', 1"),
        ({"io_uid": 2**40}, "invalid runtime options"),
        # Found by the fuzz test: protobuf raised OverflowError for a bool given 2**63.
        ({"systemd_cgroup": 2**63}, "'systemd_cgroup' must be True or False"),
        ({"no_pivot_root": "yes"}, "'no_pivot_root' must be True or False, not 'yes'"),
        ({"no_new_keyring": 1}, "'no_new_keyring' must be True or False, not 1"),
    ],
)
def test_runtime_options_that_are_not_a_dict_of_names_are_refused(
    options: object, complaint: str
) -> None:
    # Not a TypeError from dict() or from sorting names of mixed types.
    with pytest.raises(InvalidArgument, match=complaint):
        _tasks.runc_options(options, "/run/runc")  # type: ignore[arg-type]


async def test_an_exit_releases_only_the_exec_it_was_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # An exec id reused before the earlier exec's exit event came: that late event must
    # not release (delete) the newer exec of the same id.
    session = _session.Session(Connection("/run/x/containerd.sock", "ns", None))
    execs = ExecTable(session, ProcessStdio(session, "/run/x/fifo"))
    released: list[tuple[str, str]] = []

    async def release(container_id: str, exec_id: str) -> None:
        released.append((container_id, exec_id))

    monkeypatch.setattr(execs, "release", release)
    exit_of = functools.partial(EventInfo, "c", "e", exit_code=0)
    execs._superseded.add(("c", "e", 10))  # released by exec() before its id was reused
    execs._own[("c", "e")] = 0  # the newer exec, whose Start has not answered yet
    execs.after_delivery("c", EventType.EXIT, exit_of(pid=10))
    execs._own[("c", "e")] = 20  # ... now it has
    execs.after_delivery("c", EventType.EXIT, exit_of(pid=11))  # some other exec's
    await asyncio.sleep(0)
    assert released == []
    assert execs.owned("c") == ["e"]
    assert execs._superseded == set()
    execs.after_delivery("c", EventType.EXIT, exit_of(pid=20))
    await session.settle()
    assert released == [("c", "e")]
    assert execs.owned("c") == []
