"""The error tree, and the one place where gRPC status codes become it.

::

    LibcontainerdError
     ├── NotFound              no such container, task or process
     │    ├── ExecutableNotFound   the process's executable is not in its root filesystem
     │    └── ImageNotFound    no image by that name
     ├── AlreadyExists         the id is taken (or the task exists: start twice)
     ├── InvalidArgument       refused before sending, or by containerd
     │    └── InvalidImage     an image or archive that cannot be used (truncated,
     │         │               incomplete, inconsistent, a manifest too large)
     │         ├── UnsafeArchive          an archive entry or link that escapes it
     │         ├── DigestMismatch         content that is not what its digest says
     │         └── UnsupportedMediaType   unknown, schema 1, encrypted, not an image
     ├── FailedPrecondition    wrong state (delete a live task, resume a running one, ...)
     ├── Unavailable           containerd cannot be reached
     ├── DeadlineExceeded      the call ran out of time
     ├── Cancelled             the call was cancelled
     ├── NotImplemented        containerd or the runtime does not offer it
     ├── NetworkError          a CNI plugin failed, or the host lacks one (or iptables)
     ├── RegistryError         an image registry refused a request, or could not be reached
     │    └── AuthenticationFailed  the registry refused the credentials (or needs some)
     └── CheckpointUnsupported no working CRIU on this machine

Every error keeps containerd's own message in ``.details`` and, when it came
over the wire, the gRPC status name in ``.code``.
"""

from __future__ import annotations

import re
from typing import Final

import grpc

__all__ = [
    "AlreadyExists",
    "AuthenticationFailed",
    "Cancelled",
    "CheckpointUnsupported",
    "DeadlineExceeded",
    "DigestMismatch",
    "ExecutableNotFound",
    "FailedPrecondition",
    "ImageNotFound",
    "InvalidArgument",
    "InvalidImage",
    "LibcontainerdError",
    "NetworkError",
    "NotFound",
    "NotImplemented",
    "RegistryError",
    "Unavailable",
    "UnsafeArchive",
    "UnsupportedMediaType",
    "from_grpc",
    "needs_root",
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


class ExecutableNotFound(NotFound):
    """The process's executable (``args[0]``) is missing from the container, or not executable."""


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


class NetworkError(LibcontainerdError):
    """A CNI plugin failed (``code`` is its CNI error code), or is missing: the message names
    the package to install."""


class RegistryError(LibcontainerdError):
    """A registry answered a request with an error, or could not be reached.

    ``registry`` is its host, ``request`` the request (method and URL) and
    ``status`` the HTTP status (None when no answer came).
    """

    def __init__(
        self,
        message: str,
        *,
        registry: str = "",
        request: str = "",
        status: int | None = None,
        details: str = "",
    ) -> None:
        super().__init__(message, details=details)
        self.registry = registry
        self.request = request
        self.status = status


class AuthenticationFailed(RegistryError):
    """The registry refused the credentials given, or asked for credentials and none were given."""


class ImageNotFound(NotFound):
    """No image by that name in the namespace."""


class InvalidImage(InvalidArgument):
    """An image or an image archive that cannot be used: truncated, incomplete, inconsistent."""


class UnsafeArchive(InvalidImage):
    """An archive entry, link or reference that points outside the archive."""


class DigestMismatch(InvalidImage):
    """Content that is not what its digest (or its config's diff ID) says it is."""


class UnsupportedMediaType(InvalidImage):
    """A media type this library does not run: unknown, schema 1, encrypted, not an image."""


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


# runc's reasons, passed on by containerd with code Unknown, for what users catch by type.
_MISSING_EXECUTABLE: Final = re.compile(
    r'exec: "(?P<name>[^"]*)": (?:stat [^:]*: no such file or directory'
    r"|executable file not found in \$PATH)"
)
_MISSING_ROOT: Final = re.compile(r"invalid rootfs: stat (?P<path>.*?): no such file or directory")
_SOCKET_REFUSED: Final = re.compile(r"permission denied", re.IGNORECASE)


def from_grpc(error: grpc.RpcError, context: str) -> LibcontainerdError:
    """Translate a gRPC failure into the tree; ``context`` says what was being done."""
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details = (details_fn() if callable(details_fn) else None) or str(error)
    kind = _BY_CODE.get(code, LibcontainerdError)
    if kind is Unavailable:
        message = f"{context}: containerd is unavailable ({details})"
        if needs_root(details):
            message += "; its socket is root's: run this as root"
    elif kind is LibcontainerdError and (found := _runtime_refusal(context, details)):
        kind, message = found
    else:
        message = f"{context}: {details}"
    return kind(message, code=code.name, details=details)


def needs_root(details: str) -> bool:
    """Whether a connection failure says the socket refused this user (containerd's is root's)."""
    return _SOCKET_REFUSED.search(details) is not None


def _runtime_refusal(context: str, details: str) -> tuple[type[LibcontainerdError], str] | None:
    """A typed error for runc refusals users handle: a missing executable or root filesystem."""
    missing = _MISSING_EXECUTABLE.search(details)
    if missing is not None:
        return ExecutableNotFound, (
            f"{context}: executable {missing['name']!r} not found in the container"
            f" ({runtime_reason(details)})"
        )
    root = _MISSING_ROOT.search(details)
    if root is not None:
        return NotFound, f"{context}: its root filesystem {root['path']} does not exist"
    return None


def runtime_reason(details: str) -> str:
    """containerd's text for a runtime failure, without the ``": unknown"`` it appends."""
    text = details.strip()
    for suffix in (": unknown", ": Unknown"):
        if text.endswith(suffix):
            text = text[: -len(suffix)].rstrip()
    return text
