"""Run by test_client_faults.py as a program of its own: start containers attached, then hang.

    python attach_counters.py ADDRESS NAMESPACE PLAN_JSON

PLAN_JSON is a file holding ``[{"id": ..., "spec": {...}, "stdin": bool}, ...]``.
Creates and starts every container with a callback that reads its output
line by line, waits until each has written ``lines_before_ready`` lines (so
output flows through the FIFOs), prints one JSON line ``{"pids": {id: pid},
"last": {id: last line read}}`` and then keeps reading until it is killed,
never deleting anything nor closing a stdin: the test SIGKILLs it, as a
crash would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from libcontainerd import AsyncClient, DirectIO

LINES_BEFORE_READY = 2


class Reader:
    """Reads one container's stdout; keeps its stdin writer so the FIFO stays open."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.enough = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __call__(self, io: DirectIO) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._read(io)))

    async def _read(self, io: DirectIO) -> None:
        while line := await io.stdout.readline():
            self.lines.append(line.decode().rstrip("\n"))
            if len(self.lines) >= LINES_BEFORE_READY:
                self.enough.set()


async def start(client: AsyncClient, entry: dict[str, Any], reader: Reader) -> int:
    await client.create(entry["id"], entry["spec"])
    return await client.start(entry["id"], with_stdin=entry["stdin"], attach_stdio=reader)


async def main(address: str, namespace: str, plan: list[dict[str, Any]]) -> None:
    async with AsyncClient(address, namespace=namespace) as client:
        readers = {entry["id"]: Reader() for entry in plan}
        pids = await asyncio.gather(*(start(client, e, readers[e["id"]]) for e in plan))
        async with asyncio.timeout(120):
            await asyncio.gather(*(reader.enough.wait() for reader in readers.values()))
        ready = {
            "pids": dict(zip(readers, pids, strict=True)),
            "last": {container_id: reader.lines[-1] for container_id, reader in readers.items()},
        }
        print(json.dumps(ready), flush=True)
        await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    address, namespace, plan_path = sys.argv[1:4]
    asyncio.run(main(address, namespace, json.loads(Path(plan_path).read_text())))
