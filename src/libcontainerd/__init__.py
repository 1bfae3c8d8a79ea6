"""libcontainerd: run and supervise Linux containers on containerd.

The public names live here; everything else is private. See the README for
the contract, and :mod:`libcontainerd.errors` for the error tree.

Names are loaded on first use (PEP 562), so ``import libcontainerd`` costs
little until something is used: grpc and protobuf load with the first name
that needs them.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import oci, rootfs
    from ._fifo import FifoSet
    from .client import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, AsyncClient, EventSubscription
    from .errors import (
        AlreadyExists,
        Cancelled,
        CheckpointUnsupported,
        DeadlineExceeded,
        FailedPrecondition,
        InvalidArgument,
        LibcontainerdError,
        NotFound,
        NotImplemented,
        Unavailable,
    )
    from .stdio import (
        AttachTerminal,
        CollectOutput,
        CopyToFiles,
        DirectIO,
        LogFile,
        StdioCallback,
        discard,
    )
    from .supervisor import Supervisor
    from .sync import Client, EventIterator
    from .types import (
        INIT_PROCESS_ID,
        Backend,
        ContainerInfo,
        EventInfo,
        EventType,
        ProcessSummary,
        Stats,
        Status,
        Version,
    )

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_NAMESPACE",
    "INIT_PROCESS_ID",
    "AlreadyExists",
    "AsyncClient",
    "AttachTerminal",
    "Backend",
    "Cancelled",
    "CheckpointUnsupported",
    "Client",
    "CollectOutput",
    "ContainerInfo",
    "CopyToFiles",
    "DeadlineExceeded",
    "DirectIO",
    "EventInfo",
    "EventIterator",
    "EventSubscription",
    "EventType",
    "FailedPrecondition",
    "FifoSet",
    "InvalidArgument",
    "LibcontainerdError",
    "LogFile",
    "NotFound",
    "NotImplemented",
    "ProcessSummary",
    "Stats",
    "Status",
    "StdioCallback",
    "Supervisor",
    "Unavailable",
    "Version",
    "discard",
    "oci",
    "rootfs",
]


# Where each public name lives: a module of this package (the name itself for a module).
_LAZY: dict[str, str] = {
    "AlreadyExists": "errors",
    "AsyncClient": "client",
    "AttachTerminal": "stdio",
    "Backend": "types",
    "Cancelled": "errors",
    "CheckpointUnsupported": "errors",
    "Client": "sync",
    "CollectOutput": "stdio",
    "ContainerInfo": "types",
    "CopyToFiles": "stdio",
    "DEFAULT_ADDRESS": "client",
    "DEFAULT_NAMESPACE": "client",
    "DeadlineExceeded": "errors",
    "DirectIO": "stdio",
    "EventInfo": "types",
    "EventIterator": "sync",
    "EventSubscription": "client",
    "EventType": "types",
    "FailedPrecondition": "errors",
    "FifoSet": "_fifo",
    "INIT_PROCESS_ID": "types",
    "InvalidArgument": "errors",
    "LibcontainerdError": "errors",
    "LogFile": "stdio",
    "NotFound": "errors",
    "NotImplemented": "errors",
    "ProcessSummary": "types",
    "Stats": "types",
    "Status": "types",
    "StdioCallback": "stdio",
    "Supervisor": "supervisor",
    "Unavailable": "errors",
    "Version": "types",
    "discard": "stdio",
    "oci": "oci",
    "rootfs": "rootfs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'libcontainerd' has no attribute {name!r}")
    loaded = importlib.import_module(f".{module}", __name__)
    value = loaded if module == name else getattr(loaded, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
