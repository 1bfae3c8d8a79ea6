"""The background event loop the blocking twins run their async selves on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from libcontainerd._loop_thread import LoopThread
from libcontainerd.errors import FailedPrecondition


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    made = LoopThread("lcd-test-loop", refusal="not from the loop's own thread")
    try:
        yield made
    finally:
        made.stop()


def test_run_returns_the_result_of_work_done_on_the_loop_thread(loop_thread: LoopThread) -> None:
    async def where() -> threading.Thread:
        return threading.current_thread()

    assert loop_thread.run(where()) is loop_thread.thread


def test_run_raises_the_error_of_the_work(loop_thread: LoopThread) -> None:
    async def fail() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        loop_thread.run(fail())


def test_run_from_the_loops_own_thread_is_refused_with_its_message(
    loop_thread: LoopThread,
) -> None:
    async def nothing() -> None:
        pass

    async def call_back() -> None:
        loop_thread.run(nothing())  # would wait for itself forever

    with pytest.raises(FailedPrecondition, match="not from the loop's own thread"):
        loop_thread.run(call_back())


def test_stop_ends_the_thread_and_closes_the_loop() -> None:
    made = LoopThread("lcd-test-loop", refusal="")
    made.stop()
    assert not made.thread.is_alive()
    assert made.loop.is_closed()
