"""Unpacking an image's layers into snapshots, one per layer, named by chain ID.

For each layer, base first: a committed snapshot of its chain ID is reused
(a layer shared by two images at the same depth unpacks once); otherwise an
active snapshot is prepared on the previous one, containerd's Diff service
applies the layer blob to its mounts (decompressing gzip or zstd itself), the
digest of what it applied must be the config's diff ID, and the snapshot is
committed under the chain ID. The layer blob is labelled with its
uncompressed digest, and the config with the top snapshot
(``containerd.io/gc.ref.snapshot.<snapshotter>``), so the image record alone
keeps the snapshots from garbage collection. Everything is made under the
caller's lease until then.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from .._api.containerd.api.services.diff.v1 import diff_pb2
from .._api.containerd.api.services.snapshots.v1 import snapshots_pb2
from .._api.containerd.api.types import descriptor_pb2, mount_pb2
from .._session import Session
from ..errors import AlreadyExists, DigestMismatch, LibcontainerdError, NotFound
from . import _media
from ._content import GC_REF_SNAPSHOT, UNCOMPRESSED, ContentStore, Lease
from ._types import Descriptor, Progress, ProgressCallback

__all__ = ["SNAPSHOT_REF", "Snapshots", "unpack_layers"]

# What containerd's unpacker labels its snapshots with (remote snapshotters read it).
SNAPSHOT_REF: Final = "containerd.io/snapshot.ref"


class Snapshots:
    """One snapshotter's snapshots, as the image room uses them."""

    def __init__(self, session: Session, snapshotter: str) -> None:
        self._session = session
        self.snapshotter = snapshotter

    async def exists(self, key: str) -> bool:
        session = self._session
        try:
            await session.call(
                session.methods.snapshots.stat,
                snapshots_pb2.StatSnapshotRequest(snapshotter=self.snapshotter, key=key),
                f"look up snapshot {key!r} in {self.snapshotter}",
            )
        except NotFound:
            return False
        return True

    async def prepare(
        self, key: str, parent: str, lease: Lease, labels: dict[str, str] | None = None
    ) -> list[mount_pb2.Mount]:
        """An active snapshot ``key`` on ``parent``; its mounts. NotFound: no such parent."""
        session = self._session
        reply = await session.connection.call(
            session.methods.snapshots.prepare,
            snapshots_pb2.PrepareSnapshotRequest(
                snapshotter=self.snapshotter, key=key, parent=parent, labels=labels or {}
            ),
            f"prepare snapshot {key!r} in {self.snapshotter}",
            metadata=lease.metadata,
        )
        return list(reply.mounts)

    async def mounts(self, key: str) -> list[mount_pb2.Mount]:
        session = self._session
        reply = await session.call(
            session.methods.snapshots.mounts,
            snapshots_pb2.MountsRequest(snapshotter=self.snapshotter, key=key),
            f"read the mounts of snapshot {key!r} in {self.snapshotter}",
        )
        return list(reply.mounts)

    async def commit(self, name: str, key: str, lease: Lease, labels: dict[str, str]) -> None:
        session = self._session
        await session.connection.call(
            session.methods.snapshots.commit,
            snapshots_pb2.CommitSnapshotRequest(
                snapshotter=self.snapshotter, name=name, key=key, labels=labels
            ),
            f"commit snapshot {name!r} in {self.snapshotter}",
            metadata=lease.metadata,
        )

    async def remove(self, key: str) -> None:
        """Remove the snapshot; one that is not there is not an error."""
        session = self._session
        with contextlib.suppress(NotFound):
            await session.call(
                session.methods.snapshots.remove,
                snapshots_pb2.RemoveSnapshotRequest(snapshotter=self.snapshotter, key=key),
                f"remove snapshot {key!r} from {self.snapshotter}",
            )


async def unpack_layers(
    session: Session,
    store: ContentStore,
    snapshots: Snapshots,
    lease: Lease,
    *,
    layers: Sequence[Descriptor],
    diff_ids: Sequence[str],
    config: Descriptor,
    what: str,
    progress: ProgressCallback | None = None,
    ready: Callable[[int], Awaitable[object]] | None = None,
) -> str:
    """Unpack the layers (see the module docstring); returns the top chain ID ("" for none).

    ``ready(i)`` (when given) is awaited before layer ``i`` is applied: a pull
    unpacks each layer as soon as it is in while later ones still download.
    Raises DigestMismatch when a layer is not what its diff ID says (its
    snapshot is removed), and what the calls raise.
    """
    chain = _media.chain_ids(diff_ids)
    if not chain:
        return ""
    top = chain[-1]
    if not await snapshots.exists(top):
        first_missing = 0
        for index in range(len(chain) - 2, -1, -1):  # the highest layer already there
            if await snapshots.exists(chain[index]):
                first_missing = index + 1
                break
        for index in range(first_missing, len(chain)):
            if ready is not None:
                await ready(index)
            await _apply(
                session,
                store,
                snapshots,
                lease,
                layers[index],
                diff_ids[index],
                chain,
                index,
                what,
                progress,
            )
    await store.set_labels(
        config.digest, {GC_REF_SNAPSHOT.format(snapshots.snapshotter): top}, metadata=lease.metadata
    )
    return top


async def _apply(
    session: Session,
    store: ContentStore,
    snapshots: Snapshots,
    lease: Lease,
    layer: Descriptor,
    diff_id: str,
    chain: list[str],
    index: int,
    what: str,
    progress: ProgressCallback | None,
) -> None:
    chain_id = chain[index]
    parent = chain[index - 1] if index else ""
    key = f"extract-{time.time_ns()}-{secrets.token_hex(3)} {chain_id}"
    labels = {SNAPSHOT_REF: chain_id}
    if progress is not None:
        progress(Progress("unpack", layer.digest, 0, layer.size))
    try:
        mounts = await snapshots.prepare(key, parent, lease, labels)
    except AlreadyExists:
        # The snapshot.ref label names the chain ID, and another unpack (a second pull of
        # the same image) has just committed it: use that one, as containerd's unpacker does.
        if not await snapshots.exists(chain_id):
            raise
        mounts = None
    if mounts is None:
        await store.set_labels(layer.digest, {UNCOMPRESSED: diff_id}, metadata=lease.metadata)
        if progress is not None:
            progress(Progress("unpack", layer.digest, layer.size, layer.size))
        return
    try:
        reply = await session.connection.call(
            session.methods.diff.apply,
            diff_pb2.ApplyRequest(
                diff=descriptor_pb2.Descriptor(
                    media_type=layer.media_type, digest=layer.digest, size=layer.size
                ),
                mounts=mounts,
            ),
            f"apply layer {index} ({layer.digest}) of {what}",
            metadata=lease.metadata,
        )
        if reply.applied.digest != diff_id:
            raise DigestMismatch(
                f"layer {index} of {what} ({layer.digest}) unpacks to {reply.applied.digest},"
                f" not to the diff ID {diff_id} its config names"
            )
        try:
            await snapshots.commit(chain_id, key, lease, labels)
        except AlreadyExists:
            # Another unpack committed the same layer meanwhile: use that one.
            await snapshots.remove(key)
    except BaseException:
        with contextlib.suppress(LibcontainerdError):
            await snapshots.remove(key)
        raise
    await store.set_labels(layer.digest, {UNCOMPRESSED: diff_id}, metadata=lease.metadata)
    if progress is not None:
        progress(Progress("unpack", layer.digest, layer.size, layer.size))
