"""User namespace ranges, ownership shifting and the spec options (pure logic, files in tmp)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from libcontainerd import oci
from libcontainerd._userns import (
    AUTO_ANNOTATION,
    CHOWN_ROOT_ANNOTATION,
    RANGE_BASE,
    RANGE_SIZE,
    RangeTable,
    host_id,
    id_maps,
    shift_ownership,
)
from libcontainerd.errors import InvalidArgument
from libcontainerd.images._remap import remapped_key

OWNER = {"address": "/run/x.sock", "namespace": "ns"}


def owner(container_id: str) -> dict[str, str]:
    return {**OWNER, "container_id": container_id}


def test_ranges_are_disjoint_lowest_first_and_reused_once_released(tmp_path: Path) -> None:
    table = RangeTable(str(tmp_path / "ranges.json"))
    first = table.allocate(owner("a"), set(), 0.0)
    second = table.allocate(owner("b"), set(), 0.0)
    assert (first, second) == (RANGE_BASE, RANGE_BASE + RANGE_SIZE)
    assert table.release(owner("a")) == [first]
    assert table.allocate(owner("c"), set(), 0.0) == first


def test_a_dead_allocators_range_and_a_gone_containers_range_are_reclaimed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ranges.json"
    dead_pid = 2**22 + 1  # above pid_max's default: no such process
    dead = {**owner("mid-create"), "phase": "creating", "pid": dead_pid, "at": 1.0}
    gone = {**owner("deleted"), "phase": "created", "pid": 0, "at": 1.0}
    alive = {**owner("alive"), "phase": "created", "pid": 0, "at": 1.0}
    # Its client died after Containers.Create, before it settled the entry.
    made = {**owner("made"), "phase": "creating", "pid": dead_pid, "at": 1.0}
    other = {**owner("elsewhere"), "namespace": "other", "phase": "creating", "pid": dead_pid}
    kinds = [dead, gone, alive, made, other]
    bases = [RANGE_BASE + index * RANGE_SIZE for index in range(len(kinds))]
    path.write_text(json.dumps(dict(zip(map(str, bases), kinds, strict=True))))
    table = RangeTable(str(path))
    assert table.allocate(owner("new"), {"alive", "made"}, 2.0) == bases[0]
    assert table.allocate(owner("newer"), {"alive", "made"}, 2.0) == bases[1]
    assert table.allocate(owner("newest"), {"alive", "made"}, 2.0) == bases[-1] + RANGE_SIZE
    entries = table.entries()
    assert [entries[base]["container_id"] for base in bases[2:]] == ["alive", "made", "elsewhere"]


def test_a_range_settled_after_the_listing_is_kept(tmp_path: Path) -> None:
    table = RangeTable(str(tmp_path / "ranges.json"))
    base = table.allocate(owner("racing"), set(), 0.0)
    table.settle(base)
    # Listed before it was settled: its container may be missing from the list.
    assert table.allocate(owner("next"), set(), 0.0) == base + RANGE_SIZE


def test_shift_ownership_moves_ids_by_the_maps_and_keeps_setuid_bits(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    program = root / "program"
    program.write_text("")
    os.chown(program, 0, 0)
    program.chmod(0o4755)
    (root / "link").symlink_to("program")
    os.lchown(root / "link", 1000, 1000)
    changed = shift_ownership(str(root), ((0, 100000, 65536),), ((0, 200000, 65536),))
    assert changed == 3
    info = program.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (100000, 200000, 0o4755)
    link = (root / "link").lstat()
    assert (link.st_uid, link.st_gid) == (101000, 201000)


def test_shift_ownership_leaves_a_symlink_shared_with_another_tree_as_it_was(
    tmp_path: Path,
) -> None:
    template = tmp_path / "template"
    template.mkdir()
    (template / "ls").symlink_to("busybox")
    root = tmp_path / "root"
    root.mkdir()
    os.link(template / "ls", root / "ls", follow_symlinks=False)
    assert (root / "ls").lstat().st_nlink == 2
    shift_ownership(str(root), ((0, 100000, 65536),), ((0, 200000, 65536),))
    mine, kept = (root / "ls").lstat(), (template / "ls").lstat()
    assert (mine.st_uid, mine.st_gid, mine.st_nlink) == (100000, 200000, 1)
    assert (kept.st_uid, kept.st_gid, kept.st_nlink) == (0, 0, 1)
    assert os.readlink(root / "ls") == "busybox"


def test_host_id_and_the_remapped_snapshot_name() -> None:
    maps = ((0, 5000, 10), (10, 9000, 5))
    assert [host_id(maps, i) for i in (0, 9, 10, 14, 15)] == [5000, 5009, 9000, 9004, None]
    simple = ((0, RANGE_BASE, RANGE_SIZE),)
    assert remapped_key("sha256:c", simple, simple) == f"sha256:c-{RANGE_BASE}-{RANGE_BASE}"
    assert remapped_key("sha256:c", maps, simple).startswith("sha256:c-5000-1073741824-")


def test_with_user_namespace_marks_auto_or_writes_the_maps() -> None:
    auto = oci.default_spec(["true"], "/r", oci.with_user_namespace())
    assert auto["annotations"][AUTO_ANNOTATION] == "auto"
    assert id_maps(auto) is None
    explicit = oci.default_spec(["true"], "/r", oci.with_user_namespace([(0, 7, 9)]))
    assert id_maps(explicit) == (((0, 7, 9),), ((0, 7, 9),))
    assert AUTO_ANNOTATION not in explicit.get("annotations", {})
    oci.validate_spec(explicit)
    owned = oci.default_spec(["true"], "/r", oci.with_user_namespace(chown_root=True))
    assert owned["annotations"][CHOWN_ROOT_ANNOTATION] == "true"
    for bad in ([], [(0, 1)], [(0, 1, 0)], [(-1, 0, 1)], "nope"):
        with pytest.raises(InvalidArgument):
            oci.with_user_namespace(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        oci.with_user_namespace(None, [(0, 1, 1)])


def test_with_sandbox_confines_every_part_of_the_spec() -> None:
    spec = oci.default_spec(["true"], "/r", oci.with_sandbox(memory=1 << 26, pids=10))
    oci.validate_spec(spec)
    assert all(caps == [] for caps in spec["process"]["capabilities"].values())
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["root"]["readonly"] is True
    assert {n["type"] for n in spec["linux"]["namespaces"]} >= {"user", "network", "cgroup"}
    assert spec["linux"]["resources"]["memory"] == {"limit": 1 << 26, "swap": 1 << 26}
    assert spec["linux"]["resources"]["pids"] == {"limit": 10}
    assert next(m for m in spec["mounts"] if m["destination"] == "/tmp")["type"] == "tmpfs"
    for bad in ({"memory": 0}, {"pids": 0}, {"tmp_size": -1}):
        with pytest.raises(InvalidArgument):
            oci.with_sandbox(**bad)  # type: ignore[arg-type]
