"""Counts the containerd calls a client makes: what the tests of "refused before sending"
and "no call of its own" check."""

from __future__ import annotations

from typing import Any

from libcontainerd.client import AsyncClient

from .containers import ThreadedClient


def record_calls(client: AsyncClient) -> list[str]:
    """The containerd methods ``client`` calls from now on, in order, as ``service.method``.

    The event stream's own calls (Subscribe, Publish, the reconcile's Get) are
    bound when it starts and are not counted. A blocking Client (as the tests
    drive it, a ThreadedClient) is counted through the AsyncClient it delegates to.
    """
    calls: list[str] = []
    if isinstance(client, ThreadedClient):
        client = client._client._async
    methods = client._connection.methods
    assert methods is not None, "the client is not open"
    for service_name, service in vars(methods).items():
        for name, method in list(vars(service).items()):

            def counted(
                *args: Any, _name: str = f"{service_name}.{name}", _call: Any = method, **kw: Any
            ) -> Any:
                calls.append(_name)
                return _call(*args, **kw)

            setattr(service, name, counted)
    return calls
