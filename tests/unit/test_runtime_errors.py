"""runc's refusals that users handle get types at the one translation point (errors.from_grpc)."""

from __future__ import annotations

import grpc
import pytest

from libcontainerd import ExecutableNotFound, LibcontainerdError, NotFound, Unavailable
from libcontainerd.errors import from_grpc


class Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


RUNC = "failed to create shim task: OCI runtime create failed: runc create failed: "


@pytest.mark.parametrize(
    "reason",
    [
        'unable to start container process: exec: "/nope": stat /nope: no such file or directory',
        'unable to start container process: exec: "nope": executable file not found in $PATH',
    ],
)
@pytest.mark.parametrize("suffix", ["", ": unknown"])  # 2.x dropped containerd's suffix
def test_a_missing_executable_is_executable_not_found(reason: str, suffix: str) -> None:
    error = from_grpc(Failed(grpc.StatusCode.UNKNOWN, RUNC + reason + suffix), "start x")
    assert type(error) is ExecutableNotFound
    assert isinstance(error, NotFound)
    assert error.code == "UNKNOWN"
    assert "not found in the container" in error.message


def test_a_missing_root_filesystem_is_not_found() -> None:
    details = RUNC + "invalid rootfs: stat /srv/gone: no such file or directory: unknown"
    error = from_grpc(Failed(grpc.StatusCode.UNKNOWN, details), "start x")
    assert type(error) is NotFound
    assert error.message == "start x: its root filesystem /srv/gone does not exist"


def test_other_refusals_stay_untyped() -> None:
    details = RUNC + 'unable to start container process: exec: "/etc": permission denied'
    error = from_grpc(Failed(grpc.StatusCode.UNKNOWN, details), "start x")
    assert type(error) is LibcontainerdError


def test_a_socket_that_refuses_the_user_says_root_is_needed() -> None:
    details = "failed to connect to all addresses; last error: ... error: Permission denied"
    error = from_grpc(Failed(grpc.StatusCode.UNAVAILABLE, details), "version")
    assert type(error) is Unavailable
    assert error.message.endswith("its socket is root's: run this as root")
