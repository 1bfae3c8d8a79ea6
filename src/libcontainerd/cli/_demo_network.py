"""The demo's network walk: a page served from a container on a published port, fetched by the host.

The container runs busybox ``httpd`` on the default network (``lcd0``: made
on first use, and removed again at the end when the demo made it), its port
80 published on 127.0.0.1 only (nothing reaches it from other hosts). The
demo then fetches the page over 127.0.0.1 as a browser on this host would.
``delete`` runs CNI DEL with the container's namespace still mounted, then
unmounts it: no address, rule or namespace is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .. import oci, rootfs
from ..client import AsyncClient
from ..errors import FailedPrecondition, NetworkError, NotFound
from ..networks import DEFAULT_NETWORK, Attach, Port
from ..types import INIT_PROCESS_ID, EventType

if TYPE_CHECKING:
    from ._demo import _EventPrinter, _Steps

__all__ = ["PAGE", "network_walk"]

PAGE: Final = "hello from a container, over a published port"
# How long the page may take to be served after the start (httpd binding its port).
_SERVE_TIMEOUT: Final = 10.0


async def network_walk(
    steps: _Steps,
    client: AsyncClient,
    events: _EventPrinter,
    container_id: str,
    workdir: Path,
) -> str | None:
    """Create, start, fetch, kill, delete; None when done, else why it was skipped.

    Skipped (before the container exists) when the CNI plugins or iptables
    are missing: the reason names the package to install. On a failure the
    caller removes the container.
    """
    root = await asyncio.to_thread(rootfs.busybox, workdir / "web" / "rootfs")
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text(PAGE + "\n")
    spec = oci.default_spec(["/bin/httpd", "-f", "-p", "80", "-h", "/www"], root)
    existed = DEFAULT_NETWORK in {made.name for made in await client.networks.list()}
    port = _free_loopback_port()
    attach = Attach(DEFAULT_NETWORK, ports=[Port(port, 80, host_ip="127.0.0.1")])
    try:
        try:
            await steps.run("create (web)", _create(client, container_id, spec, attach), "{result}")
        except NetworkError as error:
            return str(error)
        await steps.run("start (web)", client.start(container_id), "pid {result}: busybox httpd")
        await events.wait_for(EventType.START, container_id=container_id)
        await steps.run(
            "fetch (host)",
            _fetch(port),
            f"GET http://127.0.0.1:{port}/ from the host: {{result}}",
        )
        await steps.run(
            "signal_process (web)",
            client.signal_process(container_id, INIT_PROCESS_ID, signal.SIGKILL),
            "SIGKILL (httpd, as pid 1, has no handler for TERM)",
        )
        await events.wait_for(EventType.EXIT, container_id=container_id)
        await steps.run(
            "delete_task (web)", client.delete_task(container_id), "exit code {result[0]}"
        )
        await steps.run(
            "delete (web)",
            client.delete(container_id),
            "CNI DEL with its namespace still mounted, then unmounted: nothing left",
        )
    finally:
        if not existed:
            # Made for the demo: gone again, unless a container of someone else's joined it.
            with contextlib.suppress(NotFound, FailedPrecondition):
                await client.networks.remove(DEFAULT_NETWORK)
                steps.note(f"network {DEFAULT_NETWORK} was made for the demo: removed")
    return None


async def _create(
    client: AsyncClient, container_id: str, spec: dict[str, object], attach: Attach
) -> str:
    await client.create(container_id, spec, network=attach)
    info = await client.network_info(container_id)
    assert info is not None  # created with network=
    published = ", ".join(str(port) for port in info.ports)
    return (
        f"{container_id}: {info.addresses[0]} on {info.network} (gateway {info.gateway}),"
        f" {published}"
    )


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _fetch(port: int) -> str:
    """The status and body of ``GET /`` on 127.0.0.1:``port``, retried until httpd answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _SERVE_TIMEOUT
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                reply = await asyncio.wait_for(reader.read(), _SERVE_TIMEOUT)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        head, _, body = reply.decode(errors="replace").partition("\r\n\r\n")
        status = " ".join(head.split("\r\n", 1)[0].split()[1:])
        return f"{status}, {body.strip()!r}"
