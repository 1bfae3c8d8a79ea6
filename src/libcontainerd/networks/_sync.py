"""BlockingNetworkService: the blocking Client's ``networks``, delegating to the async service."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._service import NetworkService
from ._types import Network

__all__ = ["BlockingNetworkService"]

T = TypeVar("T")


class BlockingNetworkService:
    """The twin of :class:`NetworkService`: same methods, arguments, results and errors."""

    def __init__(
        self, service: NetworkService, run: Callable[[Coroutine[Any, Any, Any]], Any]
    ) -> None:
        self._service = service
        self._run = run

    def create(
        self,
        name: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        bridge: str | None = None,
        masquerade: bool = True,
        mtu: int | None = None,
        ipv6: str | bool | None = None,
    ) -> Network:
        return self._call(
            self._service.create(
                name,
                subnet=subnet,
                gateway=gateway,
                bridge=bridge,
                masquerade=masquerade,
                mtu=mtu,
                ipv6=ipv6,
            )
        )

    def list(self) -> builtins.list[Network]:
        return self._call(self._service.list())

    def get(self, name: str) -> Network:
        return self._call(self._service.get(name))

    def remove(self, name: str) -> None:
        return self._call(self._service.remove(name))

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        result: T = self._run(work)
        return result
