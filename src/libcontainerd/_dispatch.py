"""The event dispatcher: a backend's calls in order per container, containers in parallel.

A slow or raising backend call for one container never delays another: a
coroutine handler is awaited on the event loop, a plain one runs on a few
worker threads (more are added while one is blocked), and what a handler
raises is logged with the container id while delivery goes on. Events of one
container stay strictly in order (create before start before exit).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import cast

from .types import EventInfo, EventType

__all__ = ["EventDispatcher", "Handler", "PlainHandler"]

log = logging.getLogger("libcontainerd.events")

Handler = Callable[[str, EventType, EventInfo], Awaitable[None] | None]
PlainHandler = Callable[[str, EventType, EventInfo], None]


class EventDispatcher:
    """Runs ``handler`` for each event: in order per container, containers in parallel.

    A coroutine function is awaited on the event loop. A plain function runs
    on a few worker threads (:class:`_HandlerThreads`), so a blocking handler
    never stalls the loop, and holds up only its own container. What the
    handler raises is logged with the container id, and delivery goes on.
    ``after`` runs on the event loop once per event, after the handler
    returned (for a plain handler, soon after, with other finished events).
    """

    def __init__(
        self,
        handler: Handler,
        after: Callable[[str, EventType, EventInfo], None] | None = None,
    ) -> None:
        self._handler = handler
        self._after = after
        self._threads: _HandlerThreads | None = None
        if not inspect.iscoroutinefunction(handler):
            self._threads = _HandlerThreads(cast(PlainHandler, handler), after)
        self._queues: dict[str, collections.deque[tuple[EventType, EventInfo]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def dispatch(self, container_id: str, event: EventType, info: EventInfo) -> None:
        """Queue an event; never blocks. Called on the event loop."""
        if self._threads is not None:
            self._threads.dispatch(container_id, event, info)
            return
        queue = self._queues.get(container_id)
        if queue is None:
            queue = self._queues[container_id] = collections.deque()
        queue.append((event, info))
        if container_id not in self._workers:
            self._idle.clear()
            self._workers[container_id] = asyncio.get_running_loop().create_task(
                self._work(container_id, queue), name=f"libcontainerd-events-{container_id}"
            )

    def sizes(self) -> dict[str, int]:
        """How much the dispatcher holds, by table (for leak checks)."""
        return {"dispatcher: queues": len(self._queues), "dispatcher: workers": len(self._workers)}

    @property
    def pending(self) -> int:
        """Events queued and not yet handled."""
        if self._threads is not None:
            return self._threads.pending
        return sum(len(queue) for queue in self._queues.values())

    async def drain(self) -> None:
        """Wait until every queued event has been handled."""
        if self._threads is not None:
            await self._threads.drain()
        await self._idle.wait()

    async def close(self, grace: float = 5.0) -> None:
        """Let queued events finish for up to ``grace`` seconds, then drop (or cancel) the rest.

        A plain handler still running then is left to return on its own thread.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.drain()
        if self._threads is not None:
            self._threads.close()
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._queues.clear()
        self._workers.clear()
        self._idle.set()

    async def _work(
        self, container_id: str, queue: collections.deque[tuple[EventType, EventInfo]]
    ) -> None:
        try:
            while queue:
                event, info = queue.popleft()
                await self._deliver(container_id, event, info)
        finally:
            del self._workers[container_id]
            if self._queues.get(container_id) is queue and not queue:
                del self._queues[container_id]
            if not self._workers:
                self._idle.set()

    async def _deliver(self, container_id: str, event: EventType, info: EventInfo) -> None:
        try:
            result = self._handler(container_id, event, info)
            if result is not None:
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("backend failed on %s event of container %s", event, container_id)
        if self._after is not None:
            self._after(container_id, event, info)


class _Worker:
    """One handler thread's state, read by the stall check on the event loop."""

    __slots__ = ("busy_since",)

    def __init__(self) -> None:
        # time.monotonic() when the current handler call began; 0.0 between calls.
        self.busy_since = 0.0


