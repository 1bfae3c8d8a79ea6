"""A checkpoint's user namespace read from CRIU images written here by hand, and its access."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from libcontainerd._criu_images import (
    ImageError,
    open_to_namespace_root,
    refused_to_namespace_root,
    user_namespace_maps,
)
from libcontainerd._userns import check_restorable
from libcontainerd.errors import InvalidArgument

COMMON_MAGIC = 0x54564319
MAPS = (((0, 300000, 65536),), ((0, 400000, 1000), (1000, 500000, 10)))


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def image(path: Path, *entries: bytes) -> None:
    """An image as CRIU writes it: two magic numbers, then length-prefixed entries."""
    data = struct.pack("<II", COMMON_MAGIC, 0x12345678)
    path.write_bytes(data + b"".join(struct.pack("<I", len(e)) + e for e in entries))


def checkpoint(folder: Path, maps: tuple[tuple[tuple[int, int, int], ...], ...] | None) -> Path:
    """pstree (root task 1, then a child 7), ids-1 (user_ns_id 14 among others), userns-14."""
    folder.mkdir()
    image(folder / "pstree.img", field(1, 1) + field(2, 0), field(1, 7) + field(2, 1))
    ids = field(1, 2) + field(2, 2) + field(6, 9) + field(10, 14) + field(11, 13)
    image(folder / "ids-1.img", ids)
    if maps is not None:
        entry = b"".join(
            field(number, field(1, inside) + field(2, outside) + field(3, size))
            for number, extents in ((1, maps[0]), (2, maps[1]))
            for inside, outside, size in extents
        )
        image(folder / "userns-14.img", entry)
    return folder


def test_the_root_task_s_maps_are_read(tmp_path: Path) -> None:
    assert user_namespace_maps(checkpoint(tmp_path / "cp", MAPS)) == MAPS


def test_a_task_in_the_host_s_user_namespace_has_no_maps(tmp_path: Path) -> None:
    assert user_namespace_maps(checkpoint(tmp_path / "cp", None)) is None


def test_a_missing_or_cut_image_is_an_image_error(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "cp", MAPS)
    data = (folder / "userns-14.img").read_bytes()
    (folder / "userns-14.img").write_bytes(data[:-3])
    with pytest.raises(ImageError, match=r"userns-14\.img is not a CRIU image"):
        user_namespace_maps(folder)
    (folder / "pstree.img").unlink()
    with pytest.raises(ImageError, match=r"pstree\.img: No such file"):
        user_namespace_maps(folder)


def test_a_restore_into_other_maps_is_refused_naming_both(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "cp", MAPS)
    check_restorable("c", folder, (MAPS[0], tuple(reversed(MAPS[1]))))  # the order is no matter
    other = (((0, 600000, 65536),), ((0, 600000, 65536),))
    with pytest.raises(InvalidArgument, match="maps uids 0:300000:65536 and gids 0:400000:1000,"):
        check_restorable("c", folder, other)
    with pytest.raises(InvalidArgument, match="the container's none \\(the host's ids\\)"):
        check_restorable("c", folder, None)
    unconfined = checkpoint(tmp_path / "unconfined", None)
    with pytest.raises(InvalidArgument, match=r"maps none .* without a user namespace"):
        check_restorable("c", unconfined, other)
    check_restorable("c", unconfined, None)


def test_unreadable_images_are_refused_until_opened_to_the_namespace_s_root(
    tmp_path: Path,
) -> None:
    folder = checkpoint(tmp_path / "cp", MAPS)
    folder.chmod(0o700)
    for path in folder.iterdir():
        path.chmod(0o600)
    # Ids that own nothing here: only the group, once opened, lets them in.
    uid, gid = os.geteuid() + 300000, os.getegid()
    assert refused_to_namespace_root(folder, uid, gid) == f"{folder} (mode 0700, owner" + (
        f" {os.geteuid()}:{os.getegid()})"
    )
    open_to_namespace_root(folder, gid)
    assert folder.stat().st_mode & 0o777 == 0o750
    assert {path.stat().st_mode & 0o777 for path in folder.iterdir()} == {0o640}
    assert refused_to_namespace_root(folder, uid, gid) == ""
