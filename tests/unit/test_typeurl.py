"""containerd's Any payloads: bare type names and JSON documents, by hand."""

from google.protobuf import any_pb2

from libcontainerd import _typeurl
from libcontainerd._api.containerd.api.events import task_pb2 as events_pb2
from libcontainerd._api.containerd.runtime.v2.runc.options import oci_pb2


def test_pack_uses_the_bare_full_name_containerd_1_6_requires() -> None:
    packed = _typeurl.pack(oci_pb2.Options(root="/run/x/runc"))
    assert packed.type_url == "containerd.runc.v1.Options"
    assert oci_pb2.Options.FromString(packed.value).root == "/run/x/runc"


def test_unpack_accepts_bare_and_prefixed_urls() -> None:
    exit_event = events_pb2.TaskExit(container_id="c", id="c", pid=4, exit_status=3)
    value = exit_event.SerializeToString()
    for url in ("containerd.events.TaskExit", "type.googleapis.com/containerd.events.TaskExit"):
        decoded = _typeurl.unpack(any_pb2.Any(type_url=url, value=value), events_pb2.TaskExit)
        assert decoded == exit_event


def test_unpack_of_another_type_or_garbage_is_none() -> None:
    exit_bytes = events_pb2.TaskExit(exit_status=1).SerializeToString()
    other = any_pb2.Any(type_url="containerd.events.TaskOOM", value=exit_bytes)
    assert _typeurl.unpack(other, events_pb2.TaskExit) is None
    garbage = any_pb2.Any(type_url="containerd.events.TaskExit", value=b"\xff\xff\xff")
    assert _typeurl.unpack(garbage, events_pb2.TaskExit) is None


def test_json_documents_travel_under_the_oci_urls() -> None:
    packed = _typeurl.pack_json(_typeurl.OCI_SPEC, {"process": {"args": ["/bin/true"]}})
    assert packed.type_url == "types.containerd.io/opencontainers/runtime-spec/1/Spec"
    assert _typeurl.unpack_json(packed) == {"process": {"args": ["/bin/true"]}}
