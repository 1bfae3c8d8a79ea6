"""User-namespaced containers checkpointed and restored by CRIU, on a real containerd and runc.

One with given maps on a busybox root chowned to them, one made by
``oci.with_sandbox()`` (an automatic range) on the suite's small image,
whose snapshot is remapped to the range. Each counts in a shell variable
(memory CRIU must restore), through an fd opened before the checkpoint (a
file CRIU must reopen), and, in the sandbox, in its tmpfs ``/tmp`` (whose
contents CRIU carries over); the restored process must run as the same host
uid, count on, and keep its range until the container is deleted.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from libcontainerd import oci, rootfs
from libcontainerd._userns import RANGE_LABEL, RANGE_SIZE
from libcontainerd.client import AsyncClient
from libcontainerd.errors import InvalidArgument, NotFound
from libcontainerd.supervisor import Supervisor

from .. import figures
from .containers import checkpoint_and_restore, eventually, remove_container
from .image_archives import Archives
from .sandboxes import archives_fixture, client_fixture, ranges, snapshot_rows

pytestmark = pytest.mark.integration

NAMESPACE = "lcdsandboxcr"

# Counts in a shell variable; checks that /tmp still holds the last value (a tmpfs of
# the sandbox: CRIU dumps its contents) and says so in /out/errors when it does not;
# publishes each value in /out/n and writes it through fd 3, opened once before any
# checkpoint.
COUNTER = (
    "exec 3>>/out/log; i=0;"
    " while true; do i=$((i+1));"
    ' test "$(cat /tmp/n 2>/dev/null || echo 0)" = $((i-1)) || echo "tmp lost at $i" >>/out/errors;'
    " echo $i >/tmp/n; echo $i >/out/n.tmp; mv /out/n.tmp /out/n; echo $i >&3;"
    " sleep 0.02; done"
)


class Counter:
    """The counting container's bind-mounted folder, which its mapped uid may write."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        folder.chmod(0o777)
        self.folder = folder

    def value(self) -> int:
        path = self.folder / "n"
        return int(path.read_text().strip() or 0) if path.exists() else 0

    def logged(self) -> list[int]:
        return [int(line) for line in (self.folder / "log").read_text().split()]

    def errors(self) -> str:
        path = self.folder / "errors"
        return path.read_text() if path.exists() else ""

    async def reaches(self, value: int) -> None:
        await eventually(lambda: self.value() >= value, f"the counter to reach {value}")


client = client_fixture(NAMESPACE)
archives = archives_fixture("sandbox-checkpoint-archives")


def host_uids(pid: int) -> list[int]:
    """The real, effective, saved and filesystem uids of a process, as the host sees them."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(field) for field in line.split()[1:]]
    raise AssertionError(f"no Uid line in /proc/{pid}/status")


def uid_map(pid: int) -> list[list[int]]:
    """The uid map of the process's user namespace."""
    text = Path(f"/proc/{pid}/uid_map").read_text()
    return [[int(field) for field in line.split()] for line in text.splitlines()]


def snapshots(supervisor: Supervisor, containerd: str) -> list[str]:
    """The keys of this namespace's snapshots (overlayfs), by containerd's own ctr."""
    return [row[0] for row in snapshot_rows(supervisor, containerd, NAMESPACE)]


async def counts_on(counter: Counter, at_checkpoint: int) -> None:
    """The count went on from its checkpointed value, unbroken, through the same fd."""
    await counter.reaches(at_checkpoint + 10)
    await eventually(lambda: len(counter.logged()) >= at_checkpoint + 10, "ten more in the log")
    logged = counter.logged()
    assert logged == list(range(1, len(logged) + 1))
    assert counter.errors() == ""


async def test_a_container_with_given_maps_restores_as_the_same_host_uid_and_counts_on(
    client: AsyncClient, place: Path, criu: str, supervisor: Supervisor
) -> None:
    container_id = f"maps-{os.getpid()}"
    counter = Counter(place / "out")
    root = rootfs.busybox(place / container_id)
    spec = oci.default_spec(
        ["/bin/sh", "-c", COUNTER],
        root,
        oci.with_user_namespace([(0, 300000, 65536)], [(0, 400000, 65536)], chown_root=True),
        oci.with_bind_mount(counter.folder, "/out"),
    )
    await client.create(container_id, spec)
    pid = await client.start(container_id)
    await counter.reaches(5)
    assert host_uids(pid) == [300000] * 4
    started = time.monotonic()
    at_checkpoint, restored = await checkpoint_and_restore(
        client, container_id, place / "checkpoint", counter.value
    )
    took = time.monotonic() - started
    assert host_uids(restored) == [300000] * 4
    assert uid_map(restored) == [[0, 300000, 65536]]
    await counts_on(counter, at_checkpoint)
    made = (counter.folder / "n").stat()
    assert (made.st_uid, made.st_gid) == (300000, 400000)  # written by the restored process
    await remove_container(client, container_id)
    figures.record(
        "user namespaces",
        f"containerd {supervisor.version}: checkpoint + restore, given maps",
        f"{took * 1000:.0f} ms",
    )


