"""containerd's ``google.protobuf.Any`` payloads, built and read by type URL by hand.

containerd 1.6 only accepts bare type names (``containerd.runc.v1.Options``),
while protobuf's ``Any.Pack`` always writes a ``type.googleapis.com/`` prefix
and ``Any.Unpack`` refuses names without a ``/``; so neither can be used.
The OCI documents travel as JSON under containerd's fixed URLs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any as AnyValue
from typing import TypeVar

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import DecodeError, Message

OCI_SPEC = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
OCI_PROCESS = "types.containerd.io/opencontainers/runtime-spec/1/Process"
OCI_LINUX_RESOURCES = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

_PREFIX = "type.googleapis.com/"

M = TypeVar("M", bound=Message)


def pack_json(type_url: str, document: AnyValue) -> any_pb2.Any:
    """An Any carrying ``document`` as compact JSON under ``type_url``."""
    value = json.dumps(document, separators=(",", ":")).encode()
    return any_pb2.Any(type_url=type_url, value=value)


def unpack_json(payload: any_pb2.Any) -> AnyValue:
    """The JSON document inside an Any; raises ValueError when it is not JSON."""
    return json.loads(payload.value)


def pack(message: Message) -> any_pb2.Any:
    """An Any carrying ``message`` under its bare full name, as containerd expects."""
    return any_pb2.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())


def type_name(payload: any_pb2.Any) -> str:
    """The bare type name of an Any, whichever URL form the sender used."""
    url = payload.type_url
    if url.startswith(_PREFIX):
        return url[len(_PREFIX) :]
    return url.lstrip("/")


def unpack(payload: any_pb2.Any, message_type: type[M]) -> M | None:
    """Decode ``payload`` as ``message_type``; None if it is another type or undecodable."""
    if type_name(payload) != message_type.DESCRIPTOR.full_name:
        return None
    try:
        return message_type.FromString(payload.value)
    except DecodeError:
        return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(stamp: timestamp_pb2.Timestamp) -> datetime | None:
    """A UTC datetime, or None for Go's zero time (containerd's "never")."""
    if stamp.seconds <= 0 and stamp.nanos == 0:
        return None
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
