"""Walking an image's tree in the content store: index -> the platform's manifest -> config.

:class:`ImageWalker` reads each document (checked against its descriptor),
checks its media types, keeps the index entries of the wanted platform, and
notes the garbage-collection labels containerd's own client writes, so that
the image's record alone keeps every blob it needs: an index names its
manifests (``containerd.io/gc.ref.content.m.<i>``), a manifest its config
and layers (``...content.config``, ``...content.l.<i>``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidImage, NotFound
from . import _media
from ._content import GC_REF_CONFIG, GC_REF_LAYER, GC_REF_MANIFEST, ContentStore
from ._media import Kind
from ._names import Platform
from ._types import Descriptor, ImageConfig

__all__ = ["ImageWalker", "Resolved", "descriptor_of"]

# An index nested in an index nested in ... is refused past this depth.
_MAX_DEPTH = 4


def descriptor_of(document: object, what: str) -> Descriptor:
    """An OCI descriptor (JSON) as a Descriptor; InvalidImage when malformed."""
    if not isinstance(document, dict):
        raise InvalidImage(f"{what} is not a descriptor object")
    media_type = document.get("mediaType", "")
    size = document.get("size")
    if not isinstance(media_type, str):
        raise InvalidImage(f"{what} has a media type that is not a string")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidImage(f"{what} has no valid size")
    digest = _media.check_digest(document.get("digest"), f"{what}'s digest")
    urls = document.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
        raise InvalidImage(f"{what} has urls that are not a list of strings")
    return Descriptor(media_type, digest, size, tuple(urls))


@dataclass
class Resolved:
    """One platform's manifest of an image, and what it is made of."""

    manifest: Descriptor
    config: Descriptor
    layers: list[Descriptor]
    diff_ids: list[str]
    config_document: dict[str, Any]
    platform: Platform | None
    target: Descriptor | None = None  # what the image record points at (set by resolve)

    def image_config(self) -> ImageConfig:
        return ImageConfig.decode(self.config_document, f"image config {self.config.digest}")

    @property
    def size(self) -> int:
        return self.manifest.size + self.config.size + sum(layer.size for layer in self.layers)


