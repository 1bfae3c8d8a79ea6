"""Importing an image archive: an OCI image layout (``index.json``) or a ``docker save`` one.

The archive is read once, in order (:mod:`._archive`): every regular file
goes straight into the content store, its digest computed on the way (a
blob under ``blobs/sha256/<hex>`` must match its name, and is not sent when
the store has it); only the small documents that say what the archive holds
(``index.json``, ``manifest.json``) are kept in memory. Then:

- OCI layout: each entry of ``index.json`` is an image, named by its
  ``io.containerd.image.name`` or full ``org.opencontainers.image.ref.name``
  annotation;
- ``docker save``: each entry of ``manifest.json`` becomes a Docker schema 2
  manifest written here (its layers' compression sniffed; symbolic and hard
  links between layer files followed), named by its ``RepoTags``.

Each image is walked for the wanted platform (:mod:`._walk`), its GC labels
written, optionally unpacked, and only then are the image records created,
so a failure at any step leaves no image; what the failed import wrote is
collected when its lease is deleted.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Final

from ..errors import InvalidArgument, InvalidImage, NotFound, UnsafeArchive
from . import _media
from ._archive import ArchiveReader, Entry, clean_path
from ._content import GC_REF_CONFIG, GC_REF_LAYER, ContentStore, Lease, reader_of
from ._names import Platform, is_full_reference, normalize_name
from ._types import Descriptor, Progress, ProgressCallback
from ._walk import descriptor_of

__all__ = ["ArchiveContents", "Root", "name_roots", "read_archive", "roots_of"]

# Annotations that name an image in an OCI index.
CONTAINERD_NAME: Final = "io.containerd.image.name"
OCI_REF_NAME: Final = "org.opencontainers.image.ref.name"

INDEX_JSON: Final = "index.json"
MANIFEST_JSON: Final = "manifest.json"
# Small files that describe the archive, kept in memory rather than stored.
_DOCUMENTS: Final = frozenset({INDEX_JSON, MANIFEST_JSON, "oci-layout"})
# docker save's legacy per-layer files, not needed by anyone.
_IGNORED: Final = frozenset({"repositories"})
_IGNORED_NAMES: Final = frozenset({"VERSION", "json"})
_GZIP: Final = b"\x1f\x8b"
_ZSTD: Final = b"\x28\xb5\x2f\xfd"
_MAX_LINKS: Final = 16


@dataclass(frozen=True, slots=True)
class _Blob:
    digest: str
    size: int
    compression: str  # "gzip", "zstd" or ""


@dataclass
class ArchiveContents:
    """What one pass over an archive found: its blobs by path, links, and documents."""

    files: dict[str, _Blob] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    documents: dict[str, bytes] = field(default_factory=dict)

    @property
    def digests(self) -> set[str]:
        return {blob.digest for blob in self.files.values()}

    def blob(self, path: str, what: str) -> _Blob:
        """The blob at ``path`` (links followed); InvalidImage if the archive lacks it."""
        current = clean_path(path, what)
        for _ in range(_MAX_LINKS):
            found = self.files.get(current)
            if found is not None:
                return found
            target = self.links.get(current)
            if target is None:
                raise InvalidImage(f"{what} {path!r} is not in the archive")
            current = target
        raise UnsafeArchive(f"{what} {path!r} is a chain of more than {_MAX_LINKS} links")


@dataclass(frozen=True, slots=True)
class Root:
    """An image the archive holds: its target and the names it gives it."""

    target: Descriptor
    names: tuple[str, ...]
    what: str
    platform: Platform | None = None  # what its index.json entry says, if anything


async def read_archive(
    source: str | os.PathLike[str] | IO[bytes],
    store: ContentStore,
    lease: Lease,
    progress: ProgressCallback | None,
) -> ArchiveContents:
    """Read every file of the archive into the content store (see the module docstring)."""
    reader = await asyncio.to_thread(ArchiveReader, source)
    contents = ArchiveContents()
    try:
        serial = 0
        while (entry := await asyncio.to_thread(reader.next)) is not None:
            if entry.kind == "link":
                contents.links[entry.name] = entry.target
            elif entry.name in _DOCUMENTS:
                contents.documents[entry.name] = await _document(reader, entry)
            elif entry.name in _IGNORED or entry.name.rpartition("/")[2] in _IGNORED_NAMES:
                continue  # the tar stream skips its bytes
            else:
                serial += 1
                contents.files[entry.name] = await _ingest(
                    reader, entry, store, lease, f"{lease.id}-{serial}", progress
                )
    finally:
        await asyncio.to_thread(reader.close)
    return contents


async def _document(reader: ArchiveReader, entry: Entry) -> bytes:
    if entry.size > _media.MAX_DOCUMENT:
        raise InvalidImage(
            f"{entry.name} in the archive is {entry.size} bytes, over the"
            f" {_media.MAX_DOCUMENT >> 20} MiB allowed"
        )
    data = await asyncio.to_thread(reader.read, entry.size + 1)
    if len(data) != entry.size:
        raise InvalidImage(f"{entry.name} in the archive is truncated")
    return data


async def _ingest(
    reader: ArchiveReader,
    entry: Entry,
    store: ContentStore,
    lease: Lease,
    serial: str,
    progress: ProgressCallback | None,
) -> _Blob:
    """Stream one archive file into the content store; its digest, size and compression."""
    expected = _named_digest(entry.name)
    # A blob named by its digest has a stable ref (a second writer waits, then
    # finds it stored); any other is private to this import.
    ref = f"libcontainerd-import-{expected or serial}"
    head = b""

    async def read(size: int) -> bytes:
        nonlocal head
        data = await asyncio.to_thread(reader.read, size)
        if len(head) < 4:
            head += data[: 4 - len(head)]
        return data

    def on_bytes(done: int) -> None:
        if progress is not None:
            progress(Progress("read", entry.name, done, entry.size))

    on_bytes(0)
    digest, written = await store.write(
        ref,
        read,
        total=entry.size,
        expected=expected,
        metadata=lease.metadata,
        what=f"archive entry {entry.name!r}",
        on_bytes=on_bytes,
    )
    if not written:
        on_bytes(entry.size)
    compression = "gzip" if head.startswith(_GZIP) else "zstd" if head.startswith(_ZSTD) else ""
    return _Blob(digest, entry.size, compression)


def _named_digest(path: str) -> str:
    """The digest an OCI layout's ``blobs/<algorithm>/<hex>`` path names ("" for other paths)."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        if parts[1] != "sha256":
            raise InvalidImage(
                f"archive entry {path!r}: digest algorithm {parts[1]!r} is not supported"
            )
        return _media.check_digest(f"sha256:{parts[2]}", f"archive entry {path!r}")
    return ""


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as error:
        raise InvalidImage(f"{what} is not JSON: {error}") from None


