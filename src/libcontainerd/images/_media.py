"""Media types, digests and chain IDs: what each blob of an image is, and how it is named.

An image is a tree of blobs: an index (OCI) or manifest list (Docker) names
manifests, a manifest names one config and its layers. Each kind has an OCI
and a Docker media type; this module says which kind a type is, and refuses
what this library cannot run with :class:`UnsupportedMediaType` (schema 1,
encrypted layers, configs of other artifacts, anything unknown).
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Sequence
from typing import Final

from ..errors import InvalidImage, UnsupportedMediaType

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MAX_DOCUMENT",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Kind",
    "chain_ids",
    "check_config_type",
    "check_digest",
    "digest_of",
    "kind_of",
    "sniff_document",
]

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# containerd (and registries) refuse manifests and indexes over 4 MiB; configs
# are held to the same bound, since every one of these is read whole.
MAX_DOCUMENT: Final = 4 << 20


class Kind(enum.Enum):
    INDEX = "index"
    MANIFEST = "manifest"
    CONFIG = "config"
    LAYER = "layer"


_KINDS: Final[dict[str, Kind]] = {
    OCI_INDEX: Kind.INDEX,
    DOCKER_MANIFEST_LIST: Kind.INDEX,
    OCI_MANIFEST: Kind.MANIFEST,
    DOCKER_MANIFEST: Kind.MANIFEST,
    OCI_CONFIG: Kind.CONFIG,
    DOCKER_CONFIG: Kind.CONFIG,
    OCI_LAYER: Kind.LAYER,
    OCI_LAYER_GZIP: Kind.LAYER,
    OCI_LAYER_ZSTD: Kind.LAYER,
    "application/vnd.oci.image.layer.nondistributable.v1.tar": Kind.LAYER,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": Kind.LAYER,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": Kind.LAYER,
    DOCKER_LAYER: Kind.LAYER,
    DOCKER_LAYER_GZIP: Kind.LAYER,
    "application/vnd.docker.image.rootfs.foreign.diff.tar": Kind.LAYER,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": Kind.LAYER,
}

_SCHEMA1: Final = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)


def ingest_ref(media_type: str, digest: str) -> str:
    """The ingest ref containerd's own pull writes this blob under (``layer-sha256:...``).

    The same ref, so a pull by the daemon (Transfer service) and one by this
    library each resume what the other left half written.
    """
    kind = _KINDS.get(media_type)
    return f"{kind.value if kind is not None else 'unknown'}-{digest}"


def is_foreign(media_type: str) -> bool:
    """Whether a layer is foreign (non-distributable): fetched from its own URLs first."""
    return ".foreign." in media_type or ".nondistributable." in media_type


def kind_of(media_type: str, what: str) -> Kind:
    """The kind of blob ``media_type`` names; UnsupportedMediaType for what cannot run.

    ``what`` says where the type was found, for the message.
    """
    kind = _KINDS.get(media_type)
    if kind is not None:
        return kind
    if media_type in _SCHEMA1:
        raise UnsupportedMediaType(
            f"{what} is a Docker schema 1 manifest ({media_type}), which is deprecated and"
            " not supported; convert the image to schema 2 or OCI (e.g. with skopeo copy)"
        )
    if "+encrypted" in media_type:
        raise UnsupportedMediaType(
            f"{what} is encrypted ({media_type}); decrypt the image first"
            " (e.g. with skopeo copy --decryption-key)"
        )
    raise UnsupportedMediaType(f"{what} has an unknown media type {media_type!r}")


def check_config_type(media_type: str, what: str) -> None:
    """Refuse a manifest whose config is not an image config (a Helm chart's, an artifact's)."""
    if _KINDS.get(media_type) is not Kind.CONFIG:
        raise UnsupportedMediaType(
            f"{what} has a config of type {media_type!r}: it is not a container image"
            " (another kind of OCI artifact?)"
        )


def sniff_document(document: object, what: str) -> str:
    """The media type of an index or manifest that does not say it (OCI makes it optional)."""
    if isinstance(document, dict):
        declared = document.get("mediaType")
        if isinstance(declared, str) and declared:
            return declared
        if document.get("schemaVersion") == 1:
            return _SCHEMA1[0]
        if "manifests" in document:
            return OCI_INDEX
        if "config" in document and "layers" in document:
            return OCI_MANIFEST
    raise InvalidImage(f"{what} is neither an image index nor a manifest")


_DIGEST: Final = re.compile(r"sha256:[a-f0-9]{64}\Z|sha512:[a-f0-9]{128}\Z")


def check_digest(value: object, what: str) -> str:
    """``value`` if it is a ``sha256:<64 hex>`` (or sha512) digest; InvalidImage otherwise."""
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise InvalidImage(f"{what} is not a valid digest: {value!r}")
    return value


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of each layer: the first's diff ID, then sha256 of "<parent> <diff ID>".

    A layer's snapshot is named by its chain ID, which names the whole stack
    below it too, so a layer shared by two images at the same depth unpacks once.
    """
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else digest_of(f"{chain[-1]} {diff_id}".encode()))
    return chain
