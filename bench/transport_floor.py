"""Is grpc.aio the floor of a unary call? ``python -m bench.transport_floor``.

    .venv/bin/python -m bench.transport_floor [--calls N]

The client's CPU per lifecycle and its pause+resume trail the Go client's by
a few hundred microseconds a call. This asks whether another transport in the
same Python process would do better: containerd's Version call, interleaved,
over (1) grpc.aio, as the library does; (2) grpc.aio with the minimal channel
stack; (3) grpcio's blocking stub on a worker thread; (4) a bare HTTP/2 client
on the asyncio loop itself (the pure-Python ``h2`` package, no gRPC C-core, no
extra thread: how a Go client works), each timed back to back and after a
20 ms pause (a lifecycle's steps are that far apart). Wall time and process CPU
per call, medians. ``h2`` is installed into ``.cache/bench/pylib`` on first
use (the library does not depend on it). Starts its own containerd under
/tmp and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf import empty_pb2

from libcontainerd import Supervisor
from libcontainerd._api.containerd.api.services.version.v1 import version_pb2

from .runner import remove_workdir

VERSION = "/containerd.services.version.v1.Version/Version"
NAMESPACE = "bench-transport"
PYLIB = Path(__file__).resolve().parent.parent / ".cache" / "bench" / "pylib"


def _import_h2() -> Any:
    if str(PYLIB) not in sys.path:
        sys.path.insert(0, str(PYLIB))
    if importlib.util.find_spec("h2") is None:
        print(f"bench: installing h2 into {PYLIB} (pip)", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(PYLIB), "h2"],
            check=True,
        )
        importlib.invalidate_caches()
    import h2.config
    import h2.connection
    import h2.events

    return h2


class _Http2Unary(asyncio.Protocol):
    """Unary gRPC calls over one HTTP/2 connection, parsed on the event loop's thread."""

    def __init__(self, h2: Any) -> None:
        self._h2 = h2
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._connection = h2.connection.H2Connection(config=config)
        self._pending: dict[int, tuple[asyncio.Future[bytes], bytearray]] = {}
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connection.initiate_connection()
        transport.write(self._connection.data_to_send())

    def data_received(self, data: bytes) -> None:
        events = self._h2.events
        for event in self._connection.receive_data(data):
            if isinstance(event, events.DataReceived):
                pending = self._pending.get(event.stream_id)
                if pending is not None:
                    pending[1].extend(event.data)
                self._connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            elif isinstance(event, events.StreamEnded | events.StreamReset):
                finished = self._pending.pop(event.stream_id, None)
                if finished is not None and not finished[0].done():
                    finished[0].set_result(bytes(finished[1]))
        outgoing = self._connection.data_to_send()
        if outgoing and self._transport is not None:
            self._transport.write(outgoing)

    async def call(self, path: bytes, body: bytes, namespace: bytes) -> bytes:
        assert self._transport is not None
        stream = self._connection.get_next_available_stream_id()
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[stream] = (reply, bytearray())
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", b"localhost"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"containerd-namespace", namespace),
        ]
        self._connection.send_headers(stream, headers)
        self._connection.send_data(
            stream, b"\0" + struct.pack(">I", len(body)) + body, end_stream=True
        )
        self._transport.write(self._connection.data_to_send())
        return (await reply)[5:]  # a single message: skip its 5-byte frame header


async def measure(calls: int) -> dict[str, Any]:
    h2 = _import_h2()
    workdir = Path(tempfile.mkdtemp(prefix="lcdtransport-", dir="/tmp"))
    supervisor = Supervisor(workdir / "s", workdir / "r")
    channels: list[grpc.aio.Channel] = []
    blocking = None
    results: dict[str, Any] = {"calls": calls}
    try:
        await supervisor.start()
        target = f"unix://{supervisor.address}"
        base = [("grpc.use_local_subchannel_pool", 1)]
        serialize = empty_pb2.Empty.SerializeToString
        deserialize = version_pb2.VersionResponse.FromString
        metadata = grpc.aio.Metadata(("containerd-namespace", NAMESPACE))
        plain_metadata = (("containerd-namespace", NAMESPACE),)

        def aio_stub(options: list[tuple[str, Any]]) -> Any:
            channel = grpc.aio.insecure_channel(target, options=base + options)
            channels.append(channel)
            return channel.unary_unary(
                VERSION, request_serializer=serialize, response_deserializer=deserialize
            )

        aio = aio_stub([])
        minimal = aio_stub([("grpc.minimal_stack", 1)])
        blocking = grpc.insecure_channel(target, options=base)
        blocking_stub = blocking.unary_unary(
            VERSION, request_serializer=serialize, response_deserializer=deserialize
        )
        _, http2 = await asyncio.get_running_loop().create_unix_connection(
            lambda: _Http2Unary(h2), supervisor.address
        )

        async def over_http2() -> Any:
            body = await http2.call(VERSION.encode(), b"", NAMESPACE.encode())
            return version_pb2.VersionResponse.FromString(body)

        variants: dict[str, Callable[[], Awaitable[Any]]] = {
            "grpc.aio (the library's)": lambda: aio(empty_pb2.Empty(), metadata=metadata),
            "grpc.aio, minimal stack": lambda: minimal(empty_pb2.Empty(), metadata=metadata),
            "blocking grpcio on a thread": lambda: asyncio.to_thread(
                blocking_stub, empty_pb2.Empty(), metadata=plain_metadata
            ),
            "HTTP/2 (h2) on the loop": over_http2,
        }
        for call in variants.values():
            assert (await call()).version
            for _ in range(30):
                await call()
        for gap in (0.0, 0.02):
            wall: dict[str, list[float]] = {name: [] for name in variants}
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(calls):
                for name, call in variants.items():
                    if gap:
                        await asyncio.sleep(gap)
                    started, used = time.perf_counter(), time.process_time()
                    await call()
                    cpu[name].append((time.process_time() - used) * 1e6)
                    wall[name].append((time.perf_counter() - started) * 1e6)
            results[f"gap {gap * 1000:g} ms"] = {
                name: {
                    "wall_us": round(statistics.median(wall[name])),
                    "cpu_us": round(statistics.median(cpu[name])),
                }
                for name in variants
            }
    finally:
        for channel in channels:
            await channel.close()
        if blocking is not None:
            blocking.close()
        await supervisor.stop()
        remove_workdir(workdir)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per variant and gap")
    options = parser.parse_args(argv)
    results = asyncio.run(measure(options.calls))
    for gap, table in results.items():
        if not isinstance(table, dict):
            continue
        print(f"Version call, {gap} between calls (medians):")
        for name, figures in table.items():
            print(f"  {name:30s} wall {figures['wall_us']:6d} µs   CPU {figures['cpu_us']:6d} µs")
    out = PYLIB.parent / "transport-floor.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
