"""Pulls by the daemon itself (containerd's Transfer service), cross-checked against this client's.

containerd 2.x's Transfer service is used; 1.6 has none and 1.7's is
experimental (it does not read hosts_dir): on both, ``transfer=True`` is
NotImplemented and the default pull is this client's.
What the daemon pulls must be what this client pulls (digests, chain IDs,
the blobs' GC labels, the snapshots), and must run. Which of the two talked
to the registry is read off the User-Agent of the requests a loopback proxy
saw (``containerd/...`` or httpx's).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

import httpx
import pytest

from libcontainerd.client import AsyncClient
from libcontainerd.errors import DeadlineExceeded, ImageNotFound, InvalidArgument, NotImplemented
from libcontainerd.images import Credentials, Progress, _registry
from libcontainerd.supervisor import Supervisor

from .image_archives import EXPECTED_OUTPUT, OCI_NAME, Archives
from .registries import Faults, Proxy, Registry
from .test_images import (  # noqa: F401 - archives, client, ctr: fixtures
    CLEAN,
    NAMESPACE,
    Ctr,
    archives,
    client,
    ctr,
    delete_container,
    images,
    run_image,
)
from .test_registry import registry  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.integration,
    pytest.mark.async_only(reason="the daemon does the pull; the twin only delegates the call"),
]


async def has_transfer(client: AsyncClient) -> bool:
    """Whether this pass's containerd's Transfer service is used (2.x)."""
    return not (await client.version()).version.lstrip("v").startswith("1.")


def fetched_by(faults: Faults, part: str) -> set[str]:
    """Who sent the requests whose path holds ``part``: "daemon" or "client"."""
    return {
        "daemon" if headers.get("User-Agent", "").startswith("containerd/") else "client"
        for seen, headers in zip(faults.seen, faults.headers, strict=True)
        if part in seen
    }


def forget(faults: Faults) -> None:
    """Start the proxy's record of requests afresh."""
    faults.seen.clear()
    faults.headers.clear()


async def pushed(client: AsyncClient, archives: Archives, registry: Registry, path: str) -> str:
    service = images(client)
    await service.import_archive(archives.oci)
    name = f"{registry.host}/{path}"
    await service.push(OCI_NAME, name, hosts_dir=registry.hosts_dir())
    await service.remove(OCI_NAME)
    return name


async def test_the_daemons_pull_is_the_image_this_client_pulls(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr
) -> None:
    service = images(client)
    name = await pushed(client, archives, registry, "transfer/app:1")
    hosts = registry.hosts_dir()

    def content() -> dict[str, set[str]]:
        rows = [row.split() for row in ctr.rows("content", "ls")]
        return {row[0]: set(row[-1].split(",")) for row in rows}

    ours = await service.pull(name, hosts_dir=hosts, transfer=False)
    our_content = await asyncio.to_thread(content)
    our_snapshots = sorted(ctr.keys("snapshots", "ls"))
    await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN
    steps: list[Progress] = []
    if not await has_transfer(client):
        with pytest.raises(NotImplemented):
            await service.pull(name, hosts_dir=hosts, transfer=True, progress=steps.append)
        assert steps == []
        assert await asyncio.to_thread(ctr.leftovers) == CLEAN
        return
    theirs = await service.pull(name, hosts_dir=hosts, transfer=True, progress=steps.append)
    assert (theirs.name, theirs.digest, theirs.chain_id) == (name, ours.digest, ours.chain_id)
    assert theirs.diff_ids == ours.diff_ids
    assert await asyncio.to_thread(content) == our_content
    assert sorted(ctr.keys("snapshots", "ls")) == our_snapshots
    assert ctr.rows("leases", "ls") == []  # the pull's lease ended; the image holds it all
    layers = {layer.digest: layer.size for layer in theirs.layers}
    for phase in ("download", "unpack"):
        finished = {s.item for s in steps if s.phase == phase and s.done == layers.get(s.item)}
        assert finished == set(layers), phase
    code, output, container_id = await run_image(client, theirs)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    await delete_container(client, container_id)
    await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


async def test_the_default_pull_is_the_daemons_only_when_it_helps(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr
) -> None:
    service = images(client)
    name = await pushed(client, archives, registry, "default/app:1")
    daemon = await has_transfer(client)
    with Proxy(registry.port, Faults()) as proxy:
        hosts = registry.hosts_dir(port=proxy.port)
        # Not here yet, anonymous: the daemon fetches and unpacks (where it can).
        first = await service.pull(name, hosts_dir=hosts)
        assert first.complete
        assert fetched_by(proxy.faults, "/blobs/") == {"daemon" if daemon else "client"}
        # Here already: this client checks the manifest, and fetches nothing.
        forget(proxy.faults)
        again = await service.pull(name, hosts_dir=hosts)
        assert again.digest == first.digest
        assert fetched_by(proxy.faults, "/manifests/") == {"client"}
        assert fetched_by(proxy.faults, "/blobs/") == set()
        # Without unpacking it is this client's pull.
        await service.remove(name)
        forget(proxy.faults)
        await service.pull(name, hosts_dir=hosts, unpack=False)
        assert fetched_by(proxy.faults, "/blobs/") == {"client"}
    await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


