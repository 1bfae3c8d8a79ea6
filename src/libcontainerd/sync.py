"""Client: the blocking twin of AsyncClient, for programs without an event loop.

It runs an :class:`AsyncClient` on a private event loop in a background
thread, so every method has the same name, arguments, result and errors as
its async twin, and works from any thread, including a thread of a program
that runs an event loop of its own. A plain backend's ``process_event`` runs
on a worker thread, never on the caller's.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from ._loop_thread import LoopThread
from .client import DEFAULT_NAMESPACE, AsyncClient, AttachStdio, Event, EventSubscription
from .errors import FailedPrecondition
from .images import BlockingImageService, Image
from .networks import Attach, BlockingNetworkService, NetworkInfo
from .stdio import StdioCallback
from .types import (
    INIT_PROCESS_ID,
    Backend,
    ContainerInfo,
    ExitStatus,
    ProcessSummary,
    Stats,
    Status,
    Version,
)

__all__ = ["Client", "EventIterator"]

T = TypeVar("T")

_OWN_THREAD = (
    "the blocking Client cannot be called from its own event-loop thread;"
    " use AsyncClient inside async code"
)


class EventIterator:
    """A blocking iterator over task events; ``close()`` may be called from any thread.

    It ends when closed or when its client closes, as its async twin does.
    """

    def __init__(self, loop: LoopThread, subscription: EventSubscription) -> None:
        self._loop = loop
        self._subscription = subscription
        self._ended = False

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        if self._ended or self._loop.loop.is_closed():
            raise StopIteration  # the client closed: the loop that fed it is gone
        try:
            return self._loop.run(self._subscription.__anext__())
        except StopAsyncIteration:
            self._ended = True
            raise StopIteration from None

    def close(self) -> None:
        """Stop the iteration; a thread blocked in ``next()`` gets StopIteration."""
        with contextlib.suppress(RuntimeError):  # the loop has closed, and the iteration ended
            self._loop.loop.call_soon_threadsafe(self._subscription.end)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _documented_by_twin(cls: type[T]) -> type[T]:
    """Give each public method the docstring of its AsyncClient twin, so ``help(Client)`` shows it.

    A method with a note of its own (where the blocking form differs) keeps
    it, followed by the twin's text.
    """
    for name, method in vars(cls).items():
        twin = getattr(AsyncClient, name, None)
        if name.startswith("_") or name in _OWN_DOCS or not callable(method) or twin is None:
            continue
        text = inspect.getdoc(twin)
        if not text:
            continue
        own = inspect.getdoc(method)
        method.__doc__ = text if not own else f"{own}\n\nAs AsyncClient.{name}: {text}"
    return cls


# Methods whose blocking form is documented on its own (the twin's text would mislead).
_OWN_DOCS = frozenset({"open", "close"})


@_documented_by_twin
class Client:
    """The blocking twin of :class:`AsyncClient`: same methods, same errors.

    Use it as a context manager (or call ``open()`` / ``close()``).
    """

    def __init__(
        self,
        address: str | os.PathLike[str] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        backend: Backend | None = None,
        *,
        timeout: float | None = None,
        fifo_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._async = AsyncClient(address, namespace, backend, timeout=timeout, fifo_dir=fifo_dir)
        self._loop: LoopThread | None = None
        self.images = BlockingImageService(self._async.images, self._run)
        """The namespace's images, blocking: see :class:`~libcontainerd.images.ImageService`."""
        self.networks = BlockingNetworkService(self._async.networks, self._run)
        """The host's networks, blocking: see :class:`~libcontainerd.networks.NetworkService`."""

    @property
    def address(self) -> str:
        return self._async.address

    @property
    def namespace(self) -> str:
        return self._async.namespace

    @property
    def runc_root(self) -> str:
        return self._async.runc_root

    @property
    def fifo_dir(self) -> str:
        return self._async.fifo_dir

    def open(self) -> Self:
        """Connect and subscribe to events; raises Unavailable if containerd does not answer."""
        if self._loop is not None:
            return self
        loop = LoopThread(f"libcontainerd-{self.namespace}", refusal=_OWN_THREAD)
        try:
            loop.run(self._async.open())
        except BaseException:
            loop.stop()
            raise
        self._loop = loop
        return self

    def close(self) -> None:
        """Close the async client, then stop its thread; safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is not None:
            try:
                loop.run(self._async.close())
            finally:
                loop.stop()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            work.close()
            raise FailedPrecondition(
                "the client is not open: use 'with Client(...)' or 'client.open()'"
            )
        return self._loop.run(work)

    # -- the contract (each method gets its AsyncClient twin's docstring) ---------------

    def version(self) -> Version:
        return self._run(self._async.version())

    def create(
        self,
        container_id: str,
        spec: Mapping[str, Any],
        runtime_options: Mapping[str, Any] | None = None,
        *,
        image: str | Image | None = None,
        snapshotter: str | None = None,
        network: str | Attach | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        return self._run(
            self._async.create(
                container_id,
                spec,
                runtime_options,
                image=image,
                snapshotter=snapshotter,
                network=network,
                labels=labels,
            )
        )

    def set_labels(self, container_id: str, labels: Mapping[str, str]) -> dict[str, str]:
        return self._run(self._async.set_labels(container_id, labels))

    def spec(self, container_id: str) -> dict[str, Any]:
        return self._run(self._async.spec(container_id))

    def network_info(self, container_id: str) -> NetworkInfo | None:
        return self._run(self._async.network_info(container_id))

    def start(
        self,
        container_id: str,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        with_stdin: bool = False,
        attach_stdio: AttachStdio | None = None,
    ) -> int:
        """An ``attach_stdio`` callback runs on the client's loop thread.

        Wait for an attacher (CollectOutput, CopyToFiles) with its ``result()``.
        """
        return self._run(self._async.start(container_id, checkpoint_dir, with_stdin, attach_stdio))

    def exec(
        self,
        container_id: str,
        process_id: str,
        process_spec: Mapping[str, Any],
        with_stdin: bool = False,
        attach_stdio: AttachStdio | None = None,
    ) -> int:
        return self._run(
            self._async.exec(container_id, process_id, process_spec, with_stdin, attach_stdio)
        )

    def close_stdin(self, container_id: str, process_id: str) -> None:
        return self._run(self._async.close_stdin(container_id, process_id))

    def resize_terminal(self, container_id: str, process_id: str, width: int, height: int) -> None:
        return self._run(self._async.resize_terminal(container_id, process_id, width, height))

    def restore(
        self, container_id: str, attach_stdio: StdioCallback | None = None
    ) -> tuple[bool, int]:
        return self._run(self._async.restore(container_id, attach_stdio))

    def signal_process(self, container_id: str, process_id: str, signal: int | str) -> None:
        return self._run(self._async.signal_process(container_id, process_id, signal))

    def status(self, container_id: str) -> Status:
        return self._run(self._async.status(container_id))

    def list_pids(self, container_id: str) -> list[int]:
        return self._run(self._async.list_pids(container_id))

    def summary(self, container_id: str) -> list[ProcessSummary]:
        return self._run(self._async.summary(container_id))

    def pause(self, container_id: str) -> None:
        return self._run(self._async.pause(container_id))

    def resume(self, container_id: str) -> None:
        return self._run(self._async.resume(container_id))

    def wait(
        self, container_id: str, process_id: str = INIT_PROCESS_ID, *, timeout: float | None = None
    ) -> ExitStatus:
        return self._run(self._async.wait(container_id, process_id, timeout=timeout))

    def delete_task(self, container_id: str) -> ExitStatus:
        return self._run(self._async.delete_task(container_id))

    def stop(
        self, container_id: str, timeout: float | None = 10, signal: int | str | None = None
    ) -> ExitStatus:
        return self._run(self._async.stop(container_id, timeout, signal))

    def remove(self, container_id: str, force: bool = False) -> None:
        return self._run(self._async.remove(container_id, force))

    def delete(self, container_id: str) -> None:
        return self._run(self._async.delete(container_id))

    def update_resources(self, container_id: str, resources: Mapping[str, Any]) -> None:
        return self._run(self._async.update_resources(container_id, resources))

    def stats(self, container_id: str) -> Stats:
        return self._run(self._async.stats(container_id))

    def stats_stream(self, container_id: str, interval: float = 1.0) -> Iterator[Stats]:
        """A blocking iterator of samples until the task exits."""
        stream = self._async.stats_stream(container_id, interval)
        try:
            while True:
                try:
                    yield self._run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            if self._loop is not None:
                self._run(_close(stream))

    def create_checkpoint(
        self, container_id: str, checkpoint_dir: str | os.PathLike[str], exit: bool = False
    ) -> None:
        return self._run(self._async.create_checkpoint(container_id, checkpoint_dir, exit))

    def events(self) -> EventIterator:
        """A blocking iterator of ``(container_id, EventType, EventInfo)`` from now on."""
        if self._loop is None:
            raise FailedPrecondition("the client is not open")
        subscription = self._run(_subscribe(self._async))
        return EventIterator(self._loop, subscription)

    def list_containers(self) -> list[ContainerInfo]:
        return self._run(self._async.list_containers())


async def _next(stream: AsyncIterator[T]) -> T:
    return await anext(stream)


async def _close(stream: AsyncIterator[T]) -> None:
    if isinstance(stream, AsyncGenerator):
        await stream.aclose()


async def _subscribe(client: AsyncClient) -> EventSubscription:
    # Made on the loop's thread: the client's listener set is only touched there.
    return client.events()
