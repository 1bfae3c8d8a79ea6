"""The blocking Client is AsyncClient's twin: same public methods, same signatures."""

import inspect
import re

import pytest

from libcontainerd import AsyncClient, Client
from libcontainerd.errors import FailedPrecondition

NOT_PART_OF_THE_TWIN = {"open", "close", "events"}


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in NOT_PART_OF_THE_TWIN
    }


def test_every_async_method_has_a_blocking_twin_with_the_same_signature() -> None:
    async_methods = _public_methods(AsyncClient)
    blocking_methods = _public_methods(Client)
    assert set(async_methods) == set(blocking_methods)
    for name, signature in async_methods.items():
        assert blocking_methods[name].parameters == signature.parameters, name
        # Streams are async iterators (or generators) in one, blocking iterators in the other.
        expected = re.sub(
            r"AsyncGenerator\[(.*), None\]$",
            r"Iterator[\1]",
            str(signature.return_annotation).replace("AsyncIterator[", "Iterator["),
        )
        assert str(blocking_methods[name].return_annotation) == expected, name


def test_the_blocking_client_takes_exactly_the_async_clients_parameters() -> None:
    # __init__ is left out above with every other underscore name: compared here.
    blocking = inspect.signature(Client.__init__).parameters
    assert blocking == inspect.signature(AsyncClient.__init__).parameters


def test_the_blocking_client_passes_its_parameters_on() -> None:
    client = Client("/run/x/containerd.sock", "elsewhere", fifo_dir="/run/x/my-fifos")
    assert (client.address, client.namespace) == ("/run/x/containerd.sock", "elsewhere")
    assert client.fifo_dir == "/run/x/my-fifos"


def test_a_client_that_is_not_open_says_so() -> None:
    with pytest.raises(FailedPrecondition, match="not open"):
        Client("/run/nothing/containerd.sock").version()
