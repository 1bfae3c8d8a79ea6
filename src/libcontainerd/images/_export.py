"""Exporting images: an OCI image layout archive that also carries Docker's ``manifest.json``.

The archive holds ``oci-layout``, each blob once under ``blobs/sha256/<hex>``
(streamed from the content store and checked against its digest on the way),
an ``index.json`` with an entry per name (``io.containerd.image.name`` the
full name, ``org.opencontainers.image.ref.name`` its tag, as containerd
writes them) and a ``manifest.json`` with one entry per image (``Config``,
``RepoTags``, ``Layers``) as ``docker save`` writes it, so ``docker load``,
``ctr images import``, ``skopeo`` (``oci-archive:`` and ``docker-archive:``)
and :meth:`ImageService.import_archive` all read it. Each image is exported
as its manifest for one platform (an index is not carried over).

A path is written beside its destination and renamed into place once
complete; a file object is written to as the archive is made.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

from .._session import Session
from ..errors import DigestMismatch, InvalidImage, NotFound
from . import _media
from ._types import Descriptor, Image, Progress, ProgressCallback

__all__ = ["write_archive"]

_BLOCK: Final = tarfile.BLOCKSIZE
_RECORD: Final = tarfile.RECORDSIZE
_LAYOUT: Final = b'{"imageLayoutVersion":"1.0.0"}'
CONTAINERD_NAME: Final = "io.containerd.image.name"
OCI_REF_NAME: Final = "org.opencontainers.image.ref.name"


class _TarWriter:
    """A plain tar written front to back (blocking; called from a worker thread)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._written = 0
        self._pending = 0

    def _put(self, data: bytes) -> None:
        self._file.write(data)
        self._written += len(data)

    def begin(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 0
        self._put(info.tobuf(format=tarfile.PAX_FORMAT))
        self._pending = size

    def write(self, data: bytes) -> None:
        self._put(data)
        self._pending -= len(data)

    def end(self) -> None:
        if self._pending:
            raise InvalidImage(f"a blob ended {self._pending} bytes short of its size")
        remainder = self._written % _BLOCK
        if remainder:
            self._put(b"\0" * (_BLOCK - remainder))

    def add(self, name: str, data: bytes) -> None:
        self.begin(name, len(data))
        self.write(data)
        self.end()

    def close(self) -> None:
        self._put(b"\0" * (2 * _BLOCK))
        remainder = self._written % _RECORD
        if remainder:
            self._put(b"\0" * (_RECORD - remainder))
        self._file.flush()


def _familiar(name: str) -> str:
    """Docker's short form of a full name: ``docker.io/library/busybox:1`` is ``busybox:1``."""
    if not name.startswith("docker.io/"):
        return name
    short = name[len("docker.io/") :]
    path = short.split("@", 1)[0].rsplit(":", 1)[0]
    if short.startswith("library/") and path.count("/") == 1:
        return short[len("library/") :]
    return short


def _tag_of(name: str) -> str:
    remainder = name.split("@", 1)[0]
    slash, colon = remainder.rfind("/"), remainder.rfind(":")
    return remainder[colon + 1 :] if colon > slash else name


def _blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


@dataclass(frozen=True, slots=True)
class _Exported:
    name: str
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]


async def write_archive(
    session: Session,
    destination: str | os.PathLike[str] | IO[bytes],
    images: Sequence[Image],
    progress: ProgressCallback | None = None,
) -> None:
    """Write the archive of ``images`` (resolved for their platform) to ``destination``."""
    exported = []
    for image in images:
        if image.manifest is None or image.config_descriptor is None:
            raise InvalidImage(f"image {image.name} is incomplete: nothing to export for it")
        exported.append(
            _Exported(image.name, image.manifest, image.config_descriptor, image.layers)
        )
    if not isinstance(destination, str | os.PathLike):
        await _write(session, destination, exported, progress)
        return
    target = os.fspath(destination)
    handle, partial = await asyncio.to_thread(
        tempfile.mkstemp, prefix=".lcd-export-", dir=os.path.dirname(target) or "."
    )
    try:
        with os.fdopen(handle, "wb") as file:
            await _write(session, file, exported, progress)
            await asyncio.to_thread(os.fsync, file.fileno())
        await asyncio.to_thread(os.replace, partial, target)
    except BaseException:
        await asyncio.to_thread(os.unlink, partial)
        raise


async def _write(
    session: Session,
    file: IO[bytes],
    images: Sequence[_Exported],
    progress: ProgressCallback | None,
) -> None:
    tar = _TarWriter(file)
    await asyncio.to_thread(tar.add, "oci-layout", _LAYOUT)
    blobs: dict[str, Descriptor] = {}
    for image in images:
        for blob in (image.manifest, image.config, *image.layers):
            blobs.setdefault(blob.digest, blob)
    for blob in blobs.values():
        await _copy_blob(session, tar, blob, progress)
    index = {
        "schemaVersion": 2,
        "mediaType": _media.OCI_INDEX,
        "manifests": [
            {
                **image.manifest.wire(),
                "annotations": {CONTAINERD_NAME: image.name, OCI_REF_NAME: _tag_of(image.name)},
            }
            for image in images
        ],
    }
    docker: dict[str, dict[str, Any]] = {}
    for image in images:
        entry = docker.setdefault(
            image.manifest.digest,
            {
                "Config": _blob_path(image.config.digest),
                "RepoTags": [],
                "Layers": [_blob_path(layer.digest) for layer in image.layers],
            },
        )
        entry["RepoTags"].append(_familiar(image.name))
    await asyncio.to_thread(tar.add, "index.json", json.dumps(index).encode())
    await asyncio.to_thread(tar.add, "manifest.json", json.dumps(list(docker.values())).encode())
    await asyncio.to_thread(tar.close)


async def _copy_blob(
    session: Session, tar: _TarWriter, blob: Descriptor, progress: ProgressCallback | None
) -> None:
    from .._api.containerd.api.services.content.v1 import content_pb2

    path = _blob_path(blob.digest)
    await asyncio.to_thread(tar.begin, path, blob.size)
    hasher = hashlib.sha256()
    done = 0
    if progress is not None:
        progress(Progress("write", path, 0, blob.size))
    try:
        async for answer in session.connection.stream(
            session.methods.content.read,
            content_pb2.ReadContentRequest(digest=blob.digest),
            f"read blob {blob.digest}",
        ):
            hasher.update(answer.data)
            done += len(answer.data)
            if done > blob.size:
                break
            await asyncio.to_thread(tar.write, answer.data)
            if progress is not None:
                progress(Progress("write", path, done, blob.size))
    except NotFound:
        raise InvalidImage(
            f"blob {blob.digest} is missing from the content store: the image is incomplete"
        ) from None
    if done != blob.size or "sha256:" + hasher.hexdigest() != blob.digest:
        raise DigestMismatch(
            f"the content store's {blob.digest} is not that blob ({done} bytes,"
            f" digest sha256:{hasher.hexdigest()})"
        )
    await asyncio.to_thread(tar.end)
