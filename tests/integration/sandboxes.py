"""What the user-namespace and sandbox tests share: a client whose mapped roots reach their
bundles, emptied afterwards (and the fixtures that make it and the image archives), and the
host's range table as one namespace sees it."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from libcontainerd._userns import RangeTable
from libcontainerd.client import AsyncClient
from libcontainerd.supervisor import Supervisor

from . import image_archives
from .containers import make_client, remove_container
from .image_archives import Archives


def ranges(client: AsyncClient) -> dict[int, str]:
    """The client's namespace's entries in the host's range table: first host id -> container id."""
    return {
        base: entry["container_id"]
        for base, entry in RangeTable().entries().items()
        if entry["namespace"] == client.namespace and entry["address"] == client.address
    }


@contextlib.asynccontextmanager
async def sandbox_client(
    supervisor: Supervisor, namespace: str, *, ranges_freed: bool = True
) -> AsyncIterator[AsyncClient]:
    """An AsyncClient in ``namespace``; its containers and images removed afterwards.

    The suite's daemon lives in a 0700 folder (mkdtemp): it is opened to
    passers-by so that a mapped root reaches its bundle, as through
    /run/containerd (0711) on a host. With ``ranges_freed``, the namespace
    must hold no automatic range at the end.
    """
    state = Path(supervisor.state_dir)
    for folder in (state, state.parent):
        folder.chmod(folder.stat().st_mode | 0o111)
    async with make_client("async", supervisor.address, namespace) as opened:
        try:
            yield opened
        finally:
            for info in await opened.list_containers():
                await remove_container(opened, info.id)
            for image in await opened.images.list():
                await opened.images.remove(image.name)
            if ranges_freed:
                assert ranges(opened) == {}, "automatic ranges left behind"


def snapshot_rows(supervisor: Supervisor, containerd: str, namespace: str) -> list[list[str]]:
    """The namespace's snapshots (overlayfs) as containerd's own ctr lists them, a row each."""
    ctr = str(Path(containerd).with_name("ctr"))
    done = subprocess.run(
        [ctr, "-a", supervisor.address, "-n", namespace, "snapshots", "ls"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [line.split() for line in done.stdout.splitlines()[1:] if line.strip()]


def client_fixture(namespace: str) -> Any:
    """A test file's ``client`` fixture: :func:`sandbox_client` in ``namespace``."""

    @pytest.fixture
    async def client(supervisor: Supervisor) -> AsyncIterator[AsyncClient]:
        async with sandbox_client(supervisor, namespace) as opened:
            yield opened

    return client


def archives_fixture(folder: str) -> Any:
    """A test file's ``archives`` fixture: the test images' archives, built once per module."""

    @pytest.fixture(scope="module")
    def archives(tmp_path_factory: pytest.TempPathFactory) -> Archives:
        image_archives.tools()
        return image_archives.build(tmp_path_factory.mktemp(folder))

    return archives
