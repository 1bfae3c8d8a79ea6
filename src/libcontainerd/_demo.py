"""The main job: one real container through the contract, on an embedded containerd.

Started by ``lcd demo`` (and ``./run demo``). It uses the embedded daemon if
one is already running, otherwise starts its own and stops it again, and it
removes its container and root filesystem whatever happens.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

from rich.console import Console

from . import oci, rootfs
from .client import DEFAULT_ADDRESS, AsyncClient
from .errors import LibcontainerdError, Unavailable
from .supervisor import Supervisor
from .types import INIT_PROCESS_ID

T = TypeVar("T")

DEMO_ROOT = Path("/var/lib/libcontainerd/demo")

# The container counts, and says goodbye with exit code 3 when asked to stop.
DEMO_SCRIPT = "trap 'exit 3' TERM; i=0; while true; do i=$((i+1)); sleep 0.1; done"


class _Steps:
    """Prints each step with what it returned and how long it took."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def run(self, name: str, action: Awaitable[T], show: str = "") -> T:
        started = time.perf_counter()
        result = await action
        elapsed = (time.perf_counter() - started) * 1000
        shown = show.format(result=result) if show else ""
        self.console.print(
            f"[green]✓[/green] [bold]{name:<16}[/bold] {shown:<44} [dim]{elapsed:7.1f} ms[/dim]"
        )
        return result


@contextlib.asynccontextmanager
async def _embedded_daemon(console: Console) -> AsyncIterator[str]:
    """The embedded containerd: the running one if it answers, else one we start and stop."""
    try:
        async with AsyncClient(DEFAULT_ADDRESS) as probe:
            version = await probe.version()
        console.print(
            f"containerd {version.version}: using the embedded daemon at {DEFAULT_ADDRESS}"
        )
        yield DEFAULT_ADDRESS
        return
    except Unavailable:
        pass
    console.print("starting the embedded containerd ...")
    async with Supervisor() as supervisor:
        console.print(
            f"containerd {supervisor.version}: started, pid {supervisor.pid},"
            f" socket {supervisor.address}, log {supervisor.log_path}"
        )
        yield supervisor.address
        console.print(f"stopping the embedded containerd (pid {supervisor.pid})")
    console.print("containerd stopped; nothing left running")


async def run_demo(console: Console) -> int:
    """Walk one container through the contract; returns the process exit status."""
    container_id = f"lcd-demo-{secrets.token_hex(3)}"
    workdir = DEMO_ROOT / container_id
    async with _embedded_daemon(console) as address, AsyncClient(address) as client:
        steps = _Steps(console)
        try:
            root = rootfs.busybox(workdir / "rootfs")
            console.print(f"busybox root filesystem at {root}")
            spec = oci.default_spec(["/bin/sh", "-c", DEMO_SCRIPT], root, oci.with_pids_limit(64))
            await steps.run("create", client.create(container_id, spec), container_id)
            await steps.run("start", client.start(container_id), "pid {result}")
            await steps.run("status", client.status(container_id), "{result}")
            await steps.run("list_pids", client.list_pids(container_id), "{result}")
            await steps.run("pause", client.pause(container_id))
            await steps.run("status", client.status(container_id), "{result}")
            await steps.run("resume", client.resume(container_id))
            await steps.run("status", client.status(container_id), "{result}")
            await steps.run(
                "update_resources",
                client.update_resources(container_id, {"pids": {"limit": 32}}),
                "pids limit 32",
            )
            await steps.run(
                "signal_process",
                client.signal_process(container_id, INIT_PROCESS_ID, "SIGTERM"),
                "SIGTERM",
            )
            exit_code, _ = await steps.run(
                "wait", client.wait(container_id), "exit code {result[0]}"
            )
            await steps.run(
                "delete_task",
                client.delete_task(container_id),
                "exit code {result[0]} at {result[1]:%H:%M:%S.%f}",
            )
            await steps.run("delete", client.delete(container_id), container_id)
        except LibcontainerdError as error:
            console.print(f"[red]error:[/red] {error}")
            await _remove_quietly(client, container_id)
            return 1
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(f"[bold]done[/bold]: the container said goodbye with exit code {exit_code}")
    return 0


async def _remove_quietly(client: AsyncClient, container_id: str) -> None:
    """Leave nothing behind after a failed step."""
    with contextlib.suppress(LibcontainerdError):
        await client.signal_process(container_id, INIT_PROCESS_ID, "SIGKILL")
        await client.wait(container_id)
    with contextlib.suppress(LibcontainerdError):
        await client.delete_task(container_id)
    with contextlib.suppress(LibcontainerdError):
        await client.delete(container_id)
