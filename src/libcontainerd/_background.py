"""Fire-and-forget asyncio tasks of the stdio machinery, kept referenced while they run.

asyncio holds only a weak reference to a task: one nobody keeps can be
garbage-collected mid-way. Copies, drains and keeper hand-overs are started
here and held in :data:`running` until they end (tests count it for leaks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["running", "spawn"]

T = TypeVar("T")

running: set[asyncio.Task[Any]] = set()


def spawn(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``coroutine`` as a task of the running loop, referenced until it ends."""
    task = asyncio.get_running_loop().create_task(coroutine)
    running.add(task)
    task.add_done_callback(running.discard)
    return task
