"""An event loop on a background thread: how the blocking twins run their async selves.

The blocking :class:`Client` and a :class:`Supervisor` used with ``with`` each
own one; every call is a coroutine handed to that loop, and the caller's thread
waits for its result. No logic is written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from .errors import FailedPrecondition

__all__ = ["LoopThread"]

T = TypeVar("T")

# How long stop() lets the loop's last tasks (gRPC's own, mostly) finish before cancelling them.
_SETTLE_SECONDS = 0.5


class LoopThread:
    """An event loop running in a daemon thread, fed from other threads.

    ``refusal`` is the message of the ``FailedPrecondition`` raised when the
    loop's own thread calls :meth:`run` (it would wait for itself forever).
    """

    def __init__(self, name: str, *, refusal: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._refusal = refusal
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name=name, daemon=True)
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop and return its result (or raise its error) in this thread."""
        if threading.current_thread() is self.thread:
            work.close()
            raise FailedPrecondition(self._refusal)
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: do not leave the call running
            raise

    def stop(self) -> None:
        """Let the loop's tasks end, stop it, wait for its thread, close it.

        As ``asyncio.run`` does at its end: tasks still pending (gRPC's
        status handler of a call just cancelled, ...) get a moment to finish,
        then are cancelled and awaited, so none is destroyed pending (which
        prints "Task was destroyed but it is pending!" at exit).
        """
        if self.loop.is_closed():
            return
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            settled = asyncio.run_coroutine_threadsafe(_settle(), self.loop)
            with contextlib.suppress(Exception):  # a task's failure is its owner's to report
                settled.result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


async def _settle() -> None:
    """Wait briefly for every other task of this loop, then cancel and await the rest."""
    current = asyncio.current_task()
    pending = {task for task in asyncio.all_tasks() if task is not current}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=_SETTLE_SECONDS)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_SETTLE_SECONDS)
    await asyncio.get_running_loop().shutdown_asyncgens()
