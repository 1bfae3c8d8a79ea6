"""Isolation and permissions: namespaces keep clients apart; the default spec drops privileges."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libcontainerd import oci
from libcontainerd.client import AsyncClient
from libcontainerd.errors import NotFound
from libcontainerd.stdio import CollectOutput
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID, EventInfo, EventType, Status

from .containers import TEST_NAMESPACE, ContainerFactory, NewClient, eventually, output_of

pytestmark = pytest.mark.integration

OTHER_NAMESPACE = "lcdtest-other"


@pytest.fixture
async def other(new_client: NewClient) -> AsyncIterator[AsyncClient]:
    """A client of another namespace on the same containerd (of the test's kind)."""
    async with new_client(namespace=OTHER_NAMESPACE) as client:
        yield client


async def test_another_namespace_cannot_see_signal_or_delete_a_container(
    client: AsyncClient, containers: ContainerFactory, other: AsyncClient
) -> None:
    container_id = await containers.run()
    for attempt in (
        other.status(container_id),
        other.signal_process(container_id, INIT_PROCESS_ID, "SIGKILL"),
        other.pause(container_id),
        other.delete_task(container_id),
        other.delete(container_id),
    ):
        with pytest.raises(NotFound):
            await attempt
    assert container_id not in [info.id for info in await other.list_containers()]
    assert await client.status(container_id) is Status.RUNNING


async def test_events_of_one_namespace_never_reach_another(
    client: AsyncClient, containers: ContainerFactory, other: AsyncClient
) -> None:
    foreign = other.events()
    mine = client.events()
    container_id = await containers.run(["/bin/true"])
    async with asyncio.timeout(60), mine:
        async for cid, event, _ in mine:
            if cid == container_id and event is EventType.EXIT:
                break
    # Everything the other namespace's stream got by now (it saw the same moments).
    foreign.end()
    leaked = [cid async for cid, _, _ in foreign if cid == container_id]
    assert leaked == []


async def test_another_namespaces_events_never_reach_this_clients_backend_or_events(
    new_client: NewClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The other namespace's name starts with this one's: a filter that matched a
    # prefix (or an unanchored pattern) would let its events in.
    assert OTHER_NAMESPACE.startswith(TEST_NAMESPACE)
    seen: list[tuple[str, EventType]] = []

    class Backend:
        def process_event(self, container_id: str, event: EventType, info: EventInfo) -> None:
            seen.append((container_id, event))

    async with (
        new_client(backend=Backend()) as client,
        new_client(namespace=OTHER_NAMESPACE) as other,
    ):
        mine = ContainerFactory(client, tmp_path_factory.mktemp("mine"))
        theirs = ContainerFactory(other, tmp_path_factory.mktemp("theirs"))
        try:
            iterated = client.events()
            foreign = await theirs.run(["/bin/sh", "-c", "exit 9"])
            async with asyncio.timeout(60):
                await other.wait(foreign)
            # Then one of this namespace's own: once its exit has come to both, the
            # foreign container's events (published before) would have come too.
            own = await mine.run(["/bin/true"])
            got: list[tuple[str, EventType]] = []
            async with asyncio.timeout(60), iterated:
                async for cid, event, _ in iterated:
                    got.append((cid, event))
                    if cid == own and event is EventType.EXIT:
                        break
            await eventually(lambda: (own, EventType.EXIT) in seen, "the backend's own exit")
        finally:
            await theirs.cleanup()
            await mine.cleanup()
    for delivered in (got, list(seen)):
        assert [cid for cid, _ in delivered if cid != own] == [], delivered
        assert [event for _, event in delivered] == [
            EventType.CREATE,
            EventType.START,
            EventType.EXIT,
        ]


async def test_the_default_spec_really_drops_privileges(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    script = (
        "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status;"
        " echo kcore=$(head -c 16 /proc/kcore 2>/dev/null | wc -c);"
        " touch /sys/x 2>/dev/null && echo sys=writable || echo sys=read-only;"
        " grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"
    )
    container_id = await containers.create(["/bin/sh", "-c", script])
    output = CollectOutput()
    await client.start(container_id, attach_stdio=output)
    async with asyncio.timeout(60):
        stdout, _ = await output_of(client, output)
        assert (await client.wait(container_id))[0] == 0
    lines = dict(line.split(":", 1) for line in stdout.decode().splitlines() if ":" in line)
    # Docker's 14 default capabilities, and nothing else, in the bounding and effective sets.
    expected = sum(1 << _CAPABILITY_NUMBERS[name] for name in oci.DEFAULT_CAPABILITIES)
    assert int(lines["CapEff"].strip(), 16) == expected
    assert int(lines["CapBnd"].strip(), 16) == expected
    assert lines["NoNewPrivs"].strip() == "1"
    text = stdout.decode()
    assert "kcore=0" in text  # masked: nothing of the kernel's memory can be read
    assert "sys=read-only" in text
    assert text.strip().endswith("ro")


_CAPABILITY_NUMBERS = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_RAW": 13,
    "CAP_SYS_CHROOT": 18,
    "CAP_MKNOD": 27,
    "CAP_AUDIT_WRITE": 29,
    "CAP_SETFCAP": 31,
}


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(Path(path).lstat().st_mode)


async def test_the_managed_daemons_files_are_not_world_accessible(
    supervisor: Supervisor,
) -> None:
    for path in (supervisor.state_dir, supervisor.root_dir):
        # Others may enter them (a user-namespaced container's root reaches its bundle
        # through them, as containerd's own /run/containerd), never list or write them.
        assert _mode(path) & 0o007 in (0, 0o001), path
        assert _mode(path) & 0o070 in (0, 0o010), path
    assert _mode(supervisor.runc_root) & 0o077 == 0
    for path in (supervisor.address, supervisor.config_path):
        assert _mode(path) & 0o007 == 0, path


async def test_fifo_directories_are_private_to_the_client(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    from libcontainerd.stdio import discard

    container_id = await containers.create()
    await client.start(container_id, attach_stdio=discard)
    folder = Path(client.fifo_dir) / TEST_NAMESPACE / container_id
    for path in (Path(client.fifo_dir), folder.parent, folder):
        assert _mode(path) == 0o700, path
    for fifo in folder.iterdir():
        assert stat.S_ISFIFO(fifo.lstat().st_mode)
        assert _mode(fifo) & 0o077 == 0, fifo
