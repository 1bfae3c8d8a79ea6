"""The busybox root filesystems of ``lcd run -- CMD``: cloned from one template per busybox.

Why: building a root with :func:`libcontainerd.rootfs.busybox` asks the binary
for its applets (a subprocess) and writes each link with care for reruns,
~30 ms per container; cloning a finished template is a few system calls per
file. Each container still gets its own tree and its own copy of every file,
so what one container writes (even to its ``/bin/busybox``) no other sees,
and ``lcd rm`` removes it as before. The applets' symlinks (268 of the 285
entries) are hard links to the template's: a new symlink costs an inode
(~0.1-0.3 ms each on this ext4, 25-55 ms a root), a link does not (~3 ms
for all). A symlink's target cannot be changed, only replaced (which
replaces this container's entry alone); what the links share is a symlink's
own owner and times (``chown -h``, ``touch -h`` as root in a container).
A root whose ownership is shifted for a user namespace (``--sandbox``) gets
its own symlinks first (:func:`libcontainerd._userns.shift_ownership`).
The template is named after the host binary's identity (inode, size,
modification time): an upgraded busybox gets a new template.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .. import rootfs

__all__ = ["busybox_root"]


def busybox_root(root_dir: str, dest: Path) -> Path:
    """Fill the empty directory ``dest`` with a busybox root filesystem; return ``dest``.

    Raises what :func:`rootfs.busybox` raises when the host's busybox is missing or unfit.
    """
    _clone(_template(root_dir), str(dest))
    return dest


def _template(root_dir: str) -> str:
    """The finished template for the host's busybox, built once (atomically) if missing."""
    source = Path(rootfs.DEFAULT_BUSYBOX)
    try:
        info = source.stat()
    except FileNotFoundError:
        rootfs.busybox(tempfile.gettempdir(), busybox_path=source)  # raises its clear error
        raise
    parent = Path(root_dir, "rootfs")
    # Namespaces cannot start with '.', so this never meets a namespace's folder.
    template = parent / f".busybox-{info.st_ino}-{info.st_size}-{info.st_mtime_ns}"
    if template.is_dir():
        return str(template)
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".busybox-building-", dir=parent))
    try:
        building.chmod(0o755)
        rootfs.busybox(building, busybox_path=source)
        with contextlib.suppress(OSError):  # another lcd finished one first: use that
            building.rename(template)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return str(template)


def _clone(source: str, dest: str) -> None:
    """Copy the tree ``source`` into the existing ``dest``: modes kept, symlinks as symlinks."""
    with os.scandir(source) as entries:
        for entry in entries:
            target = os.path.join(dest, entry.name)
            if entry.is_symlink():
                try:
                    os.link(entry.path, target, follow_symlinks=False)
                except OSError:  # too many links (EMLINK), another filesystem, ...
                    os.symlink(os.readlink(entry.path), target)
                continue
            mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            if entry.is_dir(follow_symlinks=False):
                os.mkdir(target)
                os.chmod(target, mode)  # mkdir's mode is masked by the umask (tmp is sticky)
                _clone(entry.path, target)
            else:
                shutil.copyfile(entry.path, target, follow_symlinks=False)
                os.chmod(target, mode)
