"""The busybox root filesystem: its layout, that it runs, and what it refuses."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from libcontainerd import rootfs
from libcontainerd.errors import FailedPrecondition

from ..ci import missing


@pytest.fixture(autouse=True)
def busybox_installed() -> None:
    """Every test here needs busybox-static (a failure in CI, where ./run installs it)."""
    if not Path(rootfs.DEFAULT_BUSYBOX).exists():
        missing("needs busybox-static")


def test_busybox_rootfs_has_the_binary_the_applets_and_the_directories(tmp_path: Path) -> None:
    root = rootfs.busybox(tmp_path / "rootfs")

    assert root == tmp_path / "rootfs"
    binary = root / "bin" / "busybox"
    assert binary.is_file()
    assert not binary.is_symlink()
    assert os.access(binary, os.X_OK)
    for applet in ("sh", "ls", "sleep", "cat", "echo", "id"):
        assert os.readlink(root / "bin" / applet) == "busybox"
    for directory in ("proc", "sys", "dev", "tmp", "run", "etc", "root", "home", "var/tmp"):
        assert (root / directory).is_dir(), directory
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((root / "var" / "tmp").stat().st_mode) == 0o1777


def test_busybox_rootfs_links_every_applet_busybox_lists(tmp_path: Path) -> None:
    root = rootfs.busybox(tmp_path)
    listed = subprocess.run(
        [rootfs.DEFAULT_BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    linked = {entry.name for entry in (root / "bin").iterdir() if entry.is_symlink()}
    assert linked == set(listed) - {"busybox"}


def test_busybox_rootfs_has_root_and_nobody_and_host_files(tmp_path: Path) -> None:
    root = rootfs.busybox(tmp_path)
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    group = (root / "etc" / "group").read_text().splitlines()
    assert [line.split(":")[:3] for line in passwd] == [
        ["root", "x", "0"],
        ["nobody", "x", "65534"],
    ]
    assert [line.split(":")[0] for line in group] == ["root", "nobody"]
    assert (root / "etc" / "hostname").read_text().strip()
    assert "localhost" in (root / "etc" / "hosts").read_text()


def test_busybox_binary_is_a_copy_not_a_link_to_the_host(tmp_path: Path) -> None:
    root = rootfs.busybox(tmp_path)
    assert (root / "bin" / "busybox").stat().st_ino != Path(rootfs.DEFAULT_BUSYBOX).stat().st_ino
    assert (root / "bin" / "busybox").read_bytes() == Path(rootfs.DEFAULT_BUSYBOX).read_bytes()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chroot") is None, reason="needs root")
def test_busybox_rootfs_runs_a_shell_under_chroot(tmp_path: Path) -> None:
    root = rootfs.busybox(tmp_path / "rootfs")
    result = subprocess.run(
        ["chroot", str(root), "/bin/sh", "-c", "echo ok; id -un"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "root"]


def test_busybox_rerun_on_the_same_dest_is_fine(tmp_path: Path) -> None:
    first = rootfs.busybox(tmp_path)
    (first / "bin" / "sh").unlink()  # a damaged tree is repaired, not refused
    (first / "etc" / "passwd").write_text("garbage\n")
    second = rootfs.busybox(tmp_path)
    assert second == first
    assert os.readlink(second / "bin" / "sh") == "busybox"
    assert (second / "etc" / "passwd").read_text().startswith("root:")
    assert not list(second.rglob(".*.tmp"))


def test_busybox_accepts_a_relative_dest_and_returns_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = rootfs.busybox("relative")
    assert root.is_absolute()
    assert root == tmp_path / "relative"


def test_busybox_refuses_a_dynamically_linked_binary(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match=r"/bin/ls is dynamically linked.*busybox-static"):
        rootfs.busybox(tmp_path / "rootfs", busybox_path="/bin/ls")
    assert not (tmp_path / "rootfs").exists()


def test_busybox_refuses_a_file_that_is_not_elf(tmp_path: Path) -> None:
    script = tmp_path / "busybox"
    script.write_text("#!/bin/sh\necho fake\n")
    with pytest.raises(FailedPrecondition, match="is not an ELF executable"):
        rootfs.busybox(tmp_path / "rootfs", busybox_path=script)


def test_busybox_refuses_a_truncated_elf(tmp_path: Path) -> None:
    truncated = tmp_path / "busybox"
    truncated.write_bytes(Path(rootfs.DEFAULT_BUSYBOX).read_bytes()[:64])
    with pytest.raises(FailedPrecondition, match="truncated ELF program header table"):
        rootfs.busybox(tmp_path / "rootfs", busybox_path=truncated)


def test_busybox_missing_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install busybox-static"):
        rootfs.busybox(tmp_path / "rootfs", busybox_path=tmp_path / "no-busybox")
