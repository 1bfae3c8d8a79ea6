"""A realistic image (Debian minbase, five layers, see minbase_image) imports, runs and goes away.

Real parts: containerd's content store, Diff service and overlayfs
snapshotter; the image layered by ``umoci`` and written by ``skopeo``; ``ctr``
of the same containerd as the independent reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libcontainerd import oci
from libcontainerd.client import AsyncClient
from libcontainerd.errors import ImageNotFound, LibcontainerdError, Unavailable
from libcontainerd.images import Image, Progress
from libcontainerd.stdio import CollectOutput
from libcontainerd.supervisor import Supervisor

from . import minbase_image
from .containers import remove_container
from .minbase_image import DOCKER_NAME, LAYERS, OCI_NAME, Minbase

pytestmark = pytest.mark.integration

# The image shared by the running tests, and the namespace where imports come and go.
SHARED_NAMESPACE = "lcdminbase"
NAMESPACE = "lcdminbase2"
# How long into the second layer's unpack containerd is killed.
KILL_AFTER = 0.15
CLEAN: dict[str, list[str]] = {
    "images": [],
    "content": [],
    "ingests": [],
    "snapshots": [],
    "leases": [],
}


@pytest.fixture(scope="session")
def minbase(tmp_path_factory: pytest.TempPathFactory) -> Minbase:
    return minbase_image.build(tmp_path_factory.mktemp("minbase"))


class Ctr:
    """``ctr`` of the version under test, on the suite's containerd, in one namespace."""

    def __init__(self, containerd: str, address: str, namespace: str) -> None:
        self.binary = Path(containerd).with_name("ctr")
        self.address = address
        self.namespace = namespace

    def rows(self, *args: str) -> list[str]:
        done = subprocess.run(
            [str(self.binary), "-a", self.address, "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed: {done.stderr or done.stdout}")
        return [line for line in done.stdout.splitlines()[1:] if line.strip()]

    def leftovers(self) -> dict[str, list[str]]:
        return {
            "images": self.rows("images", "ls"),
            "content": self.rows("content", "ls"),
            "ingests": self.rows("content", "active"),
            "snapshots": self.rows("snapshots", "ls"),
            "leases": self.rows("leases", "ls"),
        }


async def _empty(client: AsyncClient) -> None:
    for info in await client.list_containers():
        await remove_container(client, info.id)
    for image in await client.images.list():
        with contextlib.suppress(ImageNotFound):
            await client.images.remove(image.name)


@pytest.fixture(scope="module")
async def shared(supervisor: Supervisor, minbase: Minbase) -> AsyncIterator[Image]:
    """The OCI archive imported once per containerd version, removed after the module."""
    async with AsyncClient(supervisor.address, SHARED_NAMESPACE) as client:
        await _empty(client)
        (image,) = await client.images.import_archive(minbase.oci)
        try:
            yield image
        finally:
            await _empty(client)


@pytest.fixture
async def runner(supervisor: Supervisor, shared: Image) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(supervisor.address, SHARED_NAMESPACE) as client:
        yield client


@pytest.fixture
async def client(supervisor: Supervisor, containerd: str) -> AsyncIterator[AsyncClient]:
    """A client in a namespace emptied before and after the test."""
    async with AsyncClient(supervisor.address, NAMESPACE) as opened:
        await _empty(opened)
        try:
            yield opened
        finally:
            await _empty(opened)


@pytest.fixture
def ctr(supervisor: Supervisor, containerd: str) -> Ctr:
    return Ctr(containerd, supervisor.address, NAMESPACE)


_serial = iter(range(1_000_000))


async def run(
    client: AsyncClient, image: Image, script: str | None = None, *options: oci.SpecOption
) -> tuple[int, str]:
    """Run a container of the image (its own command, or ``sh -c script``); code and stdout."""
    container_id = f"minbase-{next(_serial)}"
    args = None if script is None else ["/bin/sh", "-c", script]
    await client.create(container_id, oci.image_spec(image, *options, args=args), image=image)
    try:
        output = CollectOutput()
        await client.start(container_id, attach_stdio=output)
        async with asyncio.timeout(60):
            code, _ = await client.wait(container_id)
            stdout, stderr = await output
    finally:
        await remove_container(client, container_id)
    assert not stderr, stderr
    return code, stdout.decode()


# --- import --------------------------------------------------------------------------


async def test_docker_save_and_oci_archives_unpack_to_the_same_chain_and_pass_ctr_check(
    client: AsyncClient, minbase: Minbase, ctr: Ctr
) -> None:
    (from_docker,) = await client.images.import_archive(minbase.docker)
    (from_oci,) = await client.images.import_archive(minbase.oci)
    assert (from_docker.name, from_oci.name) == (DOCKER_NAME, OCI_NAME)
    assert len(from_docker.layers) == len(from_oci.layers) == LAYERS
    # Uncompressed layers (docker save) and gzip ones (umoci) have the same diff IDs.
    assert from_docker.diff_ids == from_oci.diff_ids
    assert from_docker.chain_id == from_oci.chain_id
    checked = {row.split()[0]: row for row in await asyncio.to_thread(ctr.rows, "images", "check")}
    for image in (from_docker, from_oci):
        assert "complete" in checked[image.name]
        assert image.digest in checked[image.name]
    committed = [row.split()[-1] for row in await asyncio.to_thread(ctr.rows, "snapshots", "ls")]
    assert committed == ["Committed"] * LAYERS  # one per chain ID, shared by both images


async def test_running_and_removing_the_image_leaves_nothing_behind(
    client: AsyncClient, minbase: Minbase, ctr: Ctr
) -> None:
    (image,) = await client.images.import_archive(minbase.docker)
    code, output = await run(client, image, "cat /etc/debian_version")
    assert code == 0
    assert output.startswith("12.")
    await client.images.remove(image.name)
    assert await asyncio.to_thread(ctr.leftovers) == CLEAN


# --- running -------------------------------------------------------------------------


async def test_its_common_tools_run(runner: AsyncClient, shared: Image) -> None:
    script = "ls /; id -u; apt-get --version | head -n 1; dpkg -l | grep -c '^ii'"
    code, output = await run(runner, shared, script)
    assert code == 0, output
    *listing, uid, apt, packages = output.splitlines()
    assert {"bin", "etc", "home", "opt", "usr", "var"} <= set(listing)
    assert uid == "1000"
    assert apt.startswith("apt 2.6")
    assert int(packages) > 80  # minbase's required and important packages


async def test_the_named_user_resolves_from_the_images_own_passwd_and_group(
    runner: AsyncClient, shared: Image
) -> None:
    assert shared.config.user == minbase_image.USER
    code, output = await run(runner, shared, "id; pwd; cat note")
    assert code == 0
    ids, cwd, note = output.splitlines()
    assert ids.startswith("uid=1000(app) gid=1000(app) groups=")
    assert "50(staff)" in ids
    assert (cwd, note) == (minbase_image.HOME, "app's own file")


async def test_hard_links_stay_hard_links(runner: AsyncClient, shared: Image) -> None:
    code, output = await run(
        runner, shared, "stat -c '%i %h' /usr/bin/gunzip /usr/bin/uncompress /usr/bin/perl"
    )
    assert code == 0
    gunzip, uncompress, perl = (line.split() for line in output.splitlines())
    assert gunzip == uncompress
    assert gunzip[1] == perl[1] == "2"


async def test_setuid_bits_are_kept(runner: AsyncClient, shared: Image) -> None:
    code, output = await run(runner, shared, "stat -c '%A %u %n' /usr/bin/su /usr/bin/passwd")
    assert code == 0
    assert output.splitlines() == ["-rwsr-xr-x 0 /usr/bin/su", "-rwsr-xr-x 0 /usr/bin/passwd"]


async def test_a_whiteout_hides_the_file_and_an_opaque_folder_the_lower_files(
    runner: AsyncClient, shared: Image
) -> None:
    code, output = await run(
        runner, shared, "test -e /etc/motd || echo motd is gone; ls /opt/app/conf"
    )
    assert code == 0
    assert output.splitlines() == ["motd is gone", "new.conf"]


# --- containerd killed during an unpack ----------------------------------------------


async def answering(client: AsyncClient) -> None:
    """Wait until the client's channel is back (gRPC backs off between reconnects)."""
    while True:
        try:
            await client.version()
            return
        except Unavailable:
            await asyncio.sleep(0.1)


async def test_an_unpack_cut_by_a_containerd_kill_completes_next_time_reusing_committed_layers(
    workdir: Path, containerd: str, minbase: Minbase
) -> None:
    daemon = Supervisor(workdir / "s", workdir / "r", containerd=containerd)
    await daemon.start()
    try:
        async with AsyncClient(daemon.address, NAMESPACE) as client:
            ctr = Ctr(containerd, daemon.address, NAMESPACE)
            unpacking: list[str] = []

            def progress(step: Progress) -> None:
                if step.phase == "unpack" and step.done == 0:
                    unpacking.append(step.item)

            async def kill_in_second_layer() -> None:
                while len(unpacking) < 2:
                    await asyncio.sleep(0.005)
                await asyncio.sleep(KILL_AFTER)  # inside the second layer's Diff.Apply
                os.kill(daemon.pid or 0, signal.SIGKILL)

            restarts = daemon.restarts
            killer = asyncio.get_running_loop().create_task(kill_in_second_layer())
            with pytest.raises(LibcontainerdError):
                await client.images.import_archive(minbase.docker, progress=progress)
            await killer
            async with asyncio.timeout(30):
                await daemon.wait_ready(min_restarts=restarts + 1)
                await answering(client)
            assert await client.images.list() == []  # nothing half-registered
            committed = [
                row.split()[0]
                for row in await asyncio.to_thread(ctr.rows, "snapshots", "ls")
                if row.split()[-1] == "Committed"
            ]
            # The first layer at least (more on a fast disk), committed before the kill,
            # held by the import's lease, which containerd's death left unended.
            assert 1 <= len(committed) < LAYERS
            assert len(await asyncio.to_thread(ctr.rows, "leases", "ls")) == 1

            steps: list[Progress] = []
            (image,) = await client.images.import_archive(minbase.docker, progress=steps.append)
            unpacked = [step.item for step in steps if step.phase == "unpack" and step.done == 0]
            # The committed layers are reused, not applied again.
            assert unpacked == [layer.digest for layer in image.layers[len(committed) :]]
            code, output = await run(client, image, "cat /etc/debian_version")
            assert (code, output[:3]) == (0, "12.")
            await client.images.remove(image.name)
            # The unended lease went with this client's next success: nothing is left.
            assert await asyncio.to_thread(ctr.leftovers) == CLEAN
    finally:
        await daemon.stop()
