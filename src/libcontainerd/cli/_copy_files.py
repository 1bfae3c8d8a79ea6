"""Copying files between the host and a container's root, never leaving that root.

Paths inside the container are resolved one component at a time from a
descriptor of its root (:func:`open_in_root`): a symlink is followed as the
container would see it (an absolute target starts again at the root, ``..``
stops there), so no link, however crafted, reaches the host's files. The
copy itself (:func:`copy_entry`) works on descriptors and never follows a
link either: links are copied as links, as ``docker cp`` does. A container
that changes its files meanwhile can make a copy fail, not escape.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque
from dataclasses import dataclass

__all__ = ["CopyReport", "copy_entry", "open_in_root", "reopen"]

# As the kernel's own limit on links followed in one lookup.
_MAX_LINKS = 40
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


def open_in_root(root_fd: int, path: str, *, follow_final: bool = True) -> int:
    """An ``O_PATH`` descriptor of ``path`` resolved inside the root ``root_fd`` is.

    Raises FileNotFoundError, NotADirectoryError, or OSError(ELOOP) for too
    many links; the caller closes the descriptor.
    """
    stack = [os.dup(root_fd)]  # the directories from the root down to where we are
    parts = deque(part for part in path.split("/") if part not in ("", "."))
    links = 0
    try:
        while parts:
            name = parts.popleft()
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            fd = os.open(name, _PATH_FLAGS, dir_fd=stack[-1])
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode) and (parts or follow_final):
                target = os.readlink(name, dir_fd=stack[-1])
                os.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if parts and not stat.S_ISDIR(mode):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def reopen(path_fd: int, flags: int) -> int:
    """Open what an ``O_PATH`` descriptor names, for reading or writing (the same inode)."""
    return os.open(f"/proc/self/fd/{path_fd}", flags | os.O_CLOEXEC)


@dataclass
class CopyReport:
    """What a copy did: bytes of file content, and special files it left out."""

    bytes: int = 0
    skipped: int = 0


def copy_entry(
    src_dir: int, src_name: str, dst_dir: int, dst_name: str, report: CopyReport
) -> None:
    """Copy ``src_name`` in directory ``src_dir`` to ``dst_name`` in ``dst_dir``, recursively.

    Files, directories (merged into an existing one) and symlinks (as links);
    modes are kept, owners are the copier's; devices, FIFOs and sockets are
    skipped (counted in ``report``). Nothing is ever followed through a link.
    """
    mode = os.stat(src_name, dir_fd=src_dir, follow_symlinks=False).st_mode
    if stat.S_ISDIR(mode):
        _copy_directory(src_dir, src_name, dst_dir, dst_name, stat.S_IMODE(mode), report)
    elif stat.S_ISREG(mode):
        _copy_file(src_dir, src_name, dst_dir, dst_name, stat.S_IMODE(mode), report)
    elif stat.S_ISLNK(mode):
        target = os.readlink(src_name, dir_fd=src_dir)
        _make_way(dst_dir, dst_name)
        os.symlink(target, dst_name, dir_fd=dst_dir)
    else:
        report.skipped += 1


def _copy_directory(
    src_dir: int, src_name: str, dst_dir: int, dst_name: str, mode: int, report: CopyReport
) -> None:
    try:
        os.mkdir(dst_name, 0o700, dir_fd=dst_dir)
    except FileExistsError:
        existing = os.stat(dst_name, dir_fd=dst_dir, follow_symlinks=False).st_mode
        if not stat.S_ISDIR(existing):
            raise NotADirectoryError(
                errno.ENOTDIR, f"cannot copy a directory onto a non-directory {dst_name!r}"
            ) from None
    directory_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    source = os.open(src_name, directory_flags, dir_fd=src_dir)
    try:
        target = os.open(dst_name, directory_flags, dir_fd=dst_dir)
        try:
            with os.scandir(source) as entries:
                names = [entry.name for entry in entries]
            for name in names:
                copy_entry(source, name, target, name, report)
            os.fchmod(target, mode)
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_file(
    src_dir: int, src_name: str, dst_dir: int, dst_name: str, mode: int, report: CopyReport
) -> None:
    source = os.open(src_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        _make_way(dst_dir, dst_name, keep_files=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        target = os.open(dst_name, flags, 0o600, dir_fd=dst_dir)
        try:
            while chunk := os.read(source, _CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(target, view) :]
                report.bytes += len(chunk)
            os.fchmod(target, mode)
        finally:
            os.close(target)
    finally:
        os.close(source)


def _make_way(directory: int, name: str, keep_files: bool = False) -> None:
    """Remove a link (or, unless ``keep_files``, a file) in the way; refuse a directory."""
    try:
        mode = os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, f"cannot overwrite directory {name!r}")
    if stat.S_ISREG(mode) and keep_files:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=directory)
