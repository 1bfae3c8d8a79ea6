"""``lcd run --sandbox IMAGE``: the sandbox preset on an image's remapped snapshot, by the command.

The suite's small image (a non-root user of its own, entrypoint ``/bin/sh
-c``) runs a script that reports what confines it; with ``--rm`` nothing of
the container may stay: no container, no snapshot of its own, no user
namespace range. The image's remapped snapshot stays with the image, and
goes with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libcontainerd._userns import RANGE_BASE, RANGE_SIZE
from libcontainerd.client import AsyncClient
from libcontainerd.supervisor import Supervisor

from . import image_archives
from .containers import eventually
from .image_archives import OCI_NAME, Archives
from .lcd import environment, lcd
from .sandboxes import ranges, sandbox_client, snapshot_rows

pytestmark = pytest.mark.integration

NAMESPACE = "lcdclisandbox"

# Each line answers one question; the image runs it as its user app (1000).
SCRIPT = """
id -u
cat /proc/self/uid_map
grep Seccomp: /proc/self/status
awk '$2 == "/" { split($4, o, ","); print "root", o[1] }' /proc/self/mounts
touch /x 2>/dev/null && echo root-writable || echo root-refused
awk '$2 == "/tmp" { print "tmp", $3 }' /proc/self/mounts
touch /tmp/x && echo tmp-writable
echo interfaces $(ls /sys/class/net)
"""


@pytest.fixture
async def client(supervisor: Supervisor) -> AsyncIterator[AsyncClient]:
    """An AsyncClient in this file's namespace, to watch what lcd does; emptied afterwards."""
    async with sandbox_client(supervisor, NAMESPACE, ranges_freed=False) as opened:
        yield opened


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Archives:
    image_archives.tools()
    return image_archives.build(tmp_path_factory.mktemp("cli-sandbox-archives"))


def snapshots(supervisor: Supervisor, containerd: str) -> dict[str, str]:
    """This namespace's snapshots (overlayfs) by containerd's own ctr: key -> kind."""
    return {row[0]: row[-1] for row in snapshot_rows(supervisor, containerd, NAMESPACE)}


async def test_lcd_run_sandbox_confines_an_image_and_rm_leaves_nothing_of_it(
    client: AsyncClient,
    archives: Archives,
    supervisor: Supervisor,
    containerd: str,
    workdir: Path,
) -> None:
    env = environment(workdir / "state", workdir / "root")
    prefix = ("--address", supervisor.address, "--namespace", NAMESPACE)
    [image] = await client.images.import_archive(archives.oci)
    layers = snapshots(supervisor, containerd)

    result = await lcd(env, *prefix, "run", "--rm", "--sandbox", "--name", "sbx", OCI_NAME, SCRIPT)
    assert result.status == 0, result
    uid, uid_map, seccomp, root, root_write, tmp, tmp_write, interfaces = result.lines
    assert uid == "1000"  # the image's user, named in its own /etc/passwd
    inside, outside, size = map(int, uid_map.split())
    assert (inside, size) == (0, RANGE_SIZE)
    assert outside >= RANGE_BASE  # not the identity: root inside is nobody outside
    assert seccomp.split() == ["Seccomp:", "2"]  # the default profile, a filter
    assert (root, root_write) == ("root ro", "root-refused")
    assert (tmp, tmp_write) == ("tmp tmpfs", "tmp-writable")
    assert interfaces == "interfaces lo"  # --sandbox implies --network none

    # --rm: no container, no snapshot of its own, no range; the image's remapped one stays.
    assert await client.list_containers() == []
    assert ranges(client) == {}
    remapped = f"{image.chain_id}-{outside}-{outside}"
    assert snapshots(supervisor, containerd) == {**layers, remapped: "Committed"}
    removed = await lcd(env, *prefix, "rmi", OCI_NAME)
    assert removed.status == 0, removed
    await eventually(lambda: snapshots(supervisor, containerd) == {}, "the snapshots collected")
