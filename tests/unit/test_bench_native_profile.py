"""bench.native_profile puts each py-spy sample down to the right code (pure logic)."""

from __future__ import annotations

from bench.native_profile import classify, summarise

CYGRPC = "0x7f01 (grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so)"
LOOP = "BaseEventLoop._run_once (asyncio/base_events.py:1922)"


def test_the_innermost_known_code_owns_a_sample() -> None:
    ours = "AsyncClient._call (libcontainerd/client.py:559)"
    invoke = "UnaryUnaryCall._invoke (grpc/aio/_call.py:595)"
    assert classify([LOOP, ours]) == "libcontainerd (Python)"
    assert classify([LOOP, ours, "_PyEval_EvalFrameDefault (libpython3.11.so.1.0)"]) == (
        "libcontainerd (Python)"
    )
    assert classify([LOOP, ours, invoke, CYGRPC]) == "grpc native (Cython, C core)"
    assert classify([LOOP, ours, invoke]) == "grpc.aio (Python)"
    assert classify([LOOP, invoke, "sendmsg (libc.so.6)"]) == "system calls"
    select = "EpollSelector.select (selectors.py:468)"
    assert classify([LOOP, select, "epoll_wait (libc.so.6)"]) == "idle"
    assert classify([LOOP]) == "asyncio (Python)"
    assert classify(["JSONEncoder.iterencode (json/encoder.py:258)"]) == "other Python"
    assert classify(["0x7f02 (libc.so.6)"]) == "other"


def test_summarise_counts_the_loop_thread_only_and_leaves_idle_samples_out() -> None:
    raw = "\n".join(
        [
            f"thread (7): MainThread;{LOOP};{CYGRPC} 6",
            f"thread (7): MainThread;{LOOP} 2",
            f"thread (7): MainThread;{LOOP};epoll_wait (libc.so.6) 30",
            f"thread (8): Thread-1;{CYGRPC} 50",
            "not a sample line",
        ]
    )
    summary = summarise(raw, 7)
    assert summary["samples"] == 8
    assert summary["idle_samples_left_out"] == 30
    assert summary["share"] == {"grpc native (Cython, C core)": 0.75, "asyncio (Python)": 0.25}
