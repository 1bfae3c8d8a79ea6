"""User namespaces and the sandbox preset: maps, ranges, remapped roots, and an escape battery.

Each container runs on a busybox root in a folder others may enter (a
user-namespaced root is an unprivileged uid on the host: it cannot pass a
0700 folder), or on the suite's small image with a non-root user of its own.
The battery runs its attempts inside one sandboxed container and reports
each; the fork and memory bombs run in sandboxes of their own, beside a
bystander container that must not notice. Figures go to the run's summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import pytest

from libcontainerd import oci, rootfs
from libcontainerd._api.containerd.api.services.containers.v1 import containers_pb2
from libcontainerd._userns import RANGE_LABEL, RANGE_SIZE, RangeTable
from libcontainerd.client import AsyncClient
from libcontainerd.errors import InvalidArgument
from libcontainerd.images import Image
from libcontainerd.images._content import Lease
from libcontainerd.stdio import CollectOutput
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import Status

from .. import figures
from .containers import remove_container
from .image_archives import EXPECTED_OUTPUT, Archives
from .lcd import environment, lcd
from .sandboxes import archives_fixture, client_fixture, ranges

pytestmark = pytest.mark.integration

NAMESPACE = "lcdsandbox"
# The escape battery's figures are printed once per containerd version.


client = client_fixture(NAMESPACE)
archives = archives_fixture("sandbox-archives")


_serial = iter(range(1_000_000))


def new_id(prefix: str = "sb") -> str:
    return f"{prefix}-{os.getpid()}-{next(_serial)}"


def busybox_spec(
    place: Path, container_id: str, args: list[str], *options: oci.SpecOption
) -> oci.Spec:
    root = rootfs.busybox(place / container_id)
    return oci.default_spec(args, root, *options)


class Ran(NamedTuple):
    """What a container's process did: its exit code, its output, whether it was OOM-killed."""

    code: int
    stdout: bytes
    stderr: bytes
    oom_killed: bool

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).decode(errors="replace")


@contextlib.asynccontextmanager
async def finished(client: AsyncClient, container_id: str) -> AsyncIterator[Ran]:
    """Start a created container and wait for its end; it is deleted when the block ends
    (its cgroup and labels are still there inside it), or on any failure."""
    try:
        output = CollectOutput()
        await client.start(container_id, attach_stdio=output)
        async with asyncio.timeout(120):
            result = await client.wait(container_id)
            stdout, stderr = await output
        yield Ran(result[0], stdout, stderr, result.oom_killed)
    finally:
        await remove_container(client, container_id)


async def finish(client: AsyncClient, container_id: str) -> Ran:
    """Run a created container to its end and delete it."""
    async with finished(client, container_id) as ran:
        return ran


async def run(
    client: AsyncClient, container_id: str, spec: oci.Spec, image: Image | None = None
) -> tuple[int, str, bool]:
    """Create, run to its end and delete a container: exit code, output, OOM-killed."""
    await client.create(container_id, spec, image=image)
    ran = await finish(client, container_id)
    return ran.code, ran.output, ran.oom_killed


def pids_file(container_id: str, name: str) -> Path:
    """A file of the container's pids cgroup (v1 or v2)."""
    for folder in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        path = Path(folder, NAMESPACE, container_id, name)
        if path.exists():
            return path
    raise AssertionError(f"no pids cgroup file {name} for {container_id}")


async def range_of(client: AsyncClient, container_id: str) -> int:
    """The first host id of the container's automatic range, from its label."""
    return int((await client.set_labels(container_id, {}))[RANGE_LABEL].split(":")[0])


# -- user namespaces ----------------------------------------------------------------------


async def test_root_inside_an_automatic_range_is_an_unprivileged_uid_outside(
    client: AsyncClient, place: Path
) -> None:
    shared = place / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    container_id = new_id()
    spec = busybox_spec(
        place,
        container_id,
        ["/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/shared/f"],
        oci.with_user_namespace(),
        oci.with_bind_mount(shared, "/tmp/shared"),
    )
    await client.create(container_id, spec)
    label = (await client.set_labels(container_id, {}))[RANGE_LABEL]
    base, size = map(int, label.split(":"))
    assert size == RANGE_SIZE
    assert ranges(client)[base] == container_id
    ran = await finish(client, container_id)
    assert ran.code == 0, ran.stderr
    lines = [line.split() for line in ran.stdout.decode().splitlines()]
    assert lines == [["0", str(base), str(RANGE_SIZE)], ["0", str(base), str(RANGE_SIZE)], ["0"]]
    created = (shared / "f").stat()
    assert (created.st_uid, created.st_gid) == (base, base)
    assert base not in ranges(client)  # freed with the container


