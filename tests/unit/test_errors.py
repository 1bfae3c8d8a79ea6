"""gRPC status codes become the library's error tree in one place."""

import grpc
import pytest

import libcontainerd.errors as errors


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.CANCELLED, errors.Cancelled),
        (grpc.StatusCode.UNIMPLEMENTED, errors.NotImplemented),
        (grpc.StatusCode.UNKNOWN, errors.LibcontainerdError),
        (grpc.StatusCode.INTERNAL, errors.LibcontainerdError),
    ],
)
def test_each_grpc_code_maps_to_its_error(code: grpc.StatusCode, kind: type) -> None:
    error = errors.from_grpc(FakeRpcError(code, "boom"), "start container 'a'")
    assert type(error) is kind
    assert error.code == code.name
    assert error.details == "boom"
    assert str(error).startswith("start container 'a': ")


def test_every_error_is_a_libcontainerd_error() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type):
            assert issubclass(value, errors.LibcontainerdError)


def test_unavailable_says_containerd_is_unavailable() -> None:
    error = errors.from_grpc(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connect failed"), "version")
    assert "containerd is unavailable" in str(error)
