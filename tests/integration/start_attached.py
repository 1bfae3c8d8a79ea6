"""Run by test_restore.py as a separate program: start a container with attached stdio, then exit.

    python start_attached.py ADDRESS NAMESPACE CONTAINER_ID SPEC_JSON

Creates the container from the spec file, starts it with stdin and a
callback, waits for its first line of output (``ready``), prints the init
pid and exits without deleting anything or closing the container's stdin,
as a program that crashes or restarts would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from libcontainerd import AsyncClient, DirectIO


async def main(address: str, namespace: str, container_id: str, spec: dict[str, Any]) -> None:
    attached: list[DirectIO] = []
    async with AsyncClient(address, namespace=namespace) as client:
        await client.create(container_id, spec)
        pid = await client.start(container_id, with_stdin=True, attach_stdio=attached.append)
        line = await asyncio.wait_for(attached[0].stdout.readline(), 30)
        if line != b"ready\n":
            raise SystemExit(f"unexpected first line {line!r}")
        print(pid, flush=True)


if __name__ == "__main__":
    address, namespace, container_id, spec_path = sys.argv[1:5]
    asyncio.run(main(address, namespace, container_id, json.loads(Path(spec_path).read_text())))