async def test_a_root_directory_of_its_own_is_chowned_to_the_range_and_writable(
    client: AsyncClient, place: Path
) -> None:
    container_id = new_id()
    spec = busybox_spec(
        place,
        container_id,
        ["/bin/sh", "-c", "touch /made && stat -c %u:%g /bin/busybox /made"],
        oci.with_user_namespace(chown_root=True),
    )
    await client.create(container_id, spec)
    base = await range_of(client, container_id)
    ran = await finish(client, container_id)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.split() == [b"0:0", b"0:0"]  # root's, inside
    made = (place / container_id / "made").stat()
    assert (made.st_uid, made.st_gid) == (base, base)


async def test_explicit_maps_are_the_namespace_s_maps(client: AsyncClient, place: Path) -> None:
    container_id = new_id()
    spec = busybox_spec(
        place,
        container_id,
        ["/bin/cat", "/proc/self/uid_map", "/proc/self/gid_map"],
        oci.with_user_namespace([(0, 300000, 1000), (1000, 400000, 10)], [(0, 500000, 65536)]),
    )
    code, output, _ = await run(client, container_id, spec)
    assert code == 0, output
    assert [line.split() for line in output.splitlines()] == [
        ["0", "300000", "1000"],
        ["1000", "400000", "10"],
        ["0", "500000", "65536"],
    ]


async def test_concurrent_containers_get_disjoint_ranges_freed_and_reused_after_delete(
    client: AsyncClient, place: Path
) -> None:
    ids = [new_id() for _ in range(3)]
    specs = [
        busybox_spec(place, cid, ["/bin/sleep", "60"], oci.with_user_namespace()) for cid in ids
    ]
    await asyncio.gather(*(client.create(cid, spec) for cid, spec in zip(ids, specs, strict=True)))
    bases = sorted([await range_of(client, cid) for cid in ids])
    assert all(b - a >= RANGE_SIZE for a, b in itertools.pairwise(bases))
    assert sorted(ranges(client)) == bases
    for cid in ids:
        await client.delete(cid)
    assert ranges(client) == {}
    again = new_id()
    await client.create(again, busybox_spec(place, again, ["true"], oci.with_user_namespace()))
    reused = await range_of(client, again)
    await client.delete(again)
    assert reused == bases[0]  # the lowest free range again
    figures.record("user namespaces", "automatic ranges of 3 concurrent creates", bases)


async def test_a_range_whose_container_is_gone_is_reused(client: AsyncClient, place: Path) -> None:
    # A dead client's leftovers: one mid-create (its process is gone), one created
    # (its container was deleted behind the client's back).
    table = RangeTable()
    first = new_id()
    await client.create(first, busybox_spec(place, first, ["true"], oci.with_user_namespace()))
    base = await range_of(client, first)
    # Deleted without the hook, as `ctr containers rm` would.
    await client._session.call(
        client._session.methods.containers.delete,
        containers_pb2.DeleteContainerRequest(id=first),
        "delete behind the client's back",
    )
    assert ranges(client)[base] == first
    second = new_id()
    await asyncio.sleep(0.01)  # the entry settled before the next listing
    await client.create(second, busybox_spec(place, second, ["true"], oci.with_user_namespace()))
    assert await range_of(client, second) == base
    await client.delete(second)
    assert table.entries().get(base) is None


# -- images -------------------------------------------------------------------------------


async def test_an_image_with_a_named_user_runs_on_a_remapped_snapshot(
    client: AsyncClient, archives: Archives, supervisor: Supervisor, containerd: str
) -> None:
    [image] = await client.images.import_archive(archives.oci)
    timings = []
    bases = []
    for _ in range(2):
        container_id = new_id()
        started = time.monotonic()
        spec = oci.image_spec(image, oci.with_user_namespace())
        await client.create(container_id, spec, image=image)
        timings.append(time.monotonic() - started)
        bases.append(await range_of(client, container_id))
        ran = await finish(client, container_id)
        assert (ran.code, ran.stdout) == (0, EXPECTED_OUTPUT), ran.stderr
    assert bases[0] == bases[1]  # the range freed and taken again: its snapshot reused
    # A collection now: the image's label keeps the remapped snapshot.
    lease = await Lease.create(client._session, "sandbox-gc")
    await lease.delete(sync=True)
    ctr = Ctr(Path(containerd).with_name("ctr"), supervisor.address)
    remapped = [
        key for key in ctr.keys("snapshots", "ls") if key.endswith(f"-{bases[0]}-{bases[0]}")
    ]
    assert remapped == [f"{image.chain_id}-{bases[0]}-{bases[0]}"]
    assert not any(key.startswith("sb-") for key in ctr.keys("snapshots", "ls"))
    figures.record(
        "user namespaces",
        f"containerd {supervisor.version}: image create with remap, first / reused",
        f"{timings[0] * 1000:.0f} ms / {timings[1] * 1000:.0f} ms",
    )
    await client.images.remove(image.name)
    # The remapped snapshot goes with the image (collected with its layers).
    await asyncio.sleep(0)
    deadline = time.monotonic() + 30
    while ctr.keys("snapshots", "ls") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert ctr.keys("snapshots", "ls") == []


