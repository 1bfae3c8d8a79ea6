"""libcontainerd: run and supervise Linux containers on containerd.

The public names live here; everything else is private. See the README for
the contract, and :mod:`libcontainerd.errors` for the error tree.
"""

from . import oci, rootfs
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
    FifoSet,
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
