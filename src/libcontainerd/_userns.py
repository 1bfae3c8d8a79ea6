"""User namespaces: automatic unprivileged ID ranges, one per container, and their remapping.

``oci.with_user_namespace()`` without maps marks the spec with
:data:`AUTO_ANNOTATION`; :class:`UserNamespaces`, a :class:`ContainerHook`
that runs before every other, resolves the mark before Containers.Create: it
allocates a block of :data:`RANGE_SIZE` IDs above :data:`RANGE_BASE` (the
same block for uids and gids), writes the maps into the spec and records the
block on the container (:data:`RANGE_LABEL`). The block is freed when the
container is deleted. With :data:`CHOWN_ROOT_ANNOTATION` (a root directory
the caller gives this container alone) it then chowns that directory in
place to the maps; an image's snapshot is remapped by the image room.

The blocks of the whole host live in one small JSON file
(:data:`RANGES_FILE`) changed under an exclusive ``flock``, since uids are
the host's, not one daemon's. An entry is ``creating`` (with the allocating
process's pid) until the container exists, then ``created``. A crash leaves
nothing taken for good: a ``creating`` entry whose process is dead, and a
``created`` one whose container is gone from this client's daemon and
namespace, are free again at the next allocation there (a client judges
only its own daemon and namespace: elsewhere the container may exist).

:func:`shift_ownership` chowns a tree by the maps (for remapped snapshots,
see :mod:`.images._containers`).

Checkpoints: CRIU reads a restore's images as the namespace's root and
restores the namespace the images record, whatever the spec says; so a
checkpoint is opened to that root's group (:func:`open_checkpoint`), and
before a restored task is created the hook refuses images of other maps, or
that root may not read (:func:`check_restorable`; see :mod:`._criu_images`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from . import _typeurl
from ._api.containerd.api.services.containers.v1 import containers_pb2
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from ._criu_images import (
    ImageError,
    open_to_namespace_root,
    refused_to_namespace_root,
    user_namespace_maps,
)
from ._paths import DEFAULT_ROOT_DIR
from ._session import Session
from ._tasks import ContainerHook, NewContainer
from .errors import FailedPrecondition, InvalidArgument, LibcontainerdError

__all__ = [
    "AUTO_ANNOTATION",
    "CHOWN_ROOT_ANNOTATION",
    "RANGES_FILE",
    "RANGE_BASE",
    "RANGE_LABEL",
    "RANGE_SIZE",
    "IdMap",
    "UserNamespaces",
    "check_restorable",
    "host_id",
    "id_maps",
    "open_checkpoint",
    "shift_ownership",
]

log = logging.getLogger(__name__)

AUTO_ANNOTATION: Final = "org.libcontainerd.userns"
"""Spec annotation ``auto``: the client allocates the maps when it creates the container."""
CHOWN_ROOT_ANNOTATION: Final = "org.libcontainerd.userns.chown-root"
"""Spec annotation ``true``: the root directory is the container's own; chown it to the maps."""
RANGE_LABEL: Final = "libcontainerd.userns.range"
"""Container label ``<first host id>:<size>`` of an automatic range."""
RANGE_BASE: Final = 1 << 30
"""The first host id of the automatic ranges (far above /etc/subuid's usual 100000+)."""
RANGE_SIZE: Final = 65536
"""IDs per automatic range: a whole 16-bit uid space, as Docker's and podman's."""
RANGE_COUNT: Final = 16384
"""Ranges available: host ids from 2^30 up to 2^31."""
RANGES_FILE: Final = os.path.join(DEFAULT_ROOT_DIR, "userns-ranges.json")
"""The host's allocation table (and ``.lock`` beside it)."""

IdMap = tuple[tuple[int, int, int], ...]
"""(container id, host id, size) triples."""


def id_maps(spec: Mapping[str, Any]) -> tuple[IdMap, IdMap] | None:
    """The spec's uid and gid maps when it has a private user namespace with maps, else None."""
    linux = spec.get("linux") or {}
    if not any(entry.get("type") == "user" for entry in linux.get("namespaces") or []):
        return None
    uids = _triples(linux.get("uidMappings") or [])
    gids = _triples(linux.get("gidMappings") or [])
    if not uids or not gids:
        return None
    return uids, gids


def _triples(entries: Sequence[Mapping[str, int]]) -> IdMap:
    return tuple((int(e["containerID"]), int(e["hostID"]), int(e["size"])) for e in entries)


def host_id(maps: IdMap, container_id: int) -> int | None:
    """The host id a container id maps to, or None outside the maps."""
    for inside, outside, size in maps:
        if inside <= container_id < inside + size:
            return outside + container_id - inside
    return None


