"""A client that imports an archive and stops at a chosen point, for its parent to SIGKILL.

    python -m tests.integration.killed_image_client ADDRESS NAMESPACE ARCHIVE PHASE

PHASE ``read``: it stops once 4 MiB of the archive's largest blob are in the
content store's ingest; ``unpack``: as the second layer's unpack begins (the
first is committed). It prints ``stopped`` then and blocks.
"""

from __future__ import annotations

import asyncio
import sys
import time

from libcontainerd.client import AsyncClient
from libcontainerd.images import Progress


async def main(address: str, namespace: str, archive: str, phase: str) -> None:
    layers_started = 0

    def progress(step: Progress) -> None:
        nonlocal layers_started
        if step.phase != phase:
            return
        if phase == "unpack" and step.done == 0:
            layers_started += 1
        if (phase == "read" and step.done >= 4 << 20) or layers_started == 2:
            print("stopped", flush=True)
            time.sleep(3600)  # holds the event loop: nothing more happens until the SIGKILL

    async with AsyncClient(address, namespace) as client:
        await client.images.import_archive(archive, progress=progress)
    print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
