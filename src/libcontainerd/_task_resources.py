"""A task's resources: metrics samples and streams, resource updates, CRIU checkpoints.

The calls that read or change what a running task uses, each narrowed to the
contract's errors (a stopped task, a runtime's refusal, CRIU's reasons). The
client's facade checks the arguments it can before anything is sent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from . import _typeurl, checkpoint, errors, metrics
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from ._session import Session
from ._userns import open_checkpoint
from .errors import FailedPrecondition, InvalidArgument, LibcontainerdError, NotFound
from .types import ExitStatus, Stats, Status

__all__ = ["checkpoint_task", "stats", "stats_stream", "update"]


async def stats(session: Session, container_id: str) -> Stats:
    """One metrics sample (see AsyncClient.stats for the errors)."""
    reply = await session.call(
        session.methods.tasks.metrics,
        # Quoted, so that the id is one literal value whatever characters it holds.
        tasks_pb2.MetricsRequest(filters=[f'id=="{container_id}"']),
        f"read the metrics of container {container_id!r}",
    )
    for metric in reply.metrics:
        if metric.id == container_id:
            return metrics.decode(metric)
    # containerd leaves out a task whose metrics it cannot read: say why.
    state = await session.task_status(container_id, "read the metrics of")
    if state is Status.STOPPED:
        raise FailedPrecondition(f"container {container_id!r} has no metrics: its task has stopped")
    raise LibcontainerdError(
        f"containerd reported no metrics for container {container_id!r} (its task is {state})"
    )


async def stats_stream(
    session: Session,
    container_id: str,
    interval: float,
    wait: Callable[[str], Awaitable[ExitStatus]],
) -> AsyncGenerator[Stats, None]:
    """Samples until the task exits; ``wait`` (the client's) ends it at the exit."""
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        raise InvalidArgument(f"interval must be a positive number of seconds, got {interval!r}")
    exited: asyncio.Future[ExitStatus] | None = None
    first = True
    try:
        while True:
            try:
                sample = await stats(session, container_id)
            except FailedPrecondition:
                return  # stopped: the task exited
            except NotFound:
                if first:
                    raise
                return  # the task was deleted after it exited
            if exited is None:
                exited = asyncio.ensure_future(wait(container_id))
            first = False
            yield sample
            await asyncio.wait([exited], timeout=interval)
            if exited.done():
                if exited.cancelled() or exited.exception() is None:
                    return
                # The wait itself failed (containerd restarting, ...): poll instead.
                exited = None
                await asyncio.sleep(interval)
    finally:
        if exited is not None and not exited.done():
            exited.cancel()
            await asyncio.wait([exited])


async def update(session: Session, container_id: str, resources: Mapping[str, Any]) -> None:
    """Tasks.Update with ``linux.resources`` (checked by the caller); a refusal: InvalidArgument."""
    try:
        await session.task_call(
            session.methods.tasks.update,
            tasks_pb2.UpdateTaskRequest(
                container_id=container_id,
                resources=_typeurl.pack_json(_typeurl.OCI_LINUX_RESOURCES, dict(resources)),
            ),
            container_id,
            "update the resources of",
        )
    except LibcontainerdError as error:
        # containerd passes the runtime's refusal on with code Unknown.
        if type(error) is not LibcontainerdError:
            raise
        raise InvalidArgument(
            f"cannot update the resources of container {container_id!r}: the runtime"
            f" refused them: {errors.runtime_reason(error.details)}",
            code=error.code,
            details=error.details,
        ) from None


async def checkpoint_task(
    session: Session, container_id: str, checkpoint_dir: str | os.PathLike[str], exit: bool
) -> None:
    """Dump the task's CRIU images into ``checkpoint_dir``, written atomically."""
    target = checkpoint.target_directory(checkpoint_dir)
    container = await session.container(container_id, "checkpoint")
    runtime = _typeurl.unpack(container.runtime.options, runc_pb2.Options) or runc_pb2.Options()
    await checkpoint.find_criu(runtime.criu_path)
    with checkpoint.written_atomically(target) as partial:
        try:
            await session.task_call(
                session.methods.tasks.checkpoint,
                tasks_pb2.CheckpointTaskRequest(
                    container_id=container_id,
                    options=checkpoint.checkpoint_options(exit, partial),
                ),
                container_id,
                "checkpoint",
            )
        except LibcontainerdError as error:
            if type(error) is not LibcontainerdError:
                raise
            state = await session.task_status(container_id, "get the status of")
            if state is Status.STOPPED:
                raise FailedPrecondition(
                    f"cannot checkpoint container {container_id!r}: its task has stopped"
                ) from None
            raise checkpoint.checkpoint_failure(container_id, error) from None
        try:
            spec = _typeurl.unpack_json(container.spec) if container.spec.value else {}
        except ValueError:
            spec = {}
        if isinstance(spec, dict):
            # CRIU restores a user-namespaced task as the namespace's root: let it read.
            await asyncio.to_thread(open_checkpoint, partial, spec)