async def roots_of(contents: ArchiveContents, store: ContentStore, lease: Lease) -> list[Root]:
    """The images the archive holds (an OCI index.json first, else docker's manifest.json)."""
    if INDEX_JSON in contents.documents:
        return _oci_roots(contents)
    if MANIFEST_JSON in contents.documents:
        return await _docker_roots(contents, store, lease)
    raise InvalidImage(
        "the archive has neither an index.json (an OCI image layout) nor a manifest.json"
        " (docker save): it is not an image archive"
    )


def _oci_roots(contents: ArchiveContents) -> list[Root]:
    index = _json(contents.documents[INDEX_JSON], INDEX_JSON)
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidImage("index.json has no list of manifests")
    media_type = index.get("mediaType")
    if media_type not in (None, "", _media.OCI_INDEX):
        _media.kind_of(media_type, INDEX_JSON)  # schema 1, encrypted, unknown: refused
    roots = []
    for position, entry in enumerate(index["manifests"]):
        what = f"index.json's manifests[{position}]"
        target = descriptor_of(entry, what)
        annotations = entry.get("annotations") or {}
        if not isinstance(annotations, Mapping):
            raise InvalidImage(f"{what} has annotations that are not an object")
        name = annotations.get(CONTAINERD_NAME) or ""
        ref_name = annotations.get(OCI_REF_NAME) or ""
        if not name and isinstance(ref_name, str) and is_full_reference(ref_name):
            name = ref_name
        names = (normalize_name(name, f"{what}'s name"),) if isinstance(name, str) and name else ()
        if target.digest not in contents.digests:
            raise InvalidImage(f"{what} names blob {target.digest}, which is not in the archive")
        roots.append(
            Root(
                target,
                names,
                f"image {names[0] if names else what}",
                Platform.of(entry.get("platform") or {}),
            )
        )
    return roots