@dataclass
class ImageWalker:
    """Resolves image targets for one platform (see the module docstring).

    ``present`` (when given) is asked whether each layer blob is in the store,
    and a missing one is an incomplete image (InvalidImage). ``labels`` gathers
    the GC labels of every document walked, by digest.
    """

    store: ContentStore
    platform: Platform
    explicit_platform: bool = False
    present: Callable[[str], Awaitable[bool]] | None = None
    labels: dict[str, dict[str, str]] = field(default_factory=dict)

    async def resolve(self, target: Descriptor, what: str) -> Resolved:
        """The manifest of the wanted platform under ``target`` (an index or a manifest).

        Raises UnsupportedMediaType, InvalidImage (malformed, inconsistent or
        incomplete), NotFound (an index with no manifest for the platform).
        """
        return await self._resolve(target, what, 0)

    async def _resolve(self, target: Descriptor, what: str, depth: int) -> Resolved:
        document = await self.store.read_json(target, what)
        media_type = target.media_type or _media.sniff_document(document, what)
        kind = _media.kind_of(media_type, what)
        _check_declared(document, media_type, what)
        target = Descriptor(media_type, target.digest, target.size)
        if kind is Kind.INDEX:
            if depth >= _MAX_DEPTH:
                raise InvalidImage(f"{what} nests indexes more than {_MAX_DEPTH} deep")
            resolved = await self._index(target, document, what, depth)
        elif kind is Kind.MANIFEST:
            resolved = await self._manifest(target, document, what, None)
        else:
            raise InvalidImage(
                f"{what} is a {kind.value} ({media_type}), not an index or a manifest"
            )
        if depth == 0:
            resolved.target = target
        return resolved

    async def _index(
        self, target: Descriptor, document: dict[str, Any], what: str, depth: int
    ) -> Resolved:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise InvalidImage(f"{what} has no list of manifests")
        chosen: list[tuple[Descriptor, Platform | None]] = []
        for index, entry in enumerate(entries):
            child = descriptor_of(entry, f"{what}'s manifests[{index}]")
            platform = Platform.of(entry.get("platform") or {})
            if platform is not None and not platform.matches(self.platform):
                continue  # another platform's (or an attestation's: unknown/unknown)
            chosen.append((child, platform))
        if not chosen:
            raise NotFound(f"{what} has no manifest for platform {self.platform}")
        self.labels.setdefault(target.digest, {}).update(
            {GC_REF_MANIFEST.format(i): child.digest for i, (child, _) in enumerate(chosen)}
        )
        first: Resolved | None = None
        for child, platform in chosen:
            child_what = f"{what} -> manifest {child.digest[:19]}"
            if _media.kind_of(child.media_type or _media.OCI_MANIFEST, child_what) is Kind.INDEX:
                resolved = await self._resolve(child, child_what, depth + 1)
            else:
                manifest = await self.store.read_json(child, child_what)
                media_type = child.media_type or _media.sniff_document(manifest, child_what)
                _media.kind_of(media_type, child_what)
                _check_declared(manifest, media_type, child_what)
                resolved = await self._manifest(
                    Descriptor(media_type, child.digest, child.size), manifest, child_what, platform
                )
            if first is None:
                first = resolved
            if self.present is None:
                break  # reading an image: only the chosen manifest matters
        assert first is not None
        return first

    async def _manifest(
        self,
        target: Descriptor,
        document: dict[str, Any],
        what: str,
        platform: Platform | None,
    ) -> Resolved:
        if _media.kind_of(target.media_type, what) is not Kind.MANIFEST:
            raise InvalidImage(f"{what} is not a manifest ({target.media_type})")
        config = descriptor_of(document.get("config"), f"{what}'s config")
        _media.check_config_type(config.media_type, what)
        layer_list = document.get("layers")
        if not isinstance(layer_list, list):
            raise InvalidImage(f"{what} has no list of layers")
        layers = [
            descriptor_of(layer, f"{what}'s layers[{index}]")
            for index, layer in enumerate(layer_list)
        ]
        for index, layer in enumerate(layers):
            layer_what = f"{what}'s layer {index} ({layer.digest[:19]})"
            if _media.kind_of(layer.media_type, layer_what) is not Kind.LAYER:
                raise InvalidImage(f"{layer_what} is not a layer ({layer.media_type})")
            if self.present is not None and not await self.present(layer.digest):
                raise InvalidImage(f"{layer_what} is missing: the image is incomplete")
        config_document = await self.store.read_json(config, f"{what}'s config")
        diff_ids = _diff_ids(config_document, f"{what}'s config")
        if len(diff_ids) != len(layers):
            raise InvalidImage(
                f"{what} has {len(layers)} layers but its config lists {len(diff_ids)} diff IDs"
            )
        image_platform = Platform.of(config_document) or platform
        if (
            self.explicit_platform
            and image_platform is not None
            and not image_platform.matches(self.platform)
        ):
            raise NotFound(f"{what} is for platform {image_platform}, not {self.platform}")
        labels = {GC_REF_CONFIG: config.digest}
        labels.update({GC_REF_LAYER.format(i): layer.digest for i, layer in enumerate(layers)})
        self.labels.setdefault(target.digest, {}).update(labels)
        return Resolved(target, config, layers, diff_ids, config_document, image_platform)


def _check_declared(document: dict[str, Any], media_type: str, what: str) -> None:
    """Refuse a document whose own ``mediaType`` contradicts its descriptor's (as containerd)."""
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared and declared != media_type:
        raise InvalidImage(f"{what} says it is {declared}, but is described as {media_type}")


def _diff_ids(config: dict[str, Any], what: str) -> list[str]:
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type", "layers") != "layers":
        raise InvalidImage(f"{what} has no rootfs of type 'layers': is it an image config?")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list):
        raise InvalidImage(f"{what}'s rootfs.diff_ids is not a list")
    return [
        _media.check_digest(value, f"{what}'s rootfs.diff_ids[{index}]")
        for index, value in enumerate(diff_ids)
    ]