async def test_a_sandbox_on_an_image_restores_in_its_range_and_gives_it_back_on_delete(
    client: AsyncClient,
    place: Path,
    criu: str,
    archives: Archives,
    supervisor: Supervisor,
    containerd: str,
) -> None:
    [image] = await client.images.import_archive(archives.oci)
    container_id = f"sandbox-{os.getpid()}"
    counter = Counter(place / "out")
    spec = oci.image_spec(
        image, oci.with_sandbox(), oci.with_bind_mount(counter.folder, "/out"), args=[COUNTER]
    )
    await client.create(container_id, spec, image=image)
    label = (await client.set_labels(container_id, {}))[RANGE_LABEL]
    base = int(label.split(":")[0])
    pid = await client.start(container_id)
    await counter.reaches(5)
    user = base + 1000  # the image's user app (1000) in the range
    assert host_uids(pid) == [user] * 4
    started = time.monotonic()
    at_checkpoint, restored = await checkpoint_and_restore(
        client, container_id, place / "checkpoint", counter.value
    )
    took = time.monotonic() - started
    assert host_uids(restored) == [user] * 4
    assert uid_map(restored) == [[0, base, RANGE_SIZE]]
    await counts_on(counter, at_checkpoint)
    # The range stays the container's across the restore, and goes with it.
    assert (await client.set_labels(container_id, {}))[RANGE_LABEL] == label
    assert ranges(client) == {base: container_id}
    await remove_container(client, container_id)
    assert ranges(client) == {}
    assert container_id not in snapshots(supervisor, containerd)
    await client.images.remove(image.name)
    await eventually(lambda: snapshots(supervisor, containerd) == [], "the snapshots collected")
    figures.record(
        "sandbox",
        f"containerd {supervisor.version}: checkpoint + restore of a sandbox on an image",
        f"{took * 1000:.0f} ms",
    )


async def test_a_restore_into_other_ids_than_the_checkpoint_s_is_refused(
    client: AsyncClient, place: Path, criu: str
) -> None:
    # CRIU restores the checkpoint's user namespace whatever the container's spec says
    # (without the check, the process below ran as uid 300000 in a container mapped to
    # 500000): each mismatch is refused before a task exists.
    def busybox(name: str, *options: oci.SpecOption) -> oci.Spec:
        return oci.default_spec(["/bin/sleep", "300"], rootfs.busybox(place / name), *options)

    mapped = oci.with_user_namespace([(0, 300000, 65536)], chown_root=True)
    await client.create("mapped", busybox("mapped", mapped))
    await client.create("default", busybox("default"))
    await client.create("other", busybox("other", oci.with_user_namespace([(0, 500000, 65536)])))
    await client.create("auto", busybox("auto", oci.with_user_namespace()))
    for name in ("mapped", "default"):
        await client.start(name)
        await client.create_checkpoint(name, place / f"{name}.checkpoint", exit=True)
        async with asyncio.timeout(30):
            await client.wait(name)
        await client.delete_task(name)
    of_mapped, of_default = place / "mapped.checkpoint", place / "default.checkpoint"
    assert (of_mapped.stat().st_gid, of_mapped.stat().st_mode & 0o777) == (300000, 0o750)
    assert of_default.stat().st_mode & 0o777 == 0o700  # no namespace root to let in

    theirs = "uids 0:300000:65536 and gids 0:300000:65536"
    for name, images, message in (
        (
            "other",
            of_mapped,
            f"maps {theirs}, the container's uids 0:500000:65536.*made with"
            r" oci.with_user_namespace\(\[\[0, 300000, 65536\]\], \[\[0, 300000, 65536\]\]\)",
        ),
        ("default", of_mapped, f"maps {theirs}, the container's none \\(the host's ids\\)"),
        ("auto", of_default, "maps none \\(the host's ids\\), the container's uids 0:\\d+:65536"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            await client.start(name, checkpoint_dir=images)
        with pytest.raises(NotFound, match="has no task"):
            await client.status(name)

    # A checkpoint folder the namespace's root may not enter is refused, saying why.
    of_mapped.chmod(0o700)
    with pytest.raises(InvalidArgument, match="host uid 300000 and gid 300000, which may not"):
        await client.start("mapped", checkpoint_dir=of_mapped)
    of_mapped.chmod(0o750)
    pid = await client.start("mapped", checkpoint_dir=of_mapped)
    assert host_uids(pid) == [300000] * 4
