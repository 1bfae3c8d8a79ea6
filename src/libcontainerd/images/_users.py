"""A user given by name, resolved from the container's own ``/etc/passwd`` and ``/etc/group``.

containerd's rules (its ``oci.WithUser`` and ``WithAdditionalGIDs``):

- ``name``: the passwd entry's uid and gid; no such entry is an error;
- ``uid``: that uid, with its passwd entry's gid if it has one, else gid 0;
- ``user:group`` (each a name or a number): names looked up, numbers taken;
- the additional gids are the primary gid (containerd 1.6.18 and later) and
  every group of ``/etc/group`` that lists the user as a member.

Files are read from the root filesystem without following a symbolic link
out of it (an image's ``/etc/passwd -> /etc/shadow`` reads the image's, not
the host's). An image's root is read from its snapshot, mounted read-only
for the moment of reading, as containerd's client does.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .._api.containerd.api.types import mount_pb2
from ..errors import InvalidArgument, LibcontainerdError

__all__ = ["ResolvedUser", "mounted_read_only", "read_in_root", "resolve_user"]

_MAX_FILE: Final = 4 << 20
_MAX_LINKS: Final = 40


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


def _entries(text: str | None, fields: int) -> Iterator[list[str]]:
    for line in (text or "").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            yield parts


def _number(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def resolve_user(user: str, passwd: str | None, group: str | None, where: str) -> ResolvedUser:
    """``user`` as uid, gid and additional gids, from the files' text (None: no such file).

    Raises InvalidArgument naming the user or group that ``where`` lacks.
    """
    users = [(p[0], _number(p[2]), _number(p[3])) for p in _entries(passwd, 4)]
    groups = [(g[0], _number(g[2]), g[3].split(",") if g[3] else []) for g in _entries(group, 4)]
    name, _, group_part = user.partition(":")
    if not name or (":" in user and not group_part):
        raise InvalidArgument(f"user {user!r} is not name, uid, name:group or uid:gid")
    uid = _number(name)
    username = ""
    gid: int | None = None
    if uid is None:
        found = next((u for u in users if u[0] == name), None)
        if found is None or found[1] is None:
            raise InvalidArgument(f"no user {name!r} in {where}'s /etc/passwd")
        username, uid, gid = name, found[1], found[2]
    else:
        by_uid = next((u for u in users if u[1] == uid), None)
        if by_uid is not None:
            username = by_uid[0]
            if not group_part:
                gid = by_uid[2]
    if group_part:
        gid = _number(group_part)
        if gid is None:
            named = next((g for g in groups if g[0] == group_part), None)
            if named is None or named[1] is None:
                raise InvalidArgument(f"no group {group_part!r} in {where}'s /etc/group")
            gid = named[1]
    gid = gid or 0
    # The primary group first (containerd >= 1.6.18, CVE-2023-25173), then each
    # group that lists the user as a member.
    members = (
        g[1]
        for g in groups
        if username and g[0] != username and username in g[2] and g[1] is not None
    )
    return ResolvedUser(uid, gid, tuple(dict.fromkeys((gid, *members))))


def read_in_root(root: str | os.PathLike[str], path: str) -> str | None:
    """The text of ``path`` inside ``root``, links resolved inside it; None if there is none."""
    parts = [part for part in path.split("/") if part]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > _MAX_LINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    final = os.path.join(root, *resolved)
    try:
        fd = os.open(final, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
        return file.read(_MAX_FILE).decode(errors="replace")


@contextlib.contextmanager
def mounted_read_only(mounts: Sequence[mount_pb2.Mount]) -> Iterator[Path]:
    """The root filesystem these snapshot mounts make, as a read-only folder (blocking).

    A single bind mount is its source folder itself; anything else (overlay)
    is mounted on a private temporary folder and unmounted afterwards.
    """
    if len(mounts) == 1 and mounts[0].type == "bind":
        yield Path(mounts[0].source)
        return
    if len(mounts) != 1:
        raise LibcontainerdError(f"cannot read a root made of {len(mounts)} mounts")
    mount = mounts[0]
    options = [o for o in mount.options if not o.startswith(("upperdir=", "workdir="))]
    upper = next((o[len("upperdir=") :] for o in mount.options if o.startswith("upperdir=")), "")
    if upper and mount.type == "overlay":
        # The writable layer becomes the top read-only one.
        options = [
            f"lowerdir={upper}:{o[len('lowerdir=') :]}" if o.startswith("lowerdir=") else o
            for o in options
        ]
    target = tempfile.mkdtemp(prefix="libcontainerd-root-")
    try:
        _mount_read_only(mount.type, mount.source, options, target)
        try:
            yield Path(target)
        finally:
            _unmount(target)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(target)


# mount(2)'s flags for the generic options a snapshot's mount may carry; the
# others (lowerdir=, index=off, userxattr, ...) are the filesystem's own data.
_MS_RDONLY: Final = 0x1
_FLAGS: Final = {"ro": _MS_RDONLY, "nosuid": 0x2, "nodev": 0x4, "noexec": 0x8, "rw": 0}
_MNT_DETACH: Final = 0x2
_libc = ctypes.CDLL(None, use_errno=True)


def _mount_read_only(kind: str, source: str, options: Sequence[str], target: str) -> None:
    """mount(2) directly: a mount(8) and umount(8) process each cost a lookup ~5 ms."""
    flags = _MS_RDONLY
    data = []
    for option in options:
        if option in _FLAGS:
            flags |= _FLAGS[option]
        else:
            data.append(option)
    done = _libc.mount(
        source.encode(), target.encode(), kind.encode(), flags, ",".join(data).encode()
    )
    if done != 0:
        number = ctypes.get_errno()
        raise LibcontainerdError(
            f"cannot mount the image's root ({kind}) read-only on {target}: {os.strerror(number)}"
        )


def _unmount(target: str) -> None:
    if _libc.umount2(target.encode(), _MNT_DETACH) != 0:
        number = ctypes.get_errno()
        raise LibcontainerdError(f"cannot unmount {target}: {os.strerror(number)}")
