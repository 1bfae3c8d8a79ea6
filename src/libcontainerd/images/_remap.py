"""Image snapshots owned by a user namespace's range, as containerd's WithRemappedSnapshot.

A container whose spec maps ids (see :mod:`.._userns`) cannot use the
image's layers as they are: root inside owns nothing there. Once per image
and maps, an active snapshot is prepared on the image's top layer, every
file of it is chowned from container ids to host ids (which copies each one
up into the new layer: the cost is measured in bench), and it is committed
as ``<chain id>-<uid>-<gid>`` (the host ids of root; a digest of the maps
is added when they are more than one range from 0). Containers of the same
image and range then prepare their snapshots on it at no cost.

The image's config blob gets a ``containerd.io/gc.ref.snapshot.<snapshotter>/<name>``
label (set before the commit, so a crash leaves nothing unreferenced): the
remapped snapshot lives as long as the image, as its layers do, and goes
with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator, Sequence

from .._api.containerd.api.types import mount_pb2
from .._userns import IdMap, host_id, shift_ownership
from ..errors import AlreadyExists, LibcontainerdError
from ._content import GC_REF_SNAPSHOT, ContentStore, Lease
from ._types import Image
from ._unpack import Snapshots

__all__ = ["remapped_key", "remapped_parent"]


def remapped_key(chain_id: str, uids: IdMap, gids: IdMap) -> str:
    """The name of the image's snapshot remapped by these maps."""
    uid, gid = host_id(uids, 0), host_id(gids, 0)
    key = f"{chain_id}-{uid}-{gid}"
    if len(uids) > 1 or len(gids) > 1 or uids[0][0] != 0 or gids[0][0] != 0:
        key += "-" + hashlib.sha256(repr((uids, gids)).encode()).hexdigest()[:12]
    return key


async def remapped_parent(
    store: ContentStore, snapshots: Snapshots, image: Image, lease: Lease, uids: IdMap, gids: IdMap
) -> str:
    """The remapped snapshot of ``image`` (made now if missing); its name.

    The image must be unpacked in ``snapshots`` (NotFound otherwise).
    """
    key = remapped_key(image.chain_id, uids, gids)
    if await snapshots.exists(key):
        return key
    if image.config_descriptor is not None:
        label = GC_REF_SNAPSHOT.format(snapshots.snapshotter) + "/" + key[len(image.chain_id) + 1 :]
        await store.set_labels(
            image.config_descriptor.digest, {label: key}, metadata=lease.metadata
        )
    work = f"{key}-remap-{secrets.token_hex(4)}"
    mounts = await snapshots.prepare(work, image.chain_id, lease)
    try:
        await asyncio.to_thread(_shift_mounted, mounts, uids, gids)
        try:
            await snapshots.commit(key, work, lease, {})
        except AlreadyExists:  # another client made it meanwhile: the same files
            await snapshots.remove(work)
    except BaseException:
        with contextlib.suppress(LibcontainerdError):
            await snapshots.remove(work)
        raise
    return key


def _shift_mounted(mounts: Sequence[mount_pb2.Mount], uids: IdMap, gids: IdMap) -> None:
    with _mounted(mounts) as root:
        shift_ownership(root, uids, gids)


@contextlib.contextmanager
def _mounted(mounts: Sequence[mount_pb2.Mount]) -> Iterator[str]:
    """The snapshot's root, writable: a bind mount's source, or an overlay mounted for a while."""
    if len(mounts) == 1 and mounts[0].type == "bind":
        yield mounts[0].source
        return
    if len(mounts) != 1:
        raise LibcontainerdError(f"cannot remap a root made of {len(mounts)} mounts")
    mount = mounts[0]
    target = tempfile.mkdtemp(prefix="libcontainerd-remap-")
    try:
        _run(["mount", "-t", mount.type, "-o", ",".join(mount.options), mount.source, target])
        try:
            yield target
        finally:
            _run(["umount", target])
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(target)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise LibcontainerdError(
            f"{argv[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
