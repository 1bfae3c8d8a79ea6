"""libcontainerd: run and supervise Linux containers on containerd.

The public names live here; everything else is private. See the README for
the contract, and :mod:`libcontainerd.errors` for the error tree.

Names are loaded on first use (PEP 562), so ``import libcontainerd`` costs
little until something is used: grpc and protobuf load with the first name
that needs them.
"""

from __future__ import annotations

import importlib

# Not typing's: importing typing costs more than the lcd command's hand-over
# to its helper (libcontainerd._lcd); type checkers know this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from . import images, oci, rootfs, seccomp
    from ._fifo import FifoSet
    from .client import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, AsyncClient, EventSubscription
    from .errors import (
        AlreadyExists,
        AuthenticationFailed,
        Cancelled,
        CheckpointUnsupported,
        DeadlineExceeded,
        DigestMismatch,
        ExecutableNotFound,
        FailedPrecondition,
        ImageNotFound,
        InvalidArgument,
        InvalidImage,
        LibcontainerdError,
        NetworkError,
        NotFound,
        NotImplemented,
        RegistryError,
        Unavailable,
        UnsafeArchive,
        UnsupportedMediaType,
    )
    from .images import DiskUsage, Image, ImageConfig, Progress
    from .networks import Attach, Network, NetworkInfo, Port
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
        ExitStatus,
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
    "Attach",
    "AttachTerminal",
    "AuthenticationFailed",
    "Backend",
    "Cancelled",
    "CheckpointUnsupported",
    "Client",
    "CollectOutput",
    "ContainerInfo",
    "CopyToFiles",
    "DeadlineExceeded",
    "DigestMismatch",
    "DirectIO",
    "DiskUsage",
    "EventInfo",
    "EventIterator",
    "EventSubscription",
    "EventType",
    "ExecutableNotFound",
    "ExitStatus",
    "FailedPrecondition",
    "FifoSet",
    "Image",
    "ImageConfig",
    "ImageNotFound",
    "InvalidArgument",
    "InvalidImage",
    "LibcontainerdError",
    "LogFile",
    "Network",
    "NetworkError",
    "NetworkInfo",
    "NotFound",
    "NotImplemented",
    "Port",
    "ProcessSummary",
    "Progress",
    "RegistryError",
    "Stats",
    "Status",
    "StdioCallback",
    "Supervisor",
    "Unavailable",
    "UnsafeArchive",
    "UnsupportedMediaType",
    "Version",
    "discard",
    "images",
    "oci",
    "rootfs",
    "seccomp",
]


# Where each public name lives: a module of this package (the name itself for a module).
_LAZY: dict[str, str] = {
    "AlreadyExists": "errors",
    "AsyncClient": "client",
    "Attach": "networks",
    "AttachTerminal": "stdio",
    "AuthenticationFailed": "errors",
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
    "DigestMismatch": "errors",
    "DirectIO": "stdio",
    "DiskUsage": "images",
    "EventInfo": "types",
    "EventIterator": "sync",
    "EventSubscription": "client",
    "EventType": "types",
    "ExecutableNotFound": "errors",
    "ExitStatus": "types",
    "FailedPrecondition": "errors",
    "FifoSet": "_fifo",
    "INIT_PROCESS_ID": "types",
    "Image": "images",
    "ImageConfig": "images",
    "ImageNotFound": "errors",
    "InvalidArgument": "errors",
    "InvalidImage": "errors",
    "LibcontainerdError": "errors",
    "LogFile": "stdio",
    "Network": "networks",
    "NetworkError": "errors",
    "NetworkInfo": "networks",
    "NotFound": "errors",
    "NotImplemented": "errors",
    "Port": "networks",
    "ProcessSummary": "types",
    "Progress": "images",
    "RegistryError": "errors",
    "Stats": "types",
    "Status": "types",
    "StdioCallback": "stdio",
    "Supervisor": "supervisor",
    "Unavailable": "errors",
    "UnsafeArchive": "errors",
    "UnsupportedMediaType": "errors",
    "Version": "types",
    "discard": "stdio",
    "images": "images",
    "oci": "oci",
    "rootfs": "rootfs",
    "seccomp": "seccomp",
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
