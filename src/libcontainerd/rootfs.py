"""Root filesystems for users and tests, built from what the host already has.

:func:`busybox` makes a small runnable rootfs from Debian's ``busybox-static``
in a fraction of a second, with no image pull, so each test can have its own.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
from pathlib import Path

from ._limits import child_argv
from .errors import FailedPrecondition

__all__ = ["DEFAULT_BUSYBOX", "busybox"]

DEFAULT_BUSYBOX = "/bin/busybox"
"""Where Debian's ``busybox-static`` package installs its binary."""

_INSTALL_HINT = "install it with `apt-get install busybox-static`"

# The directories a container expects; runc mounts over proc, sys, dev and run.
_DIRECTORIES: dict[str, int] = {
    "bin": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "dev": 0o755,
    "tmp": 0o1777,
    "run": 0o755,
    "etc": 0o755,
    "root": 0o700,
    "home": 0o755,
    "var": 0o755,
    "var/tmp": 0o1777,
}

_FILES: dict[str, str] = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    ),
    "etc/group": "root:x:0:\nnobody:x:65534:\n",
    "etc/hostname": "busybox\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
}

_PT_INTERP = 3


def busybox(
    dest: str | os.PathLike[str], *, busybox_path: str | os.PathLike[str] = DEFAULT_BUSYBOX
) -> Path:
    """Build a busybox root filesystem at ``dest`` and return its absolute path.

    It holds a copy of the static binary (a copy, not a link: a container that
    writes to its ``/bin/busybox`` must not change the host's), one symlink
    per applet in ``bin/``, the usual directories, and ``/etc`` files for
    root and nobody. Running it again on the same ``dest`` is safe.

    Raises FileNotFoundError when ``busybox_path`` does not exist, and
    FailedPrecondition when it is not a statically linked ELF executable
    (a dynamic one would not find its libraries inside the container).
    """
    source = Path(busybox_path)
    try:
        program = source.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT, f"no busybox at {source}: {_INSTALL_HINT}", str(source)
        ) from None
    _require_static_elf(program, source)
    root = Path(os.path.abspath(dest))
    for name, mode in _DIRECTORIES.items():
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(mode)  # mkdir's mode is masked by the umask; tmp needs its sticky bit
    binary = root / "bin" / "busybox"
    _replace_file(binary, program, mode=0o755)
    for applet in _applets(binary):
        _link_applet(root / "bin" / applet)
    for name, text in _FILES.items():
        _replace_file(root / name, text.encode())
    return root


# ELF class -> (struct format of an address, offset of e_phoff, offset of e_phentsize)
_ELF_LAYOUT = {1: ("I", 28, 42), 2: ("Q", 32, 54)}


def _require_static_elf(program: bytes, path: Path) -> None:
    """Refuse anything but an ELF executable without a program interpreter (PT_INTERP)."""
    layout = (
        _ELF_LAYOUT.get(program[4]) if program[:4] == b"\x7fELF" and len(program) >= 64 else None
    )
    if layout is None:
        raise FailedPrecondition(f"{path} is not an ELF executable; {_INSTALL_HINT}")
    address, phoff_at, phentsize_at = layout
    order = "<" if program[5] == 1 else ">"
    (phoff,) = struct.unpack_from(order + address, program, phoff_at)
    phentsize, phnum = struct.unpack_from(order + "HH", program, phentsize_at)
    if phentsize < 4 or phoff + phentsize * phnum > len(program):
        raise FailedPrecondition(f"{path} has a truncated ELF program header table")
    for index in range(phnum):
        (kind,) = struct.unpack_from(order + "I", program, phoff + index * phentsize)
        if kind == _PT_INTERP:
            raise FailedPrecondition(
                f"{path} is dynamically linked and would not run inside a container;"
                f" {_INSTALL_HINT} (it provides a static /bin/busybox)"
            )


def _applets(binary: Path) -> list[str]:
    listing = subprocess.run(
        child_argv([str(binary), "--list"]),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if listing.returncode != 0:
        raise FailedPrecondition(
            f"{binary} --list failed ({listing.returncode}): {listing.stderr.strip()}"
        )
    return [name for name in listing.stdout.split() if name != "busybox" and "/" not in name]


def _link_applet(link: Path) -> None:
    if link.is_symlink() and os.readlink(link) == "busybox":
        return
    temporary = link.with_name(f".{link.name}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to("busybox")
    temporary.replace(link)


def _replace_file(path: Path, content: bytes, mode: int = 0o644) -> None:
    """Write a sibling file and rename it over ``path``, so a rerun never leaves half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.write_bytes(content)
    temporary.chmod(mode)
    temporary.replace(path)
