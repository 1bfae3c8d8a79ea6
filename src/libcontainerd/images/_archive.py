"""Reading an image archive once, front to back: a tar, plain or compressed, never held whole.

:class:`ArchiveReader` opens a path or a binary file object (stdin works) and
walks its entries in order; each regular file's bytes are read in chunks as
the caller streams them on. Its methods block (file I/O, decompression): the
importer calls them from a worker thread.

Every name is checked as it is met: an absolute path, a ``..`` that leaves
the archive, a symbolic or hard link that points outside it raise
:class:`UnsafeArchive`; a truncated or corrupt archive raises InvalidImage.
Nothing is ever written to the local filesystem.
"""

from __future__ import annotations

import gzip
import lzma
import os
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO, Final

from ..errors import InvalidImage, UnsafeArchive

__all__ = ["ArchiveReader", "Entry", "clean_path"]

# Errors of a tar stream that is cut short or is not what it claims.
_BROKEN: Final = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
)


def clean_path(name: str, what: str) -> str:
    """``name`` as a relative path inside the archive, or UnsafeArchive if it leaves it."""
    if name.startswith("/"):
        raise UnsafeArchive(f"{what} {name!r} is an absolute path")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeArchive(f"{what} {name!r} leaves the archive ('..')")
        parts.append(part)
    if not parts:
        raise UnsafeArchive(f"{what} {name!r} names no file")
    return "/".join(parts)


def _link_target(entry: str, target: str) -> str:
    """Where a symbolic link inside the archive points, or UnsafeArchive if outside it."""
    if target.startswith("/"):
        raise UnsafeArchive(f"symbolic link {entry!r} points to the absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry), target))
    if resolved == ".." or resolved.startswith("../") or resolved == ".":
        raise UnsafeArchive(f"symbolic link {entry!r} points outside the archive ({target!r})")
    return resolved


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive entry: a regular ``file`` (with its size) or a ``link`` to another entry."""

    name: str
    kind: str  # "file", "link" or "directory"
    size: int = 0
    target: str = ""  # for a link: the entry it names


class ArchiveReader:
    """The entries of a tar stream, in order (blocking; see the module docstring).

    ``source`` is a path or a binary file object open for reading; a path is
    opened and closed here, a file object is left open for its owner.
    """

    def __init__(self, source: str | os.PathLike[str] | IO[bytes]) -> None:
        self._owned: IO[bytes] | None = None
        if isinstance(source, str | os.PathLike):
            self._owned = open(source, "rb")  # noqa: SIM115 - closed by close()
            file: IO[bytes] = self._owned
        else:
            file = source
        try:
            # "r|*": a forward-only stream, gzip/bzip2/xz detected from its first bytes.
            self._tar = tarfile.open(fileobj=file, mode="r|*")  # noqa: SIM115 - see close()
        except _BROKEN as error:
            self.close()
            raise InvalidImage(
                f"not an image archive (a tar, plain or compressed): {error}"
            ) from None
        except BaseException:
            self.close()
            raise
        self._members = iter(self._tar)
        self._current: IO[bytes] | None = None

    def next(self) -> Entry | None:
        """The next entry that matters (files, links); None at the end of the archive."""
        self._current = None
        while True:
            try:
                member = next(self._members, None)
            except _BROKEN as error:
                raise InvalidImage(f"the archive is truncated or corrupt: {error}") from None
            if member is None:
                return None
            name = clean_path(member.name, "archive entry")
            if member.isdir():
                continue
            if member.issym():
                return Entry(name, "link", target=_link_target(name, member.linkname))
            if member.islnk():
                return Entry(name, "link", target=clean_path(member.linkname, "hard link target"))
            if not member.isfile():
                raise UnsafeArchive(
                    f"archive entry {name!r} is a device, FIFO or other special file"
                )
            try:
                self._current = self._tar.extractfile(member)
            except _BROKEN as error:
                raise InvalidImage(f"the archive is truncated or corrupt: {error}") from None
            return Entry(name, "file", size=member.size)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current file; b"" at its end."""
        if self._current is None:
            return b""
        try:
            return self._current.read(size)
        except _BROKEN as error:
            raise InvalidImage(f"the archive is truncated or corrupt: {error}") from None

    def close(self) -> None:
        tar = getattr(self, "_tar", None)
        if tar is not None:
            tar.close()
        if self._owned is not None:
            self._owned.close()
            self._owned = None
