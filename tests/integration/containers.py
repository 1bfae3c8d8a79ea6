"""Fixtures for tests that run real containers: a client, and a factory that cleans up.

Loaded as a pytest plugin by this folder's conftest.py.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import oci, rootfs
from libcontainerd.client import AsyncClient
from libcontainerd.errors import LibcontainerdError
from libcontainerd.oci import SpecOption
from libcontainerd.stdio import DirectIO
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID

TEST_NAMESPACE = "lcdtest"
_serial = itertools.count()


@pytest.fixture
async def client(supervisor: Supervisor) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(supervisor.address, namespace=TEST_NAMESPACE) as opened:
        yield opened


async def remove_container(client: AsyncClient, container_id: str) -> None:
    """Kill, reap and delete a container and its task, whatever state they are in."""
    with contextlib.suppress(LibcontainerdError):
        await client.signal_process(container_id, INIT_PROCESS_ID, signal.SIGKILL)
    with contextlib.suppress(LibcontainerdError):
        await client.wait(container_id)
    with contextlib.suppress(LibcontainerdError):
        await client.delete_task(container_id)
    with contextlib.suppress(LibcontainerdError):
        await client.delete(container_id)


class ContainerFactory:
    """Makes uniquely named containers on a fresh busybox rootfs, and removes them all."""

    def __init__(self, client: AsyncClient, workdir: Path) -> None:
        self.client = client
        self.workdir = workdir
        self.created: list[str] = []

    def new_id(self, prefix: str = "t") -> str:
        return f"{prefix}-{os.getpid()}-{next(_serial)}"

    def spec(self, args: Sequence[str], *options: SpecOption, container_id: str) -> dict[str, Any]:
        root = rootfs.busybox(self.workdir / container_id / "rootfs")
        return oci.default_spec(list(args), root, *options)

    async def create(
        self,
        args: Sequence[str] = ("/bin/sleep", "300"),
        *options: SpecOption,
        runtime_options: dict[str, Any] | None = None,
    ) -> str:
        container_id = self.new_id()
        spec = self.spec(args, *options, container_id=container_id)
        self.created.append(container_id)
        await self.client.create(container_id, spec, runtime_options)
        return container_id

    async def run(self, args: Sequence[str] = ("/bin/sleep", "300"), *options: SpecOption) -> str:
        container_id = await self.create(args, *options)
        await self.client.start(container_id)
        return container_id

    async def cleanup(self) -> None:
        for container_id in self.created:
            await remove_container(self.client, container_id)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
async def containers(
    client: AsyncClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ContainerFactory]:
    factory = ContainerFactory(client, tmp_path_factory.mktemp("containers"))
    try:
        yield factory
    finally:
        await factory.cleanup()


ProcessAlive = Callable[[int], bool]


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class Capture:
    """A StdioCallback that keeps the DirectIO, for a test to drive the streams itself."""

    def __init__(self) -> None:
        self.calls = 0
        self._io: DirectIO | None = None

    def __call__(self, io: DirectIO) -> None:
        self.calls += 1
        self._io = io

    @property
    def io(self) -> DirectIO:
        assert self._io is not None, "the callback was not called"
        return self._io


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))