async def test_an_unknown_tag_is_image_not_found_whoever_pulls(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr
) -> None:
    service = images(client)
    name = await pushed(client, archives, registry, "missing/app:1")
    missing = name.replace(":1", ":2")
    hosts = registry.hosts_dir()
    # The default: should the daemon fail, this client's pull takes over; its error.
    with pytest.raises(ImageNotFound) as refused:
        await service.pull(missing, hosts_dir=hosts)
    assert registry.host in str(refused.value)
    assert "/v2/missing/app/manifests/2" in str(refused.value)
    # A ready registry token cannot be handed to the daemon: refused before anything is sent.
    with pytest.raises(InvalidArgument, match="registry token"):
        await service.pull(
            missing, hosts_dir=hosts, auth=Credentials(registry_token="ready"), transfer=True
        )
    if await has_transfer(client):
        with pytest.raises(ImageNotFound) as refused:
            await service.pull(missing, hosts_dir=hosts, transfer=True)
        assert "Transfer" in str(refused.value)
        assert registry.host in str(refused.value)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


async def test_a_progress_callback_that_raises_fails_the_daemons_pull_leaving_nothing(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr
) -> None:
    if not await has_transfer(client):
        pytest.skip("no Transfer service used before containerd 2 (the first test checks that)")
    service = images(client)
    name = await pushed(client, archives, registry, "raising/app:1")

    def progress(step: Progress) -> None:
        raise RuntimeError(f"the caller's callback broke at {step.phase}")

    with pytest.raises(RuntimeError, match="the caller's callback broke"):
        await service.pull(name, hosts_dir=registry.hosts_dir(), progress=progress, transfer=True)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


async def test_a_daemons_pull_that_hears_nothing_is_cancelled_and_resumed_later(
    client: AsyncClient,
    archives: Archives,
    registry: Registry,
    ctr: Ctr,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not await has_transfer(client):
        pytest.skip("no Transfer service used before containerd 2 (the first test checks that)")
    service = images(client)
    name = await pushed(client, archives, registry, "silent/app:1")
    monkeypatch.setattr(_registry, "TIMEOUT", httpx.Timeout(1.0, connect=5.0))
    faults = Faults(match="/blobs/", stall=4.0)
    with Proxy(registry.port, faults) as proxy, pytest.raises(DeadlineExceeded) as hung:
        await service.pull(name, hosts_dir=registry.hosts_dir(port=proxy.port), transfer=True)
    assert "no progress from containerd for 1 s" in str(hung.value)
    assert name in str(hung.value)
    # A cut, not a refusal: its lease is kept for the next pull, which ends it.
    assert len(ctr.rows("leases", "ls")) == 1
    monkeypatch.undo()
    pulled = await service.pull(name, hosts_dir=registry.hosts_dir(), transfer=True)
    assert pulled.complete
    assert ctr.rows("leases", "ls") == []
    assert ctr.rows("content", "active") == []
    await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


async def test_lcd_pull_transfer_and_no_transfer_pick_who_pulls(
    client: AsyncClient, archives: Archives, registry: Registry, ctr: Ctr, supervisor: Supervisor
) -> None:
    from .lcd import LCD

    service = images(client)
    name = await pushed(client, archives, registry, "cli/app:1")
    daemon = await has_transfer(client)

    def lcd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LCD, "--address", supervisor.address, "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    with Proxy(registry.port, Faults()) as proxy:
        hosts = str(registry.hosts_dir(port=proxy.port))
        done = await asyncio.to_thread(lcd, "pull", "--no-transfer", "--hosts-dir", hosts, name)
        assert done.returncode == 0, done.stderr
        assert fetched_by(proxy.faults, "/blobs/") == {"client"}
        await service.remove(name)
        forget(proxy.faults)
        done = await asyncio.to_thread(lcd, "pull", "--transfer", "--hosts-dir", hosts, name)
        if daemon:
            assert done.returncode == 0, done.stderr
            assert name in done.stdout
            assert fetched_by(proxy.faults, "/blobs/") == {"daemon"}
        else:  # refused, by what the daemon lacks, before any request
            assert done.returncode != 0
            assert "Transfer service" in done.stderr
            assert "Traceback" not in done.stderr
            assert proxy.faults.seen == []
    with contextlib.suppress(ImageNotFound):
        await service.remove(name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN
