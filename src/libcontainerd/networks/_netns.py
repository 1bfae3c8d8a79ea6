"""Network namespaces made and pinned by a bind mount, as containerd's CRI does (blocking calls).

A namespace is made on a thread of its own (``unshare(CLONE_NEWNET)``
changes only the calling thread), its ``lo`` brought up (a socket made on
that thread belongs to the new namespace: one ioctl, no plugin to run) and
bind-mounted onto a file; the thread then ends, so no thread of this process
is ever left in it. The file keeps
the namespace alive without a process, across task restarts, until
:func:`unpin` detaches the mount.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import shutil
import socket
import struct
import subprocess
import threading
from typing import Final

__all__ = ["drop_criu_locks", "is_pinned", "pin_new", "unpin"]

_CLONE_NEWNET: Final = 0x40000000
_MS_BIND: Final = 4096
_MNT_DETACH: Final = 2
_NSFS_MAGIC: Final = 0x6E736673
_SIOCGIFFLAGS: Final = 0x8913
_SIOCSIFFLAGS: Final = 0x8914
_IFF_UP: Final = 0x1
_IFREQ: Final = "16sH22x"  # struct ifreq: the name, then ifr_flags (40 bytes in all)

_libc = ctypes.CDLL(None, use_errno=True)
log = logging.getLogger(__name__)
# CRIU's network lock: an nftables table named after the dumped root task's pid.
_CRIU_LOCK_PREFIX: Final = "table inet CRIU-"


def pin_new(path: str) -> None:
    """A new network namespace with only ``lo``, up, bind-mounted at ``path`` (which must not
    exist)."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    failure: list[OSError] = []

    def make() -> None:
        if _libc.unshare(_CLONE_NEWNET) != 0:
            number = ctypes.get_errno()
            failure.append(OSError(number, f"unshare(CLONE_NEWNET): {os.strerror(number)}"))
            return
        try:
            _loopback_up()
        except OSError as error:
            failure.append(OSError(error.errno, f"bring lo up in a new namespace: {error}"))
            return
        source = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        if _libc.mount(source, path.encode(), None, _MS_BIND, None) != 0:
            number = ctypes.get_errno()
            failure.append(
                OSError(number, f"bind-mount a namespace on {path}: {os.strerror(number)}")
            )

    thread = threading.Thread(target=make, name="libcontainerd-netns")
    thread.start()
    thread.join()
    if failure:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise failure[0]


def _loopback_up() -> None:
    """Set IFF_UP on ``lo`` of the calling thread's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack(_IFREQ, b"lo", 0)
        (_, flags) = struct.unpack(_IFREQ, fcntl.ioctl(probe.fileno(), _SIOCGIFFLAGS, request))
        fcntl.ioctl(probe.fileno(), _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def is_pinned(path: str) -> bool:
    """Whether ``path`` is a namespace's bind mount (an nsfs file), not the empty file under it."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except FileNotFoundError:
        return False


def unpin(path: str) -> None:
    """Detach the namespace's mount and remove the file; nothing to do if it is gone."""
    if _libc.umount2(path.encode(), _MNT_DETACH) != 0:
        number = ctypes.get_errno()
        if number not in (errno.EINVAL, errno.ENOENT):  # not a mount point, or no file
            raise OSError(number, f"unmount the namespace at {path}: {os.strerror(number)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def drop_criu_locks(path: str) -> int:
    """Delete the nftables tables CRIU's network lock left in the pinned namespace at ``path``.

    A dump that stops the container (checkpoint with ``exit``) keeps the
    network locked for the restore, which locks it again under the same
    name and fails ("Locking network failed using nftables") when the
    namespace outlived the task, as a pinned one does. Run before such a
    restore; the count of tables deleted. Without ``nft`` (Debian's
    ``nftables``) nothing is done and the reason is logged.
    """
    nft = shutil.which("nft")
    if nft is None:
        log.warning(
            "cannot look for CRIU's network lock in %s: nft is missing (apt-get install nftables)",
            path,
        )
        return 0
    enter = ["nsenter", f"--net={path}", nft]
    listed = subprocess.run(
        [*enter, "list", "tables"], capture_output=True, text=True, timeout=30, check=False
    )
    if listed.returncode != 0:
        log.warning("cannot list nftables tables in %s: %s", path, listed.stderr.strip())
        return 0
    locks = [
        line.split()[-1]
        for line in listed.stdout.splitlines()
        if line.startswith(_CRIU_LOCK_PREFIX)
    ]
    for table in locks:
        subprocess.run(
            [*enter, "delete", "table", "inet", table],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    return len(locks)
