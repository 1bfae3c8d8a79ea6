"""Images on containerd's own stores: archives we did not write, imported, run, checked by ctr.

The archives come from umoci and skopeo (image_archives.py): an OCI layout
converted to ``oci-archive:`` and ``docker-archive:``. ``ctr`` of the same
containerd version is the independent reader and writer: it must find what
we import complete and run it, we must run what it imports, and after an
image is removed and its containers deleted, its content store, snapshotter
and leases must hold nothing of it. Every test runs in the namespace
``lcdimages``, which it leaves empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import oci, rootfs
from libcontainerd.client import AsyncClient
from libcontainerd.errors import (
    DigestMismatch,
    ImageNotFound,
    InvalidArgument,
    InvalidImage,
    LibcontainerdError,
    NotFound,
    UnsafeArchive,
    UnsupportedMediaType,
)
from libcontainerd.images import Image, ImageService, Progress, host_platform
from libcontainerd.images._containers import STOP_SIGNAL_LABEL
from libcontainerd.stdio import CollectOutput
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import Status

from . import image_archives
from .containers import NewClient, ThreadedClient, remove_container
from .image_archives import DOCKER_NAME, EXPECTED_OUTPUT, OCI_NAME, STOP_SIGNAL, Archives, run
from .recorder import record_calls

pytestmark = pytest.mark.integration

NAMESPACE = "lcdimages"


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Archives:
    return image_archives.build(tmp_path_factory.mktemp("image-archives"))


class Ctr:
    """The ``ctr`` of the suite's containerd, on its socket, in the images' namespace."""

    def __init__(self, binary: Path, address: str) -> None:
        self.binary = binary
        self.address = address

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(self.binary), "-a", self.address, "-n", NAMESPACE, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed: {done.stderr or done.stdout}")
        return done.stdout

    def rows(self, *args: str) -> list[str]:
        """The lines of a listing, without its header."""
        return [line for line in self(*args).splitlines()[1:] if line.strip()]

    def keys(self, *args: str) -> list[str]:
        """The first column of a listing (digests, names, keys)."""
        return [row.split()[0] for row in self.rows(*args)]

    def leftovers(self) -> dict[str, list[str]]:
        """What the namespace still holds, by kind (all empty when it is clean)."""
        return {
            "images": self.rows("images", "ls"),
            "content": self.rows("content", "ls"),
            "ingests": self.rows("content", "active"),
            "snapshots": self.rows("snapshots", "ls"),
            "leases": self.rows("leases", "ls"),
        }


CLEAN: dict[str, list[str]] = {
    "images": [],
    "content": [],
    "ingests": [],
    "snapshots": [],
    "leases": [],
}


@pytest.fixture
def ctr(supervisor: Supervisor, containerd: str) -> Ctr:
    binary = Path(containerd).with_name("ctr")
    if not binary.is_file():
        pytest.fail(f"no ctr beside {containerd}")
    return Ctr(binary, supervisor.address)


@pytest.fixture
async def client(new_client: NewClient, ctr: Ctr) -> AsyncIterator[AsyncClient]:
    """A client in the images' namespace, which is emptied before and after the test."""
    async with new_client(namespace=NAMESPACE) as opened:
        await _empty(opened, ctr)
        try:
            yield opened
        finally:
            await _empty(opened, ctr)


async def _empty(client: AsyncClient, ctr: Ctr) -> None:
    for info in await client.list_containers():
        await remove_container(client, info.id)
    service = images(client)
    for image in await service.list():
        with contextlib.suppress(ImageNotFound):
            await service.remove(image.name)
    for lease in ctr.rows("leases", "ls"):
        ctr("leases", "rm", "--sync", lease.split()[0], check=False)


def images(client: AsyncClient) -> ImageService:
    """The client's image service; the blocking one driven from worker threads."""
    if isinstance(client, ThreadedClient):
        return ThreadedClient(client._client.images)
    return client.images


_serial = iter(range(1_000_000))


def new_id() -> str:
    return f"img-{next(_serial)}"


async def run_image(
    client: AsyncClient, image: str | Image, *options: oci.SpecOption, args: list[str] | None = None
) -> tuple[int, bytes, str]:
    """Create, start and wait for a container of the image; its exit code, output and id."""
    resolved = image if isinstance(image, Image) else await images(client).get(image)
    container_id = new_id()
    await client.create(container_id, oci.image_spec(resolved, *options, args=args), image=image)
    output = CollectOutput()
    await client.start(container_id, attach_stdio=output)
    async with asyncio.timeout(60):
        code, _ = await client.wait(container_id)
        stdout, _ = await output
    return code, stdout, container_id