class _HandlerThreads:
    """A plain handler on a few threads: in order per container; a blocked call delays its own only.

    A container with events to handle is either in the ready queue or in the
    hands of exactly one thread, never both, so its events run in order. A
    thread takes all of one container's queued events, handles them, and puts
    the container back at the end of the ready queue if more came meanwhile:
    no container is bound to a thread beyond one batch, and busy containers
    share the threads in turn. Up to ``threads`` threads start as work
    arrives. When containers are waiting and every thread has been inside one
    handler call for ``stall`` seconds, one more thread starts (each
    ``stall``, up to ``max_threads``), so a blocked handler holds up only its
    own container. A thread with nothing to do for ``idle`` seconds exits.

    Compared with a thread hop (``asyncio.to_thread``) per container batch,
    this costs no future, no context copy and no loop wake-up per batch: the
    loop is woken only when everything has been handled, or when ``after``
    has work (then once for many events).
    """

    def __init__(
        self,
        handler: PlainHandler,
        after: PlainHandler | None,
        *,
        threads: int = 2,
        max_threads: int = 32,
        stall: float = 0.05,
        idle: float = 5.0,
    ) -> None:
        self._handler = handler
        self._after = after
        self._size = threads
        self._max = max_threads
        self._stall = stall
        self._idle_timeout = idle
        self._lock = threading.Lock()
        # Every container with queued or running events; the queue holds what is not taken yet.
        self._queues: dict[str, collections.deque[tuple[EventType, EventInfo]]] = {}
        self._ready: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._waiting_workers = 0
        self._pending = 0
        self._finished: list[tuple[str, EventType, EventInfo]] = []
        self._wake_posted = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stall_check: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        return self._pending

    def dispatch(self, container_id: str, event: EventType, info: EventInfo) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        with self._lock:
            self._pending += 1
            queue = self._queues.get(container_id)
            if queue is not None:
                queue.append((event, info))
            else:
                self._queues[container_id] = collections.deque(((event, info),))
                self._ready.put(container_id)
                if not self._waiting_workers and len(self._workers) < self._size:
                    self._start_worker()
        if self._stall_check is None:
            self._idle.clear()
            self._stall_check = self._loop.call_later(self._stall, self._check_stall)

    async def drain(self) -> None:
        await self._idle.wait()

    def close(self) -> None:
        """Drop what is queued; waiting threads exit now, running ones when their call returns."""
        with self._lock:
            self._closed = True
            self._queues.clear()
            self._pending = 0
            self._finished.clear()
            for _ in self._workers:
                self._ready.put(None)
        if self._stall_check is not None:
            self._stall_check.cancel()
            self._stall_check = None
        self._idle.set()

    def _start_worker(self) -> None:
        """Called with the lock held."""
        worker = _Worker()
        self._workers.append(worker)
        self._waiting_workers += 1
        thread = threading.Thread(
            target=self._serve,
            args=(worker,),
            name=f"libcontainerd-events-{len(self._workers)}",
            daemon=True,  # a handler that never returns must not keep the program alive
        )
        thread.start()

    def _check_stall(self) -> None:
        """On the loop, every ``stall`` seconds while events are pending."""
        self._stall_check = None
        if self._closed or not self._pending:
            return
        now = time.monotonic()
        with self._lock:
            stuck = all(
                worker.busy_since and now - worker.busy_since >= self._stall
                for worker in self._workers
            )
            if (
                stuck
                and not self._waiting_workers
                and not self._ready.empty()
                and len(self._workers) < self._max
            ):
                self._start_worker()
        assert self._loop is not None
        self._stall_check = self._loop.call_later(self._stall, self._check_stall)

    def _serve(self, worker: _Worker) -> None:
        handler, ready, lock, monotonic = self._handler, self._ready, self._lock, time.monotonic
        while True:
            try:
                container_id = ready.get(timeout=self._idle_timeout)
            except queue.Empty:
                with lock:
                    if not ready.empty():
                        continue
                    self._leave(worker)
                    return
            with lock:
                queue_ = None if container_id is None else self._queues.get(container_id)
                if container_id is None or queue_ is None:  # closed
                    self._leave(worker)
                    return
                self._waiting_workers -= 1
                batch = list(queue_)
                queue_.clear()
            for event, info in batch:
                worker.busy_since = monotonic()
                try:
                    handler(container_id, event, info)
                except Exception:
                    log.exception("backend failed on %s event of container %s", event, container_id)
            worker.busy_since = 0.0
            with lock:
                if self._closed:
                    self._leave(worker, waiting=False)
                    return
                self._waiting_workers += 1
                self._pending -= len(batch)
                if queue_:
                    ready.put(container_id)
                else:
                    del self._queues[container_id]
                if self._after is not None:
                    self._finished.extend((container_id, event, info) for event, info in batch)
                wake = not self._pending or (self._after is not None and not self._wake_posted)
                if wake:
                    self._wake_posted = True
            if wake:
                assert self._loop is not None
                with contextlib.suppress(RuntimeError):  # the loop has closed: no one waits
                    self._loop.call_soon_threadsafe(self._on_loop)

    def _leave(self, worker: _Worker, *, waiting: bool = True) -> None:
        """Called with the lock held, by the thread that exits."""
        self._workers.remove(worker)
        if waiting:
            self._waiting_workers -= 1

    def _on_loop(self) -> None:
        """Run the ``after`` hooks of finished events; mark idle when nothing is pending."""
        with self._lock:
            finished, self._finished = self._finished, []
            self._wake_posted = False
        if self._after is not None:
            for container_id, event, info in finished:
                try:
                    self._after(container_id, event, info)
                except Exception:
                    log.exception("after-delivery hook failed on %s of %s", event, container_id)
        # Only the loop adds events, so none pending now means all were handled.
        if not self._pending and not self._closed:
            self._idle.set()
            if self._stall_check is not None:
                self._stall_check.cancel()
                self._stall_check = None