class Ctr:
    def __init__(self, binary: Path, address: str) -> None:
        self.binary = binary
        self.address = address

    def keys(self, *args: str) -> list[str]:
        import subprocess

        done = subprocess.run(
            [str(self.binary), "-a", self.address, "-n", NAMESPACE, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return [line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()]


# -- the sandbox --------------------------------------------------------------------------

BATTERY = r"""
try() {
  name=$1; shift
  if "$@" >/dev/null 2>&1; then echo "$name ESCAPED"; else echo "$name refused"; fi
}
try write-proc-sys sh -c 'echo 1 > /proc/sys/kernel/sysrq'
try write-sys sh -c 'echo x > /sys/kernel/uevent_helper'
try load-module insmod /bin/busybox
try read-kcore sh -c 'test -n "$(head -c 1 /proc/kcore)"'
try host-root test -e /proc/1/root/etc/debian_version
try raw-socket ping -c 1 -W 1 127.0.0.1
try mount mount -t tmpfs none /mnt
try write-root touch /escape
try mknod mknod /tmp/sda b 8 0
try setuid-gain sh -c 'test "$(/bin/suid id -u)" = 0'
try new-userns unshare -U true
ip link show lo | grep -q 'UP' && echo "lo up" || echo "lo down"
echo "interfaces $(ls /sys/class/net | tr '\n' ' ')"
grep Seccomp: /proc/self/status
"""
ATTEMPTS = 11
# What the default spec allows of the battery (it keeps Docker's capabilities and
# a writable root): the sandbox must refuse these too.
DEFAULT_ALLOWS = {"raw-socket", "write-root", "mknod"}


def verdicts(output: str) -> dict[str, str]:
    return {
        line.split()[0]: line.split()[1]
        for line in output.splitlines()
        if line.endswith(("ESCAPED", "refused"))
    }


@pytest.fixture
async def bystander(client: AsyncClient, place: Path) -> AsyncIterator[str]:
    """A default container running beside the sandboxes; it must not notice them."""
    container_id = new_id("bystander")
    spec = busybox_spec(place, container_id, ["/bin/sleep", "600"])
    await client.create(container_id, spec)
    await client.start(container_id)
    yield container_id
    await remove_container(client, container_id)


async def bystander_fine(client: AsyncClient, container_id: str) -> bool:
    if await client.status(container_id) is not Status.RUNNING:
        return False
    exec_id = new_id("x")
    await client.exec(container_id, exec_id, {"args": ["/bin/true"], "cwd": "/"})
    async with asyncio.timeout(30):
        code, _ = await client.wait(container_id, exec_id)
    return code == 0


async def record_beside(
    client: AsyncClient, bystander: str, supervisor: Supervisor, what: str, outcome: str
) -> None:
    """Record a sandbox figure of this containerd's, then check the bystander noticed nothing."""
    figures.record("sandbox", f"containerd {supervisor.version}: {what}", outcome)
    assert await bystander_fine(client, bystander), f"the bystander suffered from the {what}"


async def test_the_sandbox_refuses_each_escape_and_leaves_the_bystander_alone(
    client: AsyncClient, place: Path, bystander: str, supervisor: Supervisor
) -> None:
    outputs = {}
    for name, options in (
        ("default", ()),
        ("sandbox", (oci.with_sandbox(),)),
        ("sandbox user", (oci.with_sandbox(), oci.with_user(1000, 1000))),
    ):
        container_id = new_id()
        root = rootfs.busybox(place / container_id)
        # A setuid-root program: running it must not make an ordinary user root.
        shutil.copy2(root / "bin" / "busybox", root / "bin" / "suid")
        os.chown(root / "bin" / "suid", 0, 0)
        (root / "bin" / "suid").chmod(0o4755)
        spec = oci.default_spec(["/bin/sh", "-c", BATTERY], root, *options)
        _, outputs[name], _ = await run(client, container_id, spec)
    results = {name: verdicts(output) for name, output in outputs.items()}
    assert all(len(result) == ATTEMPTS for result in results.values()), outputs
    escaped = {
        name: {a for a, v in result.items() if v == "ESCAPED"} for name, result in results.items()
    }
    assert escaped == {"default": DEFAULT_ALLOWS, "sandbox": set(), "sandbox user": set()}, outputs
    for name in ("sandbox", "sandbox user"):
        assert "lo up" in outputs[name], outputs[name]
        assert "Seccomp:\t2" in outputs[name], outputs[name]  # the default profile kept
        assert "interfaces lo \n" in outputs[name], outputs[name]
    await record_beside(
        client,
        bystander,
        supervisor,
        f"escape battery ({ATTEMPTS} attempts)",
        f"sandbox refused all, as root and as a user; default allowed {sorted(DEFAULT_ALLOWS)}",
    )


async def test_a_fork_bomb_is_held_by_the_pids_limit(
    client: AsyncClient, place: Path, bystander: str, supervisor: Supervisor
) -> None:
    container_id = new_id()
    # The shell gives up at its first refused fork; by then the cgroup held the line.
    bomb = "n=1; while :; do /bin/sleep 60 & n=$((n+1)); echo $n; done"
    spec = busybox_spec(place, container_id, ["/bin/sh", "-c", bomb], oci.with_sandbox(pids=64))
    started = time.monotonic()
    await client.create(container_id, spec)
    async with finished(client, container_id) as ran:
        refused = int(pids_file(container_id, "pids.events").read_text().split()[1])
    assert ran.code != 0, ran.stderr
    assert b"fork" in ran.stderr, ran.stderr
    peak = int(ran.stdout.split()[-1])  # the shell and its sleeps
    assert peak <= 64
    assert refused >= 1
    await record_beside(
        client,
        bystander,
        supervisor,
        "fork bomb under pids=64",
        f"{peak} processes at most, {refused} forks refused, {time.monotonic() - started:.1f} s",
    )


async def test_a_memory_bomb_is_oom_killed(
    client: AsyncClient, place: Path, bystander: str, supervisor: Supervisor
) -> None:
    container_id = new_id()
    bomb = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived ${#x}'
    spec = busybox_spec(
        place, container_id, ["/bin/sh", "-c", bomb], oci.with_sandbox(memory=32 << 20)
    )
    started = time.monotonic()
    code, output, oom = await run(client, container_id, spec)
    assert "survived" not in output
    assert (code, oom) == (137, True), output
    await record_beside(
        client,
        bystander,
        supervisor,
        "200 MB memory bomb under memory=32 MiB",
        f"exit {code}, OOM-killed, {time.monotonic() - started:.1f} s",
    )


# -- lcd run --sandbox --------------------------------------------------------------------


async def test_lcd_run_sandbox_runs_confined_and_refuses_a_network(
    client: AsyncClient, place: Path, supervisor: Supervisor
) -> None:
    env = environment(place / "state", place / "root")
    prefix = ("--address", supervisor.address, "--namespace", NAMESPACE)
    script = (
        "cat /proc/self/uid_map; grep CapEff /proc/self/status; ls /sys/class/net;"
        " touch /x 2>/dev/null || echo read-only; touch /tmp/x && echo tmp-writable"
    )
    result = await lcd(
        env, *prefix, "run", "--rm", "--sandbox", "-m", "64m", "--", "sh", "-c", script
    )
    assert result.status == 0, result
    first, caps, interfaces, *rest = result.lines
    assert first.split()[0] == "0"
    assert int(first.split()[1]) >= RANGE_SIZE
    assert caps.split() == ["CapEff:", "0000000000000000"]
    assert (interfaces, rest) == ("lo", ["read-only", "tmp-writable"])
    refused = await lcd(
        env, *prefix, "run", "--rm", "--sandbox", "--network", "bridge", "--", "true"
    )
    assert "--sandbox implies --network none" in refused.one_error_line()


async def test_a_user_namespaced_container_on_a_network_must_bind_sys(
    client: AsyncClient, place: Path
) -> None:
    container_id = new_id()
    spec = busybox_spec(place, container_id, ["true"], oci.with_user_namespace())
    with pytest.raises(InvalidArgument, match="with_bind_mount\\('/sys'"):
        await client.create(container_id, spec, network="lcd-no-such-network")
    assert ranges(client) == {}  # refused before a range was taken


async def test_a_root_below_a_folder_the_range_cannot_enter_is_refused_clearly(
    client: AsyncClient, place: Path
) -> None:
    closed = place / "closed"
    closed.mkdir(mode=0o700)
    container_id = new_id()
    spec = busybox_spec(closed, container_id, ["true"], oci.with_user_namespace())
    with pytest.raises(InvalidArgument, match=f"below {closed}, which its user namespace"):
        await client.create(container_id, spec)
    assert ranges(client) == {}  # the range taken is given back
