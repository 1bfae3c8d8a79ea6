"""What the network room keeps on the host, under ``/run`` (a reboot leaves nothing stale).

::

    /run/libcontainerd/networks/
        cni.lock                  one CNI operation at a time on this host (flock)
        ipam/<network>/           host-local's leases
        containers/<cni id>.json  a container's attachment: written before ADD
        netns/<cni id>            its pinned network namespace
        files/<cni id>/           its resolv.conf, hosts and hostname

A container's record is written (phase ``adding``) before CNI ADD runs and
holds the conflist, the namespace and, once ADD answered, its result: a
client killed at any point leaves enough for the next one to run DEL. A
record is flock-ed by the client working on it, so the next client knows a
live one from a dead one's leftovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["STATE_DIR", "AttachmentRecord", "HostLock", "Layout", "cni_id"]

STATE_DIR: Final = "/run/libcontainerd/networks"
_POLL_FIRST: Final = 0.002
_POLL_MAX: Final = 0.05


def cni_id(address: str, namespace: str, container_id: str) -> str:
    """The CNI container id: unique on the host across daemons and namespaces, and readable."""
    digest = hashlib.sha256(f"{address}\0{namespace}\0{container_id}".encode()).hexdigest()
    return f"lcd{digest[:12]}-{container_id}"


@dataclass(frozen=True, slots=True)
class Layout:
    """The folders under a state directory."""

    root: str = STATE_DIR

    @property
    def lock(self) -> str:
        return os.path.join(self.root, "cni.lock")

    @property
    def ipam(self) -> str:
        return os.path.join(self.root, "ipam")

    @property
    def containers(self) -> str:
        return os.path.join(self.root, "containers")

    @property
    def netns(self) -> str:
        return os.path.join(self.root, "netns")

    @property
    def files(self) -> str:
        return os.path.join(self.root, "files")

    def record(self, key: str) -> str:
        return os.path.join(self.containers, f"{key}.json")

    def namespace(self, key: str) -> str:
        return os.path.join(self.netns, key)

    def files_of(self, key: str) -> str:
        return os.path.join(self.files, key)

    def make(self) -> None:
        for folder in (self.ipam, self.containers, self.netns, self.files):
            os.makedirs(folder, mode=0o700, exist_ok=True)

    def record_keys(self) -> list[str]:
        """The ids of every attachment record on the host."""
        try:
            names = os.listdir(self.containers)
        except FileNotFoundError:
            return []
        return sorted(name[: -len(".json")] for name in names if name.endswith(".json"))

    def pinned(self) -> list[str]:
        try:
            return sorted(os.listdir(self.netns))
        except FileNotFoundError:
            return []


async def _flock(fd: int) -> None:
    """Take an exclusive flock, polling: a blocked thread could not be cancelled."""
    delay = _POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)


class HostLock:
    """One CNI operation at a time on the host: CNI plugins are not safe run concurrently
    (iptables chain creation races: "CHAIN_USER_ADD File exists").

    Within a process an asyncio lock queues the callers fairly; across
    processes a flock on one file does, and dies with its holder.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._local: asyncio.Lock | None = None

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        if self._local is None:
            self._local = asyncio.Lock()
        async with self._local:
            os.makedirs(os.path.dirname(self._path), mode=0o700, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                await _flock(fd)
                yield
            finally:
                os.close(fd)  # releases the flock


class AttachmentRecord:
    """A container's attachment record, flock-ed while this client works on it."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd
        self.data: dict[str, Any] = {}

    @classmethod
    def try_lock(cls, path: str, *, create: bool) -> AttachmentRecord | None:
        """The record, locked; None when another live client holds it.

        Raises FileNotFoundError when it does not exist and ``create`` is False.
        """
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        record = cls(path, fd)
        try:
            # Removed by its last holder between our open and our lock: not the live file.
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)
            record.data = _load(fd)
        except BaseException:
            record.release()
            raise
        return record

    def save(self) -> None:
        """Write the record in place (a tmpfs file, small: written whole, then truncated)."""
        payload = json.dumps(self.data, separators=(",", ":")).encode()
        os.pwrite(self._fd, payload, 0)
        os.ftruncate(self._fd, len(payload))

    def remove(self) -> None:
        """Unlink the record (still locked: a client waiting on it sees it gone)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _load(fd: int) -> dict[str, Any]:
    size = os.fstat(fd).st_size
    if size == 0:
        return {}
    try:
        document = json.loads(os.pread(fd, size, 0))
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def read_record(path: str) -> dict[str, Any]:
    """A record's content without locking it (for look-ups), {} when missing or unreadable."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return _load(fd)
        finally:
            os.close(fd)
    return {}


def iter_records(layout: Layout) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in layout.record_keys():
        yield key, read_record(layout.record(key))
