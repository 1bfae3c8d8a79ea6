"""The error tree, and the one place where gRPC status codes become it.

::

    LibcontainerdError
     ├── NotFound              no such container, task or process
     ├── AlreadyExists         the id is taken
     ├── InvalidArgument       refused before sending, or by containerd
     ├── FailedPrecondition    wrong state (delete a live task, start twice, ...)
     ├── Unavailable           containerd cannot be reached
     ├── DeadlineExceeded      the call ran out of time
     ├── Cancelled             the call was cancelled
     ├── NotImplemented        containerd or the runtime does not offer it
     └── CheckpointUnsupported no working CRIU on this machine

Every error keeps containerd's own message in ``.details`` and, when it came
over the wire, the gRPC status name in ``.code``.
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "CheckpointUnsupported",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "LibcontainerdError",
    "NotFound",
    "NotImplemented",
    "Unavailable",
    "from_grpc",
    "runtime_reason",
]


class LibcontainerdError(Exception):
    """Base of every error this library raises."""

    def __init__(self, message: str, *, code: str | None = None, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or message


class NotFound(LibcontainerdError):
    """The container, task or process does not exist."""


class AlreadyExists(LibcontainerdError):
    """The container or exec id is already in use."""


class InvalidArgument(LibcontainerdError):
    """An argument was refused: by this library before sending, or by containerd."""


class FailedPrecondition(LibcontainerdError):
    """The object is in the wrong state for the operation."""


class Unavailable(LibcontainerdError):
    """containerd cannot be reached (not started, crashed, or restarting)."""


class DeadlineExceeded(LibcontainerdError):
    """The operation did not finish in time."""


class Cancelled(LibcontainerdError):
    """The operation was cancelled."""


class NotImplemented(LibcontainerdError):  # the contract's name, shadowing the builtin on purpose
    """containerd or the runtime does not implement the operation."""


class CheckpointUnsupported(LibcontainerdError):
    """No working CRIU is available, so checkpoints cannot be made or restored."""


_BY_CODE: dict[grpc.StatusCode, type[LibcontainerdError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: NotImplemented,
}


def from_grpc(error: grpc.RpcError, context: str) -> LibcontainerdError:
    """Translate a gRPC failure into the tree; ``context`` says what was being done."""
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details = (details_fn() if callable(details_fn) else None) or str(error)
    kind = _BY_CODE.get(code, LibcontainerdError)
    if kind is Unavailable:
        message = f"{context}: containerd is unavailable ({details})"
    else:
        message = f"{context}: {details}"
    return kind(message, code=code.name, details=details)


def runtime_reason(details: str) -> str:
    """containerd's text for a runtime failure, without the ``": unknown"`` it appends."""
    text = details.strip()
    for suffix in (": unknown", ": Unknown"):
        if text.endswith(suffix):
            text = text[: -len(suffix)].rstrip()
    return text
