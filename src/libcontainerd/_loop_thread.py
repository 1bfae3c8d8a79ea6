"""An event loop on a background thread: how the blocking twins run their async selves.

The blocking :class:`Client` and a :class:`Supervisor` used with ``with`` each
own one; every call is a coroutine handed to that loop, and the caller's thread
waits for its result. No logic is written twice.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from .errors import FailedPrecondition

__all__ = ["LoopThread"]

T = TypeVar("T")


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
        """Stop the loop, wait for its thread, close it."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