async def clean_soon(ctr: Ctr) -> None:
    """Wait (bounded) for containerd's scheduled garbage collection to empty the namespace."""
    async with asyncio.timeout(30):
        while (left := await asyncio.to_thread(ctr.leftovers)) != CLEAN:
            await asyncio.sleep(0.2)
    assert left == CLEAN


async def delete_container(client: AsyncClient, container_id: str) -> None:
    await client.delete_task(container_id)
    await client.delete(container_id)


# --- importing and running -----------------------------------------------------------


async def test_an_oci_archive_from_skopeo_runs_as_its_image_config_says(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    imported = await images(client).import_archive(archives.oci)
    assert [image.name for image in imported] == [OCI_NAME]
    image = imported[0]
    assert image.platform == str(host_platform())
    assert len(image.diff_ids) == len(image.layers) == 3
    assert image.config.entrypoint == ("/bin/sh", "-c")
    assert (image.config.user, image.config.working_dir) == ("app", "/app")
    assert image.config.stop_signal == STOP_SIGNAL
    assert image.config.labels == {"org.example.built-by": "umoci"}
    assert "GREETING=hi" in image.config.env
    code, output, container_id = await run_image(client, image)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    listed = {info.id: info for info in await client.list_containers()}[container_id]
    assert listed.image == OCI_NAME
    assert listed.labels[STOP_SIGNAL_LABEL] == STOP_SIGNAL
    # One committed snapshot per layer, named by its chain ID, and the container's.
    snapshots = {row.split()[0]: row.split()[-1] for row in ctr.rows("snapshots", "ls")}
    assert snapshots[image.chain_id] == "Committed"
    assert snapshots[container_id] == "Active"
    await delete_container(client, container_id)
    assert container_id not in {row.split()[0] for row in ctr.rows("snapshots", "ls")}


async def test_zstd_compressed_layers_unpack_and_run(
    client: AsyncClient, archives: Archives
) -> None:
    (image,) = await images(client).import_archive(archives.oci_zstd)
    assert {layer.media_type for layer in image.layers} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    code, output, container_id = await run_image(client, image)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    await delete_container(client, container_id)


@pytest.mark.parametrize("form", ["path", "gzip path", "file object"])
async def test_a_docker_archive_from_skopeo_runs_by_name(
    client: AsyncClient, archives: Archives, form: str
) -> None:
    service = images(client)
    if form == "file object":
        with open(archives.docker_gz, "rb") as stream:  # noqa: ASYNC230 - read by the import
            imported = await service.import_archive(stream)
    else:
        imported = await service.import_archive(
            archives.docker if form == "path" else archives.docker_gz
        )
    assert [image.name for image in imported] == [DOCKER_NAME]
    code, output, container_id = await run_image(client, "lcdtest/app:1")  # normalised
    assert (code, output) == (0, EXPECTED_OUTPUT)
    await delete_container(client, container_id)


async def test_the_callers_arguments_env_and_user_override_the_image(
    client: AsyncClient, archives: Archives
) -> None:
    (image,) = await images(client).import_archive(archives.oci)
    code, output, container_id = await run_image(
        client,
        image,
        oci.with_env({"GREETING": "bye", "EXTRA": "1"}),
        oci.with_username("app:staff"),
        args=['echo "$GREETING $EXTRA"; id -u; id -g; pwd'],
    )
    assert (code, output) == (0, b"bye 1\n1000\n50\n/app\n")
    await delete_container(client, container_id)
    code, output, container_id = await run_image(
        client, image, oci.with_user(0, 0), oci.with_cwd("/"), args=["id -u; pwd"]
    )
    assert (code, output) == (0, b"0\n/\n")
    await delete_container(client, container_id)


async def test_an_unknown_user_name_is_refused_before_any_container_exists(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    (image,) = await images(client).import_archive(archives.oci)
    container_id = new_id()
    spec = oci.image_spec(image, oci.with_username("nobody-here"))
    with pytest.raises(InvalidArgument, match="no user 'nobody-here' in image"):
        await client.create(container_id, spec, image=image)
    assert container_id not in {info.id for info in await client.list_containers()}
    kinds = [row.split()[-1] for row in ctr.rows("snapshots", "ls")]
    assert kinds == ["Committed"] * 3  # the layers only: no container snapshot left
    assert ctr.rows("leases", "ls") == []


async def test_a_user_name_resolves_from_a_root_directory_too(
    client: AsyncClient, tmp_path: Path
) -> None:
    root = await asyncio.to_thread(rootfs.busybox, tmp_path / "rootfs")
    container_id = new_id()
    spec = oci.default_spec(["/bin/id"], root, oci.with_username("nobody"))
    await client.create(container_id, spec)
    output = CollectOutput()
    await client.start(container_id, attach_stdio=output)
    async with asyncio.timeout(60):
        assert (await client.wait(container_id))[0] == 0
        stdout, _ = await output
    assert stdout == b"uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)\n"
    await delete_container(client, container_id)
    with pytest.raises(InvalidArgument, match="no user 'ghost' in the root filesystem"):
        await client.create(
            new_id(), oci.default_spec(["/bin/id"], root, oci.with_username("ghost"))
        )


async def test_create_unpacks_an_image_imported_without_unpacking(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    (image,) = await images(client).import_archive(archives.oci, unpack=False)
    assert ctr.rows("snapshots", "ls") == []
    code, output, container_id = await run_image(client, OCI_NAME)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    assert image.chain_id in {row.split()[0] for row in ctr.rows("snapshots", "ls")}
    await delete_container(client, container_id)


async def test_importing_twice_reuses_what_is_there(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    service = images(client)
    (first,) = await service.import_archive(archives.docker)
    content, snapshots = ctr.keys("content", "ls"), ctr.keys("snapshots", "ls")
    (again,) = await service.import_archive(archives.docker)
    assert again.digest == first.digest
    assert ctr.keys("content", "ls") == content
    assert ctr.keys("snapshots", "ls") == snapshots
    assert ctr.rows("leases", "ls") == []


# --- ctr as the independent reader and writer ----------------------------------------


async def test_ctr_finds_our_import_complete_and_runs_it(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    (image,) = await images(client).import_archive(archives.oci)
    check = next(row for row in ctr.rows("images", "check") if row.split()[0] == OCI_NAME)
    assert "complete" in check
    assert image.digest in check
    output = await asyncio.to_thread(ctr, "run", "--rm", OCI_NAME, new_id())
    assert output.encode() == EXPECTED_OUTPUT
    # ctr run --rm removed its container's snapshot; the image's layers remain.
    kinds = [row.split()[-1] for row in ctr.rows("snapshots", "ls")]
    assert kinds == ["Committed"] * 3


async def test_an_image_ctr_imported_runs_under_us_with_the_same_target_and_chain(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    await asyncio.to_thread(ctr, "images", "import", str(archives.docker))
    theirs = await images(client).get(DOCKER_NAME)
    code, output, container_id = await run_image(client, DOCKER_NAME)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    await delete_container(client, container_id)
    await images(client).remove(DOCKER_NAME)
    # Imported by us, the same archive gives the same image (target and chain ID).
    (ours,) = await images(client).import_archive(archives.docker)
    assert (ours.digest, ours.chain_id) == (theirs.digest, theirs.chain_id)


# --- removal and garbage collection --------------------------------------------------


async def test_removing_the_image_and_deleting_its_container_leaves_nothing(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    service = images(client)
    (image,) = await service.import_archive(archives.docker_gz)
    code, _, container_id = await run_image(client, image)
    assert code == 0
    await delete_container(client, container_id)
    await service.remove(DOCKER_NAME)
    assert ctr.leftovers() == CLEAN
    with pytest.raises(ImageNotFound):
        await service.get(DOCKER_NAME)
    with pytest.raises(ImageNotFound):
        await service.remove(DOCKER_NAME)


async def test_removing_an_image_a_container_runs_keeps_its_snapshot_until_it_is_deleted(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    service = images(client)
    (image,) = await service.import_archive(archives.oci)
    container_id = new_id()
    await client.create(container_id, oci.image_spec(image, args=["sleep 300"]), image=image)
    await client.start(container_id)
    await service.remove(OCI_NAME)
    assert await client.status(container_id) is Status.RUNNING
    snapshots = {row.split()[0] for row in ctr.rows("snapshots", "ls")}
    assert container_id in snapshots  # and the layers below it
    assert image.chain_id in snapshots
    await remove_container(client, container_id)
    await clean_soon(ctr)  # the layers were the container's: collected on containerd's schedule


async def test_tag_list_get_prune_and_usage(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    service = images(client)
    (image,) = await service.import_archive(archives.oci)
    tagged = await service.tag(OCI_NAME, "lcdtest/other:2")
    assert (tagged.name, tagged.digest) == ("docker.io/lcdtest/other:2", image.digest)
    assert [listed.name for listed in await service.list()] == [
        "docker.io/lcdtest/other:2",
        OCI_NAME,
    ]
    usage = await service.usage()
    assert usage.content == image.size
    assert usage.snapshots > 1 << 20  # busybox is in there
    container_id = new_id()
    await client.create(container_id, oci.image_spec(image), image=OCI_NAME)
    assert await service.prune() == ["docker.io/lcdtest/other:2"]  # OCI_NAME is in use
    await client.delete(container_id)
    assert await service.prune() == [OCI_NAME]
    assert await service.usage() == type(usage)(0, 0)
    assert ctr.leftovers() == CLEAN


@pytest.mark.async_only(reason="counts containerd calls by patching AsyncClient's method table")
async def test_get_reads_a_targets_manifest_and_config_once_and_follows_a_retag(
    client: AsyncClient, archives: Archives, ctr: Ctr
) -> None:
    service = images(client)
    (first,) = await service.import_archive(archives.oci)
    (other,) = await service.import_archive(archives.docker)
    assert other.digest != first.digest
    calls = record_calls(client)
    assert await service.get(OCI_NAME) == first
    assert calls == ["images.get", "content.read", "content.read"]  # manifest, config
    calls.clear()
    assert await service.get(OCI_NAME) == first
    assert calls == ["images.get"]  # a digest's manifest and config never change
    await service.tag(other.name, OCI_NAME)  # the name now points at another target
    calls.clear()
    retagged = await service.get(OCI_NAME)
    assert (retagged.digest, retagged.config) == (other.digest, other.config)
    for image in await service.list():
        await service.remove(image.name)
    with pytest.raises(ImageNotFound):
        await service.get(OCI_NAME)
    assert ctr.leftovers() == CLEAN


async def test_a_container_from_an_image_is_restored_and_deleted_by_a_new_client(
    client: AsyncClient, new_client: NewClient, archives: Archives, ctr: Ctr
) -> None:
    (image,) = await images(client).import_archive(archives.oci)
    container_id = new_id()
    await client.create(container_id, oci.image_spec(image, args=["sleep 300"]), image=image)
    await client.start(container_id)
    async with new_client(namespace=NAMESPACE) as other:
        alive, _ = await other.restore(container_id)
        assert alive
        listed = {info.id: info for info in await other.list_containers()}[container_id]
        assert listed.image == OCI_NAME
        await remove_container(other, container_id)  # this client knows nothing of it
    assert container_id not in {row.split()[0] for row in ctr.rows("snapshots", "ls")}


# --- leaks ---------------------------------------------------------------------------

# The size, which CI runs; $LIBCONTAINERD_IMAGE_CYCLES makes a local run shorter.
IMAGE_CYCLES = int(os.environ.get("LIBCONTAINERD_IMAGE_CYCLES", "100"))


def _mounts_mentioning(*needles: str) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line for line in mountinfo if any(needle in line for needle in needles)]


@pytest.mark.async_only(reason="reads the async client's table sizes; the cycle is the same")
@pytest.mark.timeout(60 + 5 * IMAGE_CYCLES)
async def test_cycles_of_import_run_export_remove_leave_nothing_behind(
    client: AsyncClient, archives: Archives, ctr: Ctr, supervisor: Supervisor, tmp_path: Path
) -> None:
    service = images(client)
    exported = tmp_path / "exported.tar"
    for _ in range(IMAGE_CYCLES):
        with open(archives.docker_gz, "rb") as stream:  # noqa: ASYNC230 - read by the import
            (image,) = await service.import_archive(stream)
        code, output, container_id = await run_image(client, image)
        assert (code, output) == (0, EXPECTED_OUTPUT)
        await delete_container(client, container_id)
        await service.export(exported, image.name)
        await service.remove(image.name)
    assert ctr.leftovers() == CLEAN
    assert _mounts_mentioning(str(supervisor.root_dir), "libcontainerd-root-") == []
    assert {
        table: size
        for table, size in client._sizes().items()
        if table in ("container roots", "create leases", "prepared snapshots")
    } == {"container roots": 0, "create leases": 0, "prepared snapshots": 0}


# --- a client killed during an import or an unpack -----------------------------------

BIG_NAME = "example.com/lcdtest/big:1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def big_archive(archives: Archives, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test image with a third layer of 24 MiB that does not compress, as an OCI archive."""
    folder = tmp_path_factory.mktemp("big-image")
    layout = folder / "layout"
    run("cp", "-a", str(archives.layout), str(layout))
    (folder / "big").mkdir()
    (folder / "big" / "noise").write_bytes(os.urandom(24 << 20))
    run("umoci", "insert", "--image", f"{layout}:app", "--tag", "big", str(folder / "big"), "/big")
    archive = folder / "big.tar"
    run("skopeo", "copy", "--quiet", f"oci:{layout}:big", f"oci-archive:{archive}:{BIG_NAME}")
    return archive


async def kill_during(supervisor: Supervisor, archive: Path, phase: str) -> None:
    """Run the killed client until it stops at ``phase``, then SIGKILL it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.killed_image_client",
        supervisor.address,
        NAMESPACE,
        str(archive),
        phase,
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        async with asyncio.timeout(120):
            line = await child.stdout.readline()
        assert line == b"stopped\n", line
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()


def dead_leases(ctr: Ctr) -> list[tuple[str, datetime]]:
    """The leases left, with the expiry their gc.expire label gives them."""
    found = []
    for row in ctr.rows("leases", "ls"):
        lease, labels = row.split()[0], row.split()[-1]
        expire = dict(pair.split("=", 1) for pair in labels.split(","))["containerd.io/gc.expire"]
        found.append((lease, datetime.fromisoformat(expire.replace("Z", "+00:00"))))
    return found


@pytest.mark.async_only(reason="kills a client process of its own; the test's client is async")
@pytest.mark.parametrize("phase", ["read", "unpack"])
async def test_an_import_after_a_killed_one_completes_and_the_dead_lease_holds_the_rest(
    client: AsyncClient, supervisor: Supervisor, big_archive: Path, ctr: Ctr, phase: str
) -> None:
    await kill_during(supervisor, big_archive, phase)
    (lease, expires), *others = dead_leases(ctr)
    assert others == []
    assert lease.startswith("libcontainerd-import-")
    assert expires > datetime.now(UTC)  # a client that never comes back: it expires
    if phase == "read":
        assert ctr.rows("content", "active") != []  # the ingest it was writing
    else:
        committed = [row.split()[0] for row in ctr.rows("snapshots", "ls")]
        assert len(committed) == 1  # the first layer, committed before the kill
    steps: list[Progress] = []
    (image,) = await images(client).import_archive(big_archive, progress=steps.append)
    if phase == "unpack":  # the committed layer is reused, not applied again
        unpacked = [step.item for step in steps if step.phase == "unpack"]
        assert unpacked[0] == image.layers[1].digest
    code, output, container_id = await run_image(client, image)
    assert (code, output) == (0, EXPECTED_OUTPUT)
    await delete_container(client, container_id)
    await images(client).remove(image.name)
    # Ending the dead lease (as its expiry will) leaves nothing.
    ctr("leases", "rm", "--sync", lease)
    assert ctr.leftovers() == CLEAN


# --- bad input -----------------------------------------------------------------------


def _docker_files(archives: Archives) -> list[Any]:
    import tarfile

    entries: list[Any] = []
    with tarfile.open(archives.docker) as tar:
        for member in tar:
            if member.issym():
                entries.append((member.name, "symlink", member.linkname))
            elif member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                entries.append((member.name, extracted.read()))
    return entries


def _with_docker_manifest(archives: Archives, change: Callable[[list[Any]], None]) -> list[Any]:
    entries = _docker_files(archives)
    for position, entry in enumerate(entries):
        if entry[0] == "manifest.json":
            document = json.loads(entry[1])
            change(document)
            entries[position] = ("manifest.json", json.dumps(document).encode())
    return entries


def _altered_blob(archives: Archives, path: Path) -> Path:
    files = image_archives.layout_entries(archives.layout)
    manifest, _ = image_archives.manifest_of(files)
    layer = "blobs/sha256/" + manifest["layers"][1]["digest"].split(":", 1)[1]
    data = bytearray(gzip.decompress(files[layer]))
    data[-1024] ^= 0xFF  # inside the tar's padding: still a valid layer, another digest
    files[layer] = gzip.compress(bytes(data))
    files["index.json"] = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    **json.loads(files["index.json"])["manifests"][0],
                    "annotations": {"org.opencontainers.image.ref.name": OCI_NAME},
                }
            ],
        }
    ).encode()
    return image_archives.write_tar(path, list(files.items()))


def _truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _set_layer_type(index: int, media_type: str) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        manifest["layers"][index]["mediaType"] = media_type

    return change


def _wrong_diff_id(config: dict[str, Any]) -> None:
    config["rootfs"]["diff_ids"][1] = "sha256:" + "0" * 64


BAD_ARCHIVES: dict[str, tuple[Callable[[Archives, Path], Path], type[Exception], str]] = {
    "entry with ..": (
        lambda a, p: image_archives.write_tar(p, [("../evil", b"x")]),
        UnsafeArchive,
        "leaves the archive",
    ),
    "absolute entry": (
        lambda a, p: image_archives.write_tar(p, [("/etc/evil", b"x")]),
        UnsafeArchive,
        "absolute path",
    ),
    "symbolic link out of the archive": (
        lambda a, p: image_archives.write_tar(
            p, [*_docker_files(a), ("evil/layer.tar", "symlink", "../../etc/passwd")]
        ),
        UnsafeArchive,
        "points outside the archive",
    ),
    "manifest naming a file outside": (
        lambda a, p: image_archives.write_tar(
            p, _with_docker_manifest(a, lambda m: m[0]["Layers"].__setitem__(0, "../x.tar"))
        ),
        UnsafeArchive,
        "leaves the archive",
    ),
    "manifest naming a missing file": (
        lambda a, p: image_archives.write_tar(
            p, _with_docker_manifest(a, lambda m: m[0]["Layers"].__setitem__(0, "nothere.tar"))
        ),
        InvalidImage,
        "not in the archive",
    ),
    "truncated archive": (
        lambda a, p: _truncated(a.oci, p),
        InvalidImage,
        "truncated",
    ),
    "truncated gzip archive": (
        lambda a, p: _truncated(a.docker_gz, p),
        InvalidImage,
        "truncated",
    ),
    "not an archive": (
        lambda a, p: (p.write_bytes(b"this is not a tar file at all\n" * 40), p)[1],
        InvalidImage,
        "not an image archive",
    ),
    "blob not matching its digest": (_altered_blob, DigestMismatch, "its content's digest is"),
    "layer not matching its diff ID": (
        lambda a, p: image_archives.rewritten_oci(a.layout, p, config=_wrong_diff_id),
        DigestMismatch,
        "not to the diff ID",
    ),
    "unknown layer media type": (
        lambda a, p: image_archives.rewritten_oci(
            a.layout, p, manifest=_set_layer_type(0, "application/x-unknown")
        ),
        UnsupportedMediaType,
        "unknown media type",
    ),
    "encrypted layer": (
        lambda a, p: image_archives.rewritten_oci(
            a.layout,
            p,
            manifest=_set_layer_type(1, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"),
        ),
        UnsupportedMediaType,
        "encrypted",
    ),
    "schema 1 manifest": (
        lambda a, p: image_archives.rewritten_oci(
            a.layout,
            p,
            index_entry=lambda entry: entry.__setitem__(
                "mediaType", "application/vnd.docker.distribution.manifest.v1+prettyjws"
            ),
        ),
        UnsupportedMediaType,
        "schema 1",
    ),
    "config that is not an image config": (
        lambda a, p: image_archives.rewritten_oci(
            a.layout,
            p,
            manifest=lambda m: m["config"].__setitem__(
                "mediaType", "application/vnd.cncf.helm.config.v1+json"
            ),
        ),
        UnsupportedMediaType,
        "not a container image",
    ),
    "manifest over 4 MiB": (
        lambda a, p: image_archives.rewritten_oci(
            a.layout, p, manifest=lambda m: m.__setitem__("annotations", {"x": "y" * (5 << 20)})
        ),
        InvalidImage,
        "over the 4 MiB",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
async def test_a_bad_archive_raises_its_error_and_registers_nothing(
    client: AsyncClient, archives: Archives, ctr: Ctr, tmp_path: Path, case: str
) -> None:
    make, error, message = BAD_ARCHIVES[case]
    archive = make(archives, tmp_path / "bad.tar")
    with pytest.raises(LibcontainerdError, match=message) as raised:
        await images(client).import_archive(archive)
    assert type(raised.value) is error
    assert await images(client).list() == []
    assert ctr.leftovers() == CLEAN  # what the import had written is collected already


async def test_an_archive_without_names_needs_name_and_takes_it(
    client: AsyncClient, archives: Archives, tmp_path: Path
) -> None:
    archive = image_archives.rewritten_oci(archives.layout, tmp_path / "unnamed.tar", name="1")
    service = images(client)
    with pytest.raises(InvalidArgument, match="pass name="):
        await service.import_archive(archive)
    (image,) = await service.import_archive(archive, name="lcdtest/named")
    assert image.name == "docker.io/lcdtest/named:latest"


# --- export --------------------------------------------------------------------------


def _skopeo(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


async def test_an_export_is_read_by_skopeo_ctr_and_ourselves(
    client: AsyncClient, archives: Archives, ctr: Ctr, tmp_path: Path
) -> None:
    service = images(client)
    (image,) = await service.import_archive(archives.docker)
    await service.tag(DOCKER_NAME, "lcdtest/again:2")
    both, one = tmp_path / "both.tar", tmp_path / "one.tar"
    steps: list[str] = []
    await service.export(both, [DOCKER_NAME, "lcdtest/again:2"])
    await service.export(one, DOCKER_NAME, progress=lambda step: steps.append(step.phase))
    assert set(steps) == {"write"}
    left = sorted(await asyncio.to_thread(os.listdir, tmp_path))
    assert left == ["both.tar", "one.tar"]  # no partial files beside them
    # skopeo reads it as an OCI archive and as a docker archive, with our digests.
    oci_view = await asyncio.to_thread(_skopeo, "inspect", f"oci-archive:{one}")
    docker_view = await asyncio.to_thread(_skopeo, "inspect", f"docker-archive:{both}")
    assert oci_view["Digest"] == image.digest
    assert oci_view["Layers"] == docker_view["Layers"] == list(image.diff_ids)
    # ctr imports it (both names) and runs it.
    for name in (DOCKER_NAME, "docker.io/lcdtest/again:2"):
        await service.remove(name)
    await asyncio.to_thread(ctr, "images", "import", str(both))
    assert sorted(ctr.keys("images", "ls")) == ["docker.io/lcdtest/again:2", DOCKER_NAME]
    output = await asyncio.to_thread(ctr, "run", "--rm", "docker.io/lcdtest/again:2", new_id())
    assert output.encode() == EXPECTED_OUTPUT
    # And so do we, to the same image.
    for name in ctr.keys("images", "ls"):
        await service.remove(name)
    reimported = await service.import_archive(both)
    assert [(i.name, i.digest) for i in reimported] == [
        (DOCKER_NAME, image.digest),
        ("docker.io/lcdtest/again:2", image.digest),
    ]


async def test_an_export_to_a_file_object_and_of_a_missing_image(
    client: AsyncClient, archives: Archives, tmp_path: Path
) -> None:
    service = images(client)
    await service.import_archive(archives.oci)
    target = tmp_path / "streamed.tar"
    with open(target, "wb") as stream:  # noqa: ASYNC230 - written by the export
        await service.export(stream, [OCI_NAME])
    await service.remove(OCI_NAME)
    (again,) = await service.import_archive(target)
    assert again.name == OCI_NAME
    with pytest.raises(ImageNotFound):
        await service.export(tmp_path / "missing.tar", ["lcdtest/missing"])
    assert not (tmp_path / "missing.tar").exists()


async def test_an_export_of_a_multi_platform_image_carries_the_platform_imported(
    client: AsyncClient, archives: Archives, tmp_path: Path
) -> None:
    # As containerd's importer does, an import keeps one platform's content: this
    # machine's, or the one asked for; an export writes that platform's manifest.
    service = images(client)
    archive = image_archives.two_platforms(archives.layout, tmp_path / "two.tar", "linux/s390x")
    for platform in (None, "linux/s390x"):
        (image,) = await service.import_archive(archive, platform=platform, unpack=False)
        assert image.media_type == "application/vnd.oci.image.index.v1+json"
        assert image.platform == (platform or str(host_platform()))
        target = tmp_path / f"{image.platform.replace('/', '-')}.tar"
        await service.export(target, OCI_NAME, platform=platform)
        exported = image_archives.layout_entries(await asyncio.to_thread(_untar, target))
        manifest, _ = image_archives.manifest_of(exported)
        assert image.config_descriptor is not None
        assert manifest["config"]["digest"] == image.config_descriptor.digest
        config_path = "blobs/sha256/" + manifest["config"]["digest"].split(":", 1)[1]
        config = json.loads(exported[config_path])
        assert f"{config['os']}/{config['architecture']}" == image.platform
        await service.remove(OCI_NAME)
    await service.import_archive(archive, unpack=False)
    with pytest.raises(NotFound, match="linux/arm"):
        await service.export(tmp_path / "none.tar", OCI_NAME, platform="linux/arm")


def _untar(archive: Path) -> Path:
    import tarfile

    folder = archive.with_suffix("")
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder


# --- lcd -----------------------------------------------------------------------------


@pytest.mark.async_only(reason="runs the lcd command, whichever client the fixture is")
async def test_lcd_imports_lists_tags_exports_and_removes_images(
    client: AsyncClient, archives: Archives, supervisor: Supervisor, tmp_path: Path
) -> None:
    from .lcd import LCD

    def lcd(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            [LCD, "--address", supervisor.address, "--namespace", NAMESPACE, *args],
            input=stdin,
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done

    assert lcd("import", str(archives.oci)).stdout == f"Loaded image: {OCI_NAME}\n".encode()
    loaded = lcd("load", "-", stdin=archives.docker_gz.read_bytes())
    assert loaded.stdout == f"Loaded image: {DOCKER_NAME}\n".encode()
    assert lcd("tag", "lcdtest/app:1", "lcdtest/copy").stdout == b"docker.io/lcdtest/copy:latest\n"
    assert lcd("images", "-q").stdout.decode().split() == [
        "docker.io/lcdtest/app:1",
        "docker.io/lcdtest/copy:latest",
        OCI_NAME,
    ]
    listed = json.loads(lcd("images", "--json").stdout)
    assert {entry["name"]: entry["platform"] for entry in listed}[OCI_NAME] == str(host_platform())
    (inspected,) = json.loads(lcd("image", "inspect", OCI_NAME).stdout)
    assert inspected["config"]["user"] == "app"
    archive = lcd("save", "lcdtest/copy").stdout  # to stdout (not a terminal here)
    (tmp_path / "saved.tar").write_bytes(archive)
    view = await asyncio.to_thread(_skopeo, "inspect", f"docker-archive:{tmp_path / 'saved.tar'}")
    assert view["Layers"] == inspected["diff_ids"]
    usage = json.loads(lcd("system", "df", "--json").stdout)
    assert usage["images"] == 3
    assert usage["content"] > 0
    assert lcd("rmi", "lcdtest/copy").stdout == b"Untagged: docker.io/lcdtest/copy:latest\n"
    assert lcd("image", "prune").stdout.decode().split("\n")[:-1] == [
        f"Deleted: {DOCKER_NAME}",
        f"Deleted: {OCI_NAME}",
    ]
    assert lcd("images", "-q").stdout == b""


@pytest.mark.async_only(reason="runs the lcd command, whichever client the fixture is")
async def test_lcd_runs_an_image_as_docker_run_does(
    client: AsyncClient, archives: Archives, supervisor: Supervisor, ctr: Ctr
) -> None:
    from .lcd import LCD

    def lcd(*args: str) -> str:
        done = subprocess.run(
            [LCD, "--address", supervisor.address, "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    await images(client).import_archive(archives.oci)
    name = "example.com/lcdtest/app:1"
    assert (await asyncio.to_thread(lcd, "run", "--rm", name)).encode() == EXPECTED_OUTPUT
    overridden = await asyncio.to_thread(
        lcd, "run", "--rm", "-e", "GREETING=yo", "-u", "app:staff", "-w", "/", name,
        'echo "$GREETING"; id -u; id -g; pwd',
    )  # fmt: skip
    assert overridden == "yo\n1000\n50\n/\n"
    entry = await asyncio.to_thread(lcd, "run", "--rm", "--entrypoint", "/bin/echo", name, "hi")
    assert entry == "hi\n"
    busybox = await asyncio.to_thread(lcd, "run", "--rm", "--", "echo", "still busybox")
    assert busybox == "still busybox\n"
    assert await client.list_containers() == []
    assert [row.split()[-1] for row in ctr.rows("snapshots", "ls")] == ["Committed"] * 3
