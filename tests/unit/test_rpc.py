"""The method table: built from the service descriptors, checked against the declarations."""

from __future__ import annotations

import grpc.aio
import pytest

from libcontainerd import _rpc
from libcontainerd._api.containerd.api.services.content.v1 import content_pb2
from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
from libcontainerd.errors import InvalidArgument


@pytest.mark.parametrize(
    ("wire", "python"),
    [
        ("CloseIO", "close_io"),
        ("ListPids", "list_pids"),
        ("Get", "get"),
        ("ResizePty", "resize_pty"),
    ],
)
def test_method_names_follow_the_descriptor_in_snake_case(wire: str, python: str) -> None:
    assert _rpc.snake_case(wire) == python


async def test_every_declared_method_is_bound_with_its_path() -> None:
    channel = grpc.aio.insecure_channel("unix:///nonexistent/containerd.sock")  # never dialled
    try:
        methods = _rpc.Methods(channel)
        services = (
            methods.version,
            methods.containers,
            methods.tasks,
            methods.events,
            methods.content,
            methods.images,
            methods.leases,
            methods.snapshots,
            methods.diff,
        )
        for service in services:
            declared = {entry.name for entry in _rpc._entries(type(service))}
            assert declared, type(service).__name__
            assert declared <= set(vars(service))
        paths = {entry.path for entry in _rpc._entries(_rpc.Tasks)}
        assert "/containerd.services.tasks.v1.Tasks/CloseIO" in paths
        assert any(entry.streaming for entry in _rpc._entries(_rpc.Events))
    finally:
        await channel.close()


def test_a_declaration_with_the_wrong_messages_is_refused_when_the_table_is_built() -> None:
    class Wrong(_rpc.Service):
        descriptor = tasks_pb2.DESCRIPTOR.services_by_name["Tasks"]
        get: _rpc.Unary[tasks_pb2.StartRequest, tasks_pb2.GetResponse]

    with pytest.raises(TypeError, match=r"Wrong\.get is declared"):
        _rpc._entries(Wrong)


def test_content_write_is_declared_bidirectional_and_read_server_streaming() -> None:
    entries = {entry.name: entry for entry in _rpc._entries(_rpc.Content)}
    assert (entries["write"].client_streaming, entries["write"].streaming) == (True, True)
    assert (entries["read"].client_streaming, entries["read"].streaming) == (False, True)
    assert (entries["info"].client_streaming, entries["info"].streaming) == (False, False)


def test_a_declaration_of_the_wrong_kind_is_refused() -> None:
    class WrongKind(_rpc.Service):
        descriptor = content_pb2.DESCRIPTOR.services_by_name["Content"]
        write: _rpc.Stream[content_pb2.WriteContentRequest, content_pb2.WriteContentResponse]

    with pytest.raises(TypeError, match=r"WrongKind\.write is declared Stream"):
        _rpc._entries(WrongKind)


def test_a_declaration_of_a_method_the_service_lacks_is_refused() -> None:
    class Missing(_rpc.Service):
        descriptor = tasks_pb2.DESCRIPTOR.services_by_name["Tasks"]
        teleport: _rpc.Unary[tasks_pb2.GetRequest, tasks_pb2.GetResponse]

    with pytest.raises(TypeError, match="no method for 'teleport'"):
        _rpc._entries(Missing)


def test_a_relative_address_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="absolute"):
        _rpc.resolve_address("containerd.sock")
