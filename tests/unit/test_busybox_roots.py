"""lcd's busybox roots: a clone of the template shares symlinks, never file contents."""

from __future__ import annotations

import os
from pathlib import Path

from libcontainerd.cli._busybox_roots import _clone


def _template(tmp_path: Path) -> Path:
    template = tmp_path / "template"
    (template / "bin").mkdir(parents=True)
    (template / "etc").mkdir(mode=0o755)
    (template / "bin" / "busybox").write_bytes(b"\x7fELF...")
    (template / "bin" / "busybox").chmod(0o755)
    (template / "bin" / "sh").symlink_to("busybox")
    (template / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (template / "etc" / "passwd").chmod(0o644)
    return template


def test_a_clone_has_its_own_files_and_shares_the_symlinks(tmp_path: Path) -> None:
    template = _template(tmp_path)
    clone = tmp_path / "clone"
    clone.mkdir()
    _clone(str(template), str(clone))
    assert os.readlink(clone / "bin" / "sh") == "busybox"
    assert os.path.samestat((clone / "bin" / "sh").lstat(), (template / "bin" / "sh").lstat())
    for name in ("bin/busybox", "etc/passwd"):
        mine, theirs = (clone / name).stat(), (template / name).stat()
        assert not os.path.samestat(mine, theirs), name
        assert (clone / name).read_bytes() == (template / name).read_bytes()
        assert mine.st_mode == theirs.st_mode
    # What a container writes stays in its clone; replacing a symlink too.
    (clone / "bin" / "busybox").write_bytes(b"changed")
    (clone / "bin" / "sh").unlink()
    (clone / "bin" / "sh").symlink_to("elsewhere")
    assert (template / "bin" / "busybox").read_bytes() == b"\x7fELF..."
    assert os.readlink(template / "bin" / "sh") == "busybox"
