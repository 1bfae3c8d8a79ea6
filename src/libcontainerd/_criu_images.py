"""A checkpoint's CRIU images as a user-namespaced restore needs them: their maps, their access.

CRIU restores a task into the user namespace recorded in the images, with
the recorded maps, whatever the container's spec says; and it opens the
images from inside that namespace, as its root. So before a restore the
checkpoint's maps must be the container's (else the process would run as
ids another container may own now, or as the host's root in a container
meant to be confined), and the images must be readable by the namespace's
root; after a checkpoint they are made so.

The images are read, not run: each is a magic number (two for most), then
entries of a little-endian u32 length and a protobuf message (CRIU's
``images/*.proto``). Three fields are decoded here: the root task's pid
(``pstree.img``: ``pstree_entry.pid``, field 1 of the first entry), its user
namespace's id (``ids-<pid>.img``: ``task_kobj_ids_entry.user_ns_id``, field
10) and that namespace's maps (``userns-<id>.img``: ``userns_entry.uid_map``
and ``gid_map``, fields 1 and 2, each a ``uid_gid_extent`` of ``first``,
``lower_first`` and ``count``, fields 1 to 3). A task left in the dumping
CRIU's own user namespace (the host's) has no ``userns`` image.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = [
    "ImageError",
    "Maps",
    "open_to_namespace_root",
    "refused_to_namespace_root",
    "user_namespace_maps",
]

Maps = tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, int, int], ...]]
"""(uid map, gid map), each of (inside, outside, size) triples."""

_COMMON_MAGIC: Final = 0x54564319  # the first magic of every image that has two
_VARINT, _LENGTH = 0, 2  # protobuf wire types; the others are skipped by size
_FIXED_SIZES: Final = {1: 8, 5: 4}


class ImageError(ValueError):
    """An image that is missing or not what CRIU writes."""


def user_namespace_maps(directory: Path) -> Maps | None:
    """The maps of the checkpointed root task's user namespace; None for the host's.

    Raises ImageError when the images needed cannot be read (blocking).
    """
    [pstree, *_] = _entries(directory / "pstree.img") or [b""]
    pid = _varint_field(pstree, 1, "pstree.img")
    [ids, *_] = _entries(directory / f"ids-{pid}.img") or [b""]
    namespace = _varint_field(ids, 10, f"ids-{pid}.img")
    path = directory / f"userns-{namespace}.img"
    if not path.exists():
        return None
    [entry, *_] = _entries(path) or [b""]
    uids: list[tuple[int, int, int]] = []
    gids: list[tuple[int, int, int]] = []
    for number, value in _fields(entry, path.name):
        if number in (1, 2) and isinstance(value, bytes):
            extent = {n: v for n, v in _fields(value, path.name) if isinstance(v, int)}
            triple = (extent.get(1, 0), extent.get(2, 0), extent.get(3, 0))
            (uids if number == 1 else gids).append(triple)
    return tuple(uids), tuple(gids)


def _entries(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path.name}: {error.strerror}") from None
    if len(data) < 4:
        raise ImageError(f"{path.name} is not a CRIU image (too short)")
    offset = 8 if struct.unpack_from("<I", data)[0] == _COMMON_MAGIC else 4
    entries = []
    while offset < len(data):
        if offset + 4 > len(data):
            raise ImageError(f"{path.name} is not a CRIU image (an entry is cut short)")
        (size,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + size > len(data):
            raise ImageError(f"{path.name} is not a CRIU image (an entry is cut short)")
        entries.append(data[offset : offset + size])
        offset += size
    return entries


def _varint_field(message: bytes, wanted: int, name: str) -> int:
    for number, value in _fields(message, name):
        if number == wanted and isinstance(value, int):
            return value
    raise ImageError(f"{name} has no field {wanted}")


def _fields(message: bytes, name: str) -> Iterator[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a protobuf message: varints and length-delimited."""
    offset = 0
    while offset < len(message):
        key, offset = _varint(message, offset, name)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, offset = _varint(message, offset, name)
            yield number, value
        elif wire == _LENGTH:
            size, offset = _varint(message, offset, name)
            if offset + size > len(message):
                raise ImageError(f"{name}: a field runs past its entry")
            yield number, message[offset : offset + size]
            offset += size
        elif wire in _FIXED_SIZES:
            offset += _FIXED_SIZES[wire]
        else:
            raise ImageError(f"{name}: unknown protobuf wire type {wire}")


def _varint(data: bytes, offset: int, name: str) -> tuple[int, int]:
    value = shift = 0
    while offset < len(data) and shift < 64:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
    raise ImageError(f"{name}: a number is cut short")


# -- access for the namespace's root ------------------------------------------------------


def open_to_namespace_root(directory: Path, gid: int) -> None:
    """Give the images' group, and read access, to the namespace root's host gid (blocking).

    Others keep no access: the images hold the container's memory.
    """
    for path in (directory, *directory.glob("*.img")):
        info = path.lstat()
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            continue
        os.lchown(path, -1, gid)
        wanted = stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(info.st_mode) else 0)
        os.chmod(path, stat.S_IMODE(info.st_mode) | wanted)


def refused_to_namespace_root(directory: Path, uid: int, gid: int) -> str:
    """The first of the images' folder and files that host uid/gid may not read, or ""."""
    for path in (directory, *sorted(directory.glob("*.img"))):
        try:
            info = path.stat()
        except OSError:
            continue
        need = 0o1 if stat.S_ISDIR(info.st_mode) else 0o4  # CRIU opens the images by name
        if info.st_uid == uid:
            granted = info.st_mode >> 6
        elif info.st_gid == gid:
            granted = info.st_mode >> 3
        else:
            granted = info.st_mode
        if granted & need != need:
            return (
                f"{path} (mode {stat.S_IMODE(info.st_mode):04o}, owner {info.st_uid}:{info.st_gid})"
            )
    return ""
