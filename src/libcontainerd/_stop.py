"""Stopping and removing a container, as ``docker stop`` and ``docker rm`` do.

:func:`stop` sends the container's stop signal (its image's, recorded as a
container label, else SIGTERM), waits up to a grace period for the exit,
then sends SIGKILL. :func:`remove` deletes the task and the container
whatever state they are in, refusing a running one unless forced. Both are
sequences of the contract's own calls; the client passes its ``wait``.
"""

from __future__ import annotations

import contextlib
import signal as signals
from collections.abc import Awaitable, Callable
from typing import Final

from . import _typeurl
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._session import Session
from ._signals import parse_signal
from ._tasks import TaskLifecycle
from .errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound
from .types import ExitStatus, Status

__all__ = ["STOP_SIGNAL_ANNOTATION", "STOP_SIGNAL_LABEL", "check_grace", "remove", "stop"]

STOP_SIGNAL_LABEL: Final = "io.containerd.image.config.stop-signal"
"""The container label containerd's image options record an image's stop signal in."""
STOP_SIGNAL_ANNOTATION: Final = "org.opencontainers.image.stopSignal"
"""The OCI annotation for the same, read from the spec when no label says it."""

Wait = Callable[[str, float | None], Awaitable[ExitStatus]]

# States in which the container's processes may still run (or be frozen).
_LIVE: Final = frozenset({Status.RUNNING, Status.PAUSED, Status.PAUSING, Status.UNKNOWN})


def check_grace(timeout: float | None, name: str = "timeout") -> float | None:
    """A number of seconds >= 0 (or None); InvalidArgument otherwise, before anything is sent."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise InvalidArgument(f"{name} must be a number of seconds >= 0 or None, got {timeout!r}")
    return float(timeout)


async def stop_signal(session: Session, container_id: str) -> int:
    """The container's stop signal: its label, else its spec's annotation, else SIGTERM."""
    container = await session.container(container_id, "stop")
    named = container.labels.get(STOP_SIGNAL_LABEL)
    if not named and container.spec.value:
        with contextlib.suppress(ValueError, AttributeError):
            annotations = _typeurl.unpack_json(container.spec).get("annotations") or {}
            named = annotations.get(STOP_SIGNAL_ANNOTATION)
    if not named:
        return int(signals.SIGTERM)
    try:
        return parse_signal(str(named))
    except InvalidArgument:
        raise InvalidArgument(
            f"container {container_id!r} names an unknown stop signal {named!r}"
            f" (label {STOP_SIGNAL_LABEL})"
        ) from None


async def stop(
    session: Session, wait: Wait, container_id: str, grace: float | None, number: int | None
) -> ExitStatus:
    """Signal, wait up to ``grace`` seconds, then SIGKILL; the init process's exit."""
    if number is None:
        number = await stop_signal(session, container_id)
    state = await session.task_status(container_id, "stop")
    if state is Status.STOPPED:
        return await wait(container_id, None)
    await _kill(session, container_id, number)
    if state in (Status.PAUSED, Status.PAUSING):
        await _thaw(session, container_id)  # a frozen process takes no signal
    if number != signals.SIGKILL:
        try:
            return await wait(container_id, grace)
        except DeadlineExceeded:
            await _kill(session, container_id, int(signals.SIGKILL), everyone=True)
    return await wait(container_id, None)


async def remove(
    session: Session, tasks: TaskLifecycle, wait: Wait, container_id: str, force: bool
) -> None:
    """Delete task and container; a live task is refused without ``force``, killed with it."""
    try:
        state: Status | None = await session.task_status(container_id, "remove")
    except NotFound:
        if not await session.container_exists(container_id):
            raise NotFound(f"cannot remove container {container_id!r}: no such container") from None
        state = None
    if state in _LIVE:
        if not force:
            raise FailedPrecondition(
                f"cannot remove container {container_id!r}: it is {state};"
                " stop it first, or remove it with force=True"
            )
        await _kill(session, container_id, int(signals.SIGKILL), everyone=True)
        if state in (Status.PAUSED, Status.PAUSING):
            await _thaw(session, container_id)
        with contextlib.suppress(NotFound):
            await wait(container_id, None)
    if state is not None:
        with contextlib.suppress(NotFound):
            await tasks.delete_task(container_id)
    await tasks.delete(container_id)


async def _kill(session: Session, container_id: str, number: int, everyone: bool = False) -> None:
    """Tasks.Kill; a process that has exited meanwhile is not an error."""
    with contextlib.suppress(NotFound):
        await session.task_call(
            session.methods.tasks.kill,
            tasks_pb2.KillRequest(container_id=container_id, signal=number, all=everyone),
            container_id,
            "signal",
        )


async def _thaw(session: Session, container_id: str) -> None:
    """Resume a frozen task so the signal just sent is delivered; best effort."""
    with contextlib.suppress(Exception):
        await session.call(
            session.methods.tasks.resume,
            tasks_pb2.ResumeTaskRequest(container_id=container_id),
            f"resume container {container_id!r}",
        )