async def _docker_roots(contents: ArchiveContents, store: ContentStore, lease: Lease) -> list[Root]:
    entries = _json(contents.documents[MANIFEST_JSON], MANIFEST_JSON)
    if not isinstance(entries, list):
        raise InvalidImage("manifest.json is not a list of images")
    roots = []
    for position, entry in enumerate(entries):
        what = f"manifest.json's entry {position}"
        if not isinstance(entry, dict):
            raise InvalidImage(f"{what} is not an object")
        config_path = entry.get("Config")
        layer_paths = entry.get("Layers")
        if not isinstance(config_path, str) or not isinstance(layer_paths, list):
            raise InvalidImage(f"{what} lacks its Config or its list of Layers")
        config = contents.blob(config_path, f"{what}'s Config")
        layers = []
        for index, path in enumerate(layer_paths):
            if not isinstance(path, str):
                raise InvalidImage(f"{what}'s Layers[{index}] is not a path")
            blob = contents.blob(path, f"{what}'s layer")
            media_type = (
                _media.DOCKER_LAYER_GZIP if blob.compression == "gzip" else _media.DOCKER_LAYER
            )
            layers.append(Descriptor(media_type, blob.digest, blob.size))
        manifest = {
            "schemaVersion": 2,
            "mediaType": _media.DOCKER_MANIFEST,
            "config": Descriptor(_media.DOCKER_CONFIG, config.digest, config.size).wire(),
            "layers": [layer.wire() for layer in layers],
        }
        # Compact, in this key order: containerd's own bytes, so the same archive gets
        # the same manifest digest (the image's target) whoever imports it.
        data = json.dumps(manifest, separators=(",", ":")).encode()
        labels = {GC_REF_CONFIG: config.digest}
        labels.update({GC_REF_LAYER.format(i): layer.digest for i, layer in enumerate(layers)})
        digest = _media.digest_of(data)
        await store.write(
            f"libcontainerd-import-{digest}",
            reader_of(data),
            total=len(data),
            expected=digest,
            labels=labels,
            metadata=lease.metadata,
            what=f"the manifest of {what}",
        )
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise InvalidImage(f"{what}'s RepoTags is not a list of names")
        names = tuple(dict.fromkeys(normalize_name(tag, f"{what}'s RepoTags") for tag in tags))
        roots.append(
            Root(
                Descriptor(_media.DOCKER_MANIFEST, digest, len(data)),
                names,
                f"image {names[0] if names else what}",
            )
        )
    return roots


def name_roots(roots: list[Root], name: str | None, platform: Platform) -> list[Root]:
    """The images to create: the archive's names, or ``name`` for its only image.

    Entries of one name (or, with ``name``, all entries) that are one image
    per platform (their index.json entries say so) become the one for ``platform``.
    """
    if name is not None:
        full = normalize_name(name)
        chosen = _for_platform(roots, platform)
        if len({root.target.digest for root in chosen}) != 1:
            raise InvalidArgument(
                f"the archive holds {len(chosen)} images; name= can name only one"
                " (leave it out to use the archive's own names)"
            )
        return [Root(chosen[0].target, (full,), f"image {full}", chosen[0].platform)]
    unnamed = [root.what for root in roots if not root.names]
    if unnamed:
        raise InvalidArgument(
            f"the archive does not name {', '.join(unnamed)}: pass name= to name it"
        )
    by_names: dict[tuple[str, ...], list[Root]] = {}
    for root in roots:
        by_names.setdefault(root.names, []).append(root)
    return [_for_platform(group, platform)[0] for group in by_names.values()]


def _for_platform(roots: list[Root], platform: Platform) -> list[Root]:
    """The roots for ``platform`` when the archive says which platform each is for."""
    if len(roots) > 1 and all(root.platform is not None for root in roots):
        matching = [root for root in roots if root.platform and root.platform.matches(platform)]
        if not matching:
            raise NotFound(f"the archive has no image for platform {platform}")
        return matching[:1]
    return roots
