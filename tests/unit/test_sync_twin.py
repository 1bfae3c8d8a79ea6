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


def test_a_client_that_is_not_open_says_so() -> None:
    with pytest.raises(FailedPrecondition, match="not open"):
        Client("/run/nothing/containerd.sock").version()
