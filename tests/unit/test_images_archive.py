"""The archive reader: one forward pass, names checked as they are met, nothing extracted."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from libcontainerd.errors import InvalidImage, UnsafeArchive
from libcontainerd.images._archive import ArchiveReader, Entry, clean_path


def tar_bytes(*members: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def read_all(source: object) -> list[tuple[Entry, bytes]]:
    reader = ArchiveReader(source)  # type: ignore[arg-type]
    found = []
    try:
        while (entry := reader.next()) is not None:
            data = b""
            while chunk := reader.read(3):
                data += chunk
            found.append((entry, data))
    finally:
        reader.close()
    return found


def test_files_links_and_directories_are_read_in_order_from_a_file_object() -> None:
    data = tar_bytes(
        special("blobs/", tarfile.DIRTYPE),
        ("./blobs/sha256/abc", b"hello"),
        special("a/layer.tar", tarfile.SYMTYPE, "../blobs/sha256/abc"),
        special("b/layer.tar", tarfile.LNKTYPE, "blobs/sha256/abc"),
    )
    assert read_all(io.BytesIO(data)) == [
        (Entry("blobs/sha256/abc", "file", size=5), b"hello"),
        (Entry("a/layer.tar", "link", target="blobs/sha256/abc"), b""),
        (Entry("b/layer.tar", "link", target="blobs/sha256/abc"), b""),
    ]


def test_a_gzip_compressed_archive_is_read_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(gzip.compress(tar_bytes(("index.json", b"{}"))))
    assert read_all(path) == [(Entry("index.json", "file", size=2), b"{}")]


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (("../x", b""), "leaves the archive"),
        (("a/../../x", b""), "leaves the archive"),
        (("/etc/passwd", b""), "absolute path"),
        (special("l", tarfile.SYMTYPE, "/etc/passwd"), "absolute path"),
        (special("a/l", tarfile.SYMTYPE, "../../x"), "points outside"),
        (special("l", tarfile.SYMTYPE, "."), "points outside"),
        (special("h", tarfile.LNKTYPE, "../x"), "leaves the archive"),
        (special("dev", tarfile.CHRTYPE), "special file"),
        (special("fifo", tarfile.FIFOTYPE), "special file"),
    ],
)
def test_entries_that_escape_or_are_special_are_refused(
    member: tarfile.TarInfo | tuple[str, bytes], message: str
) -> None:
    with pytest.raises(UnsafeArchive, match=message):
        read_all(io.BytesIO(tar_bytes(member)))


def test_a_truncated_archive_is_an_invalid_image() -> None:
    data = tar_bytes(("big", b"x" * 100_000))
    with pytest.raises(InvalidImage, match="truncated or corrupt") as raised:
        read_all(io.BytesIO(data[:50_000]))
    assert type(raised.value) is InvalidImage


def test_a_truncated_gzip_archive_is_an_invalid_image() -> None:
    data = gzip.compress(tar_bytes(("big", bytes(range(256)) * 2000)))
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        read_all(io.BytesIO(data[: len(data) // 2]))


def test_something_that_is_not_a_tar_is_not_an_image_archive() -> None:
    with pytest.raises(InvalidImage, match="not an image archive"):
        read_all(io.BytesIO(b"hello world, not a tar" * 50))


@pytest.mark.parametrize(
    ("name", "clean"), [("./a//b/", "a/b"), ("a/./b", "a/b"), ("manifest.json", "manifest.json")]
)
def test_names_are_cleaned(name: str, clean: str) -> None:
    assert clean_path(name, "entry") == clean
