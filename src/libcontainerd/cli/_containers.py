"""What several commands do to a container that exists: read its task's state, make way for
a new task, wait for a process in the foreground, keep its exit, remove it with what lcd made
for it.

Shared by run/create/exec, the lifecycle commands, ``lcd logs`` and ``lcd restore``.
"""

from __future__ import annotations

import contextlib
import shutil
from datetime import datetime
from typing import Any

from ..client import AsyncClient
from ..errors import FailedPrecondition, NotFound
from ..types import Status
from ._app import Settings
from ._signal_forwarder import SignalForwarder
from ._stdio import Stdio

__all__ = [
    "ALIVE",
    "EXITED_AT_LABEL",
    "EXIT_CODE_LABEL",
    "REAP_TIMEOUT",
    "delete_and_record_exit",
    "has_terminal",
    "in_foreground",
    "make_way_for_a_task",
    "recorded_exit",
    "remove_container",
    "task_state",
]

# Where lcd keeps the exit of a container whose task it deleted (run in the foreground,
# start -a, stop): what `lcd ps -a` and `lcd inspect` show once no task says it.
EXIT_CODE_LABEL = "io.libcontainerd.lcd.exit-code"
EXITED_AT_LABEL = "io.libcontainerd.lcd.exited-at"

ALIVE = (Status.RUNNING, Status.PAUSED, Status.PAUSING, Status.CREATED, Status.UNKNOWN)
# How long rm -f and stop wait for a killed container to be reaped.
REAP_TIMEOUT = 30.0


async def task_state(client: AsyncClient, container_id: str) -> Status | None:
    """The task's status; None when the container has no task. Raises NotFound without one."""
    try:
        return await client.status(container_id)
    except NotFound as error:
        # status() says which is missing (it costs a Containers.Get only on failure).
        if "no such container" in str(error):
            raise NotFound(f"no such container: {container_id!r}") from None
        return None


async def make_way_for_a_task(client: AsyncClient, container_id: str) -> None:
    """Delete the container's stopped task, refuse a live one (FailedPrecondition); NotFound."""
    state = await task_state(client, container_id)
    if state is Status.STOPPED:
        await client.delete_task(container_id)
    elif state is not None:
        raise FailedPrecondition(f"container {container_id!r} is already {state}")


def has_terminal(spec: dict[str, Any]) -> bool:
    return bool(spec.get("process", {}).get("terminal", False))


async def in_foreground(
    client: AsyncClient, forwarder: SignalForwarder, stdio: Stdio, container_id: str
) -> int:
    """Forward signals to a started process, wait for its exit and the end of its output.

    Returns its exit status as a process's (at most 255).
    """
    forwarder.forward_to(container_id)
    exit_code, _ = await client.wait(container_id, forwarder.process_id)
    await forwarder.drain()
    await stdio.finish()
    return min(exit_code, 255)


async def delete_and_record_exit(client: AsyncClient, container_id: str) -> None:
    """Delete the stopped task (its shim goes) and keep its exit in the container's labels."""
    try:
        status = await client.delete_task(container_id)
    except NotFound:
        return
    exited_at = status.exited_at.isoformat() if status.exited_at is not None else ""
    with contextlib.suppress(NotFound):
        await client.set_labels(
            container_id, {EXIT_CODE_LABEL: str(status.exit_code), EXITED_AT_LABEL: exited_at}
        )


def recorded_exit(labels: dict[str, str]) -> tuple[int, datetime | None] | None:
    """The exit lcd recorded for a container without a task, or None."""
    code = labels.get(EXIT_CODE_LABEL, "")
    if not code.lstrip("-").isdigit():
        return None
    moment = None
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(labels.get(EXITED_AT_LABEL, ""))
    return int(code), moment


async def remove_container(
    client: AsyncClient, settings: Settings, container_id: str, force: bool
) -> None:
    """Remove the container (:meth:`AsyncClient.remove`: with ``force`` whatever its state),
    and lcd's rootfs and log for it."""
    rootfs_dir = settings.rootfs_dir(container_id)
    log_path = settings.log_path(container_id)
    try:
        await client.remove(container_id, force=force)
    except NotFound:
        if not rootfs_dir.is_dir():
            raise NotFound(f"no such container: {container_id!r}") from None
        # Left behind by an interrupted run: nothing else to remove.
    except FailedPrecondition:
        state = await task_state(client, container_id)
        raise FailedPrecondition(
            f"container {container_id!r} is {state}: stop it first, or use 'lcd rm -f'"
        ) from None
    shutil.rmtree(rootfs_dir, ignore_errors=True)
    log_path.unlink(missing_ok=True)
