"""A container's own labels: given at create, changed by set_labels, reported by the listing."""

from __future__ import annotations

import pytest

from libcontainerd.client import AsyncClient
from libcontainerd.errors import InvalidArgument, NotFound

from .containers import ContainerFactory

pytestmark = pytest.mark.integration


async def _labels(client: AsyncClient, container_id: str) -> dict[str, str]:
    listing = {info.id: info for info in await client.list_containers()}
    return listing[container_id].labels


async def test_create_records_the_labels_given(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = containers.new_id()
    spec = containers.spec(["true"], container_id=container_id)
    containers.created.append(container_id)
    await client.create(container_id, spec, labels={"tier": "web", "owner": "me"})
    assert await _labels(client, container_id) == {"tier": "web", "owner": "me"}


async def test_set_labels_changes_adds_and_removes_only_those_given(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = containers.new_id()
    spec = containers.spec(["true"], container_id=container_id)
    containers.created.append(container_id)
    await client.create(container_id, spec, labels={"a": "1", "b": "2"})
    labels = await client.set_labels(container_id, {"a": "10", "c": "3", "b": ""})
    assert labels == {"a": "10", "c": "3"}
    assert await _labels(client, container_id) == labels
    assert (await client.spec(container_id))["process"]["args"] == ["true"]  # spec untouched
    assert await client.set_labels(container_id, {}) == labels


async def test_bad_labels_are_refused_before_anything_is_sent(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = containers.new_id()
    spec = containers.spec(["true"], container_id=container_id)
    with pytest.raises(InvalidArgument, match="empty value"):
        await client.create(container_id, spec, labels={"a": ""})
    with pytest.raises(InvalidArgument, match="exceed 4096 bytes"):
        await client.create(container_id, spec, labels={"a": "x" * 5000})
    assert container_id not in {info.id for info in await client.list_containers()}
    with pytest.raises(NotFound, match="no such container"):
        await client.set_labels(container_id, {"a": "b"})


async def test_the_listing_carries_the_specs_command(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["sleep", "300"])
    listing = {info.id: info for info in await client.list_containers()}
    assert listing[container_id].command == ("sleep", "300")
