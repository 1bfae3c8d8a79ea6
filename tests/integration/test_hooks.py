"""The hook points of a container's life, where images and networks plug in.

A :class:`ContainerHook` runs before Containers.Create (and may change the
spec and labels that are sent), before Tasks.Create (and may add to the
request), before Containers.Delete (with containerd's record) and after it;
a create that fails is undone. The hooks are internal (capabilities of the
library register them), so these tests reach the client's task room.
"""

from __future__ import annotations

import pytest

from libcontainerd._api.containerd.api.services.containers.v1 import containers_pb2
from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
from libcontainerd._tasks import ContainerHook, NewContainer
from libcontainerd.client import AsyncClient
from libcontainerd.errors import AlreadyExists, FailedPrecondition, NotFound
from libcontainerd.stdio import CollectOutput

from .containers import ContainerFactory

pytestmark = [
    pytest.mark.integration,
    pytest.mark.async_only(reason="hooks are registered on AsyncClient's task room, internally"),
]

LABEL = "test.libcontainerd/hooked"


class RecordingHook(ContainerHook):
    """Records each step, labels new containers and sets an environment variable."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []
        self.refuse_task = False

    async def before_create(self, container: NewContainer) -> None:
        self.steps.append(("before_create", container.id))
        container.labels[LABEL] = "yes"
        container.spec["process"]["env"].append("HOOKED=1")

    async def undo_create(self, container: NewContainer) -> None:
        self.steps.append(("undo_create", container.id))

    async def before_task_create(
        self, container_id: str, request: tasks_pb2.CreateTaskRequest
    ) -> None:
        self.steps.append(("before_task_create", container_id))
        if self.refuse_task:
            raise FailedPrecondition("the hook refuses this task")

    async def before_delete(self, container: containers_pb2.Container) -> None:
        self.steps.append(("before_delete", container.labels.get(LABEL, "")))

    async def after_delete(self, container_id: str) -> None:
        self.steps.append(("after_delete", container_id))


@pytest.fixture
def hook(client: AsyncClient) -> RecordingHook:
    recording = RecordingHook()
    client._tasks.hooks.append(recording)
    return recording


async def test_hooks_run_around_create_start_and_delete_in_order(
    client: AsyncClient, containers: ContainerFactory, hook: RecordingHook
) -> None:
    container_id = await containers.create(["/bin/sh", "-c", "echo $HOOKED"])
    listed = {info.id: info for info in await client.list_containers()}
    assert listed[container_id].labels[LABEL] == "yes"  # what before_create set was sent
    output = CollectOutput()
    await client.start(container_id, attach_stdio=output)
    assert (await client.wait(container_id))[0] == 0
    assert (await output)[0] == b"1\n"  # ... and the spec change too
    await client.delete_task(container_id)
    await client.delete(container_id)
    assert hook.steps == [
        ("before_create", container_id),
        ("before_task_create", container_id),
        ("before_delete", "yes"),
        ("after_delete", container_id),
    ]


async def test_a_failed_create_is_undone_by_the_hooks_that_ran(
    client: AsyncClient, containers: ContainerFactory, hook: RecordingHook
) -> None:
    container_id = await containers.create()
    with pytest.raises(AlreadyExists):
        await client.create(container_id, containers.spec(["/bin/true"], container_id="again"))
    assert hook.steps == [
        ("before_create", container_id),
        ("before_create", container_id),
        ("undo_create", container_id),
    ]


async def test_a_hook_that_refuses_a_task_stops_its_creation(
    client: AsyncClient, containers: ContainerFactory, hook: RecordingHook
) -> None:
    container_id = await containers.create(["/bin/true"])
    hook.refuse_task = True
    with pytest.raises(FailedPrecondition, match="refuses"):
        await client.start(container_id)
    hook.refuse_task = False
    with pytest.raises(NotFound, match="no task"):
        await client.status(container_id)
    await client.start(container_id)  # nothing was left half made
    assert (await client.wait(container_id))[0] == 0