# -- the allocation table ----------------------------------------------------------------


class RangeTable:
    """The host's automatic ranges (blocking calls, each under the table's file lock)."""

    def __init__(self, path: str = RANGES_FILE) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            lock = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except PermissionError:
            raise FailedPrecondition(
                f"an automatic user namespace range takes root (opening {self.path} was refused)"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(self.path) as file:
                    entries: dict[str, dict[str, Any]] = json.load(file)
            except FileNotFoundError:
                entries = {}
            except ValueError:
                log.warning("%s is not JSON: starting an empty range table", self.path)
                entries = {}
            before = json.dumps(entries, sort_keys=True)
            yield entries
            if json.dumps(entries, sort_keys=True) != before:
                temporary = f"{self.path}.{os.getpid()}.tmp"
                with open(temporary, "w") as file:
                    json.dump(entries, file, sort_keys=True)
                os.replace(temporary, self.path)
        finally:
            os.close(lock)  # releases the flock

    def allocate(self, owner: Mapping[str, str], live: set[str], listed_at: float) -> int:
        """Take the lowest free range for ``owner`` (address, namespace, container_id).

        ``live``: the container ids of the owner's daemon and namespace, listed at
        ``listed_at``; entries there whose container is gone since are reclaimed.
        Raises FailedPrecondition when every range is taken.
        """
        with self._locked() as entries:
            for key, entry in list(entries.items()):
                if _reclaimable(entry, owner, live, listed_at):
                    del entries[key]
            for index in range(RANGE_COUNT):
                base = RANGE_BASE + index * RANGE_SIZE
                if str(base) not in entries:
                    entries[str(base)] = {
                        **owner,
                        "phase": "creating",
                        "pid": os.getpid(),
                        "at": time.time(),
                    }
                    return base
        raise FailedPrecondition(
            f"all {RANGE_COUNT} automatic user namespace ranges are taken (see {self.path})"
        )

    def settle(self, base: int) -> None:
        """The range's container exists now: it no longer depends on this process."""
        with self._locked() as entries:
            entry = entries.get(str(base))
            if entry is not None:
                entry.update(phase="created", pid=0, at=time.time())

    def release(self, owner: Mapping[str, str]) -> list[int]:
        """Free the owner's ranges; the ones freed."""
        if not os.path.exists(self.path):
            return []
        freed = []
        with self._locked() as entries:
            for key, entry in list(entries.items()):
                if all(entry.get(name) == value for name, value in owner.items()):
                    del entries[key]
                    freed.append(int(key))
        return freed

    def entries(self) -> dict[int, dict[str, Any]]:
        """A copy of the table (for tests and ``lcd``)."""
        if not os.path.exists(self.path):
            return {}
        with self._locked() as entries:
            return {int(key): dict(entry) for key, entry in entries.items()}


def _reclaimable(
    entry: Mapping[str, Any], owner: Mapping[str, str], live: set[str], listed_at: float
) -> bool:
    """Whether an entry of the owner's daemon and namespace has no container any more.

    Other places' entries are judged by their own clients: a container there may exist.
    """
    same_place = entry.get("address") == owner["address"] and (
        entry.get("namespace") == owner["namespace"]
    )
    if not same_place or entry.get("container_id") in live:
        return False
    if entry.get("phase") == "creating":  # its client may still be making it
        return not _process_alive(int(entry.get("pid") or 0))
    # Settled after the listing: its container may be missing from it.
    return float(entry.get("at") or 0) < listed_at


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the hook ----------------------------------------------------------------------------


class UserNamespaces(ContainerHook):
    """See the module docstring."""

    def __init__(self, session: Session, address: str, table: RangeTable | None = None) -> None:
        self._session = session
        self._address = address
        self.table = table or RangeTable()
        # Creates in flight, by the identity of their NewContainer: the range taken.
        self._pending: dict[int, int] = {}
        # Containers this client made without an automatic range: their delete skips the
        # host's table (a locked read); others' (made elsewhere or before) are looked up.
        self._without_range: set[str] = set()

    def sizes(self) -> dict[str, int]:
        return {
            "user namespace ranges in flight": len(self._pending),
            "containers made without a range": len(self._without_range),
        }

    def _owner(self, container_id: str) -> dict[str, str]:
        return {
            "address": self._address,
            "namespace": self._session.namespace,
            "container_id": container_id,
        }

    async def before_create(self, container: NewContainer) -> None:
        spec = container.spec
        if container.network is not None and _has_user_namespace(spec) and _mounts_sysfs(spec):
            # runc (before 1.2) mounts sysfs only in a network namespace the container's
            # user namespace owns; the network room's namespace is the host's.
            raise InvalidArgument(
                f"cannot create container {container.id!r}: a user-namespaced container on a"
                " network cannot mount sysfs at /sys (the network's namespace belongs to the"
                " host); bind the host's instead: oci.with_bind_mount('/sys', '/sys',"
                " readonly=True)"
            )
        annotations = spec.get("annotations") or {}
        if annotations.get(AUTO_ANNOTATION) == "auto":
            await self._allocate(container)
        maps = id_maps(container.spec)
        root = str((container.spec.get("root") or {}).get("path") or "")
        if maps is None or container.image_source is not None or not os.path.isabs(root):
            return
        closed = _closed_folder(root, maps)
        if closed:
            raise InvalidArgument(
                f"cannot create container {container.id!r}: its root {root} is below {closed},"
                " which its user namespace's root cannot enter (give others search"
                " permission: chmod o+x)"
            )
        if annotations.get(CHOWN_ROOT_ANNOTATION) == "true":
            await asyncio.to_thread(shift_ownership, root, *maps)

    async def _allocate(self, container: NewContainer) -> None:
        """Resolve the automatic range: allocate one, write the maps, label the container."""
        spec = container.spec
        linux = spec["linux"] = dict(spec.get("linux") or {})
        if not _has_user_namespace(spec):
            raise InvalidArgument(
                f"cannot create container {container.id!r}: its spec asks for an automatic"
                " user namespace range but has no user namespace"
            )
        if linux.get("uidMappings") or linux.get("gidMappings"):
            raise InvalidArgument(
                f"cannot create container {container.id!r}: its spec asks for an automatic"
                " user namespace range and has maps of its own"
            )
        listed_at = time.time()
        reply = await self._session.call(
            self._session.methods.containers.list,
            containers_pb2.ListContainersRequest(),
            "list containers",
        )
        live = {record.id for record in reply.containers}
        base = await asyncio.to_thread(
            self.table.allocate, self._owner(container.id), live, listed_at
        )
        self._pending[id(container)] = base
        mapping = [{"containerID": 0, "hostID": base, "size": RANGE_SIZE}]
        linux["uidMappings"] = mapping
        linux["gidMappings"] = [dict(entry) for entry in mapping]
        container.labels[RANGE_LABEL] = f"{base}:{RANGE_SIZE}"

    async def after_create(self, container: NewContainer) -> None:
        base = self._pending.pop(id(container), None)
        if base is None:
            self._without_range.add(container.id)
        else:
            await asyncio.to_thread(self.table.settle, base)

    async def undo_create(self, container: NewContainer) -> None:
        base = self._pending.pop(id(container), None)
        if base is not None:
            await asyncio.to_thread(self.table.release, self._owner(container.id))

    async def before_task_create(
        self, container_id: str, request: tasks_pb2.CreateTaskRequest
    ) -> None:
        """A task restored from a checkpoint: refuse one CRIU would run in other ids."""
        if not request.HasField("options"):
            return
        options = _typeurl.unpack(request.options, runc_pb2.Options)
        if options is None or not options.criu_image_path:
            return
        maps = id_maps(await self._session.spec(container_id, "read the spec of"))
        source = Path(options.criu_image_path)
        await asyncio.to_thread(check_restorable, container_id, source, maps)

    def needs_record(self, container_id: str) -> bool:
        return False  # the table is keyed by the container's id

    async def after_delete(self, container_id: str) -> None:
        if container_id in self._without_range:
            self._without_range.discard(container_id)
            return
        try:
            await asyncio.to_thread(self.table.release, self._owner(container_id))
        except (LibcontainerdError, OSError) as error:
            # The container is gone already; its range is reclaimed at a later allocation.
            log.warning("container %s: its user namespace range not freed: %s", container_id, error)


def _closed_folder(root: str, maps: tuple[IdMap, IdMap]) -> str:
    """The first folder above ``root`` that the namespace's root may not enter, or ""."""
    uid, gid = host_id(maps[0], 0), host_id(maps[1], 0)
    folder = os.path.dirname(os.path.normpath(root))
    closed = ""
    while folder != "/":
        try:
            info = os.stat(folder)
        except OSError:
            return ""  # not on this host's view: runc will say
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            closed = folder
        folder = os.path.dirname(folder)
    return closed


def _has_user_namespace(spec: Mapping[str, Any]) -> bool:
    namespaces = (spec.get("linux") or {}).get("namespaces") or []
    return any(entry.get("type") == "user" and not entry.get("path") for entry in namespaces)


def _mounts_sysfs(spec: Mapping[str, Any]) -> bool:
    return any(mount.get("type") == "sysfs" for mount in spec.get("mounts") or [])


# -- checkpoints -------------------------------------------------------------------------


def open_checkpoint(directory: Path, spec: Mapping[str, Any]) -> None:
    """Let the user namespace's root read its container's checkpoint: CRIU restores as it.

    Without a user namespace nothing changes (blocking; see :mod:`._criu_images`).
    """
    maps = id_maps(spec)
    gid = None if maps is None else host_id(maps[1], 0)
    if gid is not None:
        open_to_namespace_root(directory, gid)


def check_restorable(container_id: str, source: Path, maps: tuple[IdMap, IdMap] | None) -> None:
    """Refuse a restore that CRIU would run in other ids than the container's, or cannot read.

    CRIU restores the checkpoint's user namespace whatever the spec says: a
    checkpoint of another range would run as ids that another container may
    own now, and one of an unconfined container as the host's root. Raises
    InvalidArgument (blocking).
    """
    try:
        recorded = user_namespace_maps(source)
    except ImageError as error:
        if maps is None:
            return  # CRIU says what is wrong with the images
        raise InvalidArgument(
            f"cannot restore container {container_id!r} from {source}: the user namespace"
            f" of its checkpoint cannot be read ({error}), so it cannot be matched to the"
            " container's"
        ) from None
    if _sorted(recorded) != _sorted(maps):
        if recorded is None:
            hint = "restore it into a container without a user namespace"
        else:
            uids, gids = ([list(triple) for triple in entries] for entries in recorded)
            hint = f"restore it into a container made with oci.with_user_namespace({uids}, {gids})"
        raise InvalidArgument(
            f"cannot restore container {container_id!r} from {source}: the checkpoint's"
            f" user namespace maps {_describe(recorded)}, the container's {_describe(maps)};"
            " CRIU restores the checkpoint's, so its processes would run as ids the"
            f" container does not own ({hint})"
        )
    if maps is None:
        return
    uid, gid = host_id(maps[0], 0), host_id(maps[1], 0)
    if uid is None or gid is None:
        return
    refused = refused_to_namespace_root(source, uid, gid)
    if refused:
        raise InvalidArgument(
            f"cannot restore container {container_id!r} from {source}: CRIU reads the"
            f" images as the container's root, host uid {uid} and gid {gid}, which may not"
            f" read {refused} (create_checkpoint makes them so; else: chgrp -R {gid}"
            f" {source} && chmod -R g+rX {source})"
        )


def _sorted(maps: tuple[IdMap, IdMap] | None) -> tuple[IdMap, IdMap] | None:
    return None if maps is None else (tuple(sorted(maps[0])), tuple(sorted(maps[1])))


def _describe(maps: tuple[IdMap, IdMap] | None) -> str:
    if maps is None:
        return "none (the host's ids)"

    def triples(entries: IdMap) -> str:
        return ",".join(f"{inside}:{outside}:{size}" for inside, outside, size in entries)

    return f"uids {triples(maps[0])} and gids {triples(maps[1])}"


# -- ownership ---------------------------------------------------------------------------


def shift_ownership(root: str, uids: IdMap, gids: IdMap) -> int:
    """Chown every file under ``root`` (itself included) from container ids to host ids.

    Symlinks are changed themselves (lchown), and one hard-linked elsewhere
    (lcd's busybox roots share their template's) is made this tree's own
    first, so the change stays here; chown clears the setuid and setgid
    bits of a file, so the mode is set again afterwards. An id outside
    the maps is left as is (it shows as the overflow id inside). Stays on
    ``root``'s filesystem. Returns the number of entries changed (blocking).
    """
    changed = 0
    device = os.lstat(root).st_dev

    def shift(path: str, info: os.stat_result) -> None:
        nonlocal changed
        uid = host_id(uids, info.st_uid)
        gid = host_id(gids, info.st_gid)
        new_uid = info.st_uid if uid is None else uid
        new_gid = info.st_gid if gid is None else gid
        if (new_uid, new_gid) == (info.st_uid, info.st_gid):
            return
        if stat.S_ISLNK(info.st_mode) and info.st_nlink > 1:
            target = os.readlink(path)
            os.unlink(path)
            os.symlink(target, path)
        os.lchown(path, new_uid, new_gid)
        changed += 1
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(info.st_mode))

    shift(root, os.lstat(root))
    for directory, names, files in os.walk(root):
        kept = []
        for name in names + files:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if info.st_dev != device:
                continue  # a mount point inside: not ours
            shift(path, info)
            if name in names and stat.S_ISDIR(info.st_mode):
                kept.append(name)
        names[:] = kept
    return changed
