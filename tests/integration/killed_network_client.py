"""A client SIGKILLed in the middle of a networked create or delete (run as a child process).

Arguments: mode address namespace container_id root network host_port.

- ``create``: a hook after the network room's kills the process in its own
  ``before_create``: the namespace is pinned, ADD has run, the record says
  so, and the container was never created.
- ``delete``: the container is created, then deleted; the process is killed
  when DEL reaches the portmap plugin (tuning and firewall have run): the
  record says ``deleting``, the namespace is still pinned.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from libcontainerd import oci
from libcontainerd._tasks import ContainerHook, NewContainer
from libcontainerd.client import AsyncClient
from libcontainerd.networks import Attach, Port
from libcontainerd.networks._cni import Invocation, PluginRunner


class KillHere(ContainerHook):
    async def before_create(self, container: NewContainer) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def kill_at_portmap_del() -> None:
    run = PluginRunner._run

    async def killing(
        self: PluginRunner, command: str, config: Any, who: Invocation
    ) -> dict[str, Any] | None:
        if command == "DEL" and config["type"] == "portmap":
            os.kill(os.getpid(), signal.SIGKILL)
        return await run(self, command, config, who)

    PluginRunner._run = killing  # type: ignore[method-assign]


async def main(
    mode: str, address: str, namespace: str, container_id: str, root: str, network: str, port: str
) -> None:
    async with AsyncClient(address, namespace) as client:
        spec = oci.default_spec(["/bin/true"], root)
        attach = Attach(network, ports=[Port(int(port), 80)])
        if mode == "create":
            client._tasks.hooks.append(KillHere())
            await client.create(container_id, spec, network=attach)
        else:
            await client.create(container_id, spec, network=attach)
            kill_at_portmap_del()
            await client.delete(container_id)
    raise SystemExit("not killed")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:8]))
