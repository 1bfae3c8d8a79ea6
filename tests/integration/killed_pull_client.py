"""A client that pulls an image, for its parent to SIGKILL partway (a proxy stalls a blob).

python -m tests.integration.killed_pull_client ADDRESS NAMESPACE REFERENCE HOSTS_DIR
"""

from __future__ import annotations

import asyncio
import sys

from libcontainerd.client import AsyncClient


async def main(address: str, namespace: str, reference: str, hosts_dir: str) -> None:
    async with AsyncClient(address, namespace) as client:
        await client.images.pull(reference, hosts_dir=hosts_dir)
    print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
