"""What the image service hands out: Image, its decoded config, progress and disk usage."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import InvalidImage
from . import _media

__all__ = ["Descriptor", "DiskUsage", "Image", "ImageConfig", "Progress", "ProgressCallback"]


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A blob of the content store: its media type, digest and size.

    ``urls`` are where a foreign (non-distributable) layer may be fetched from
    instead of its registry, as its manifest says.
    """

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()

    def wire(self) -> dict[str, Any]:
        """As an OCI descriptor in JSON."""
        wired: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            wired["urls"] = list(self.urls)
        return wired


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """How an image means to be run (the ``config`` of its OCI/Docker config blob)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def decode(cls, document: Mapping[str, Any], what: str) -> ImageConfig:
        """The ``config`` section of an image config; InvalidImage for wrong types."""
        section = document.get("config") or {}
        if not isinstance(section, Mapping):
            raise InvalidImage(f"{what}: 'config' is not an object")

        def strings(key: str) -> tuple[str, ...]:
            value = section.get(key)
            value = [] if value is None else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidImage(f"{what}: config.{key} is not a list of strings")
            return tuple(value)

        def text(key: str) -> str:
            value = section.get(key)
            value = "" if value is None else value
            if not isinstance(value, str):
                raise InvalidImage(f"{what}: config.{key} is not a string")
            return value

        def keys(key: str) -> tuple[str, ...]:
            value = section.get(key)
            value = {} if value is None else value
            if not isinstance(value, Mapping):
                raise InvalidImage(f"{what}: config.{key} is not an object")
            return tuple(sorted(str(k) for k in value))

        labels = section.get("Labels")
        labels = {} if labels is None else labels
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise InvalidImage(f"{what}: config.Labels is not an object of strings")
        return cls(
            entrypoint=strings("Entrypoint"),
            cmd=strings("Cmd"),
            env=strings("Env"),
            working_dir=text("WorkingDir"),
            user=text("User"),
            exposed_ports=keys("ExposedPorts"),
            volumes=keys("Volumes"),
            stop_signal=text("StopSignal"),
            labels=dict(labels),
        )


@dataclass(frozen=True, slots=True)
class Image:
    """An image of the namespace, resolved for one platform.

    ``digest`` and ``media_type`` are the image's target (an index or a
    manifest); ``manifest`` is the platform's manifest, ``config`` its decoded
    config, ``layers`` and ``diff_ids`` its layers (compressed blobs and the
    digests of their uncompressed tars, in order, base first); ``size`` is
    what the platform's blobs take in the content store (manifest, config
    and layers, as ``ctr images ls`` counts). An image whose content for the
    platform is missing has an empty ``platform``, no layers and an empty config.
    """

    name: str
    digest: str
    media_type: str
    platform: str
    size: int
    created: datetime | None
    updated: datetime | None
    labels: Mapping[str, str]
    diff_ids: tuple[str, ...]
    config: ImageConfig
    manifest: Descriptor | None = None
    config_descriptor: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()

    @property
    def chain_id(self) -> str:
        """The chain ID of the top layer: the name of its snapshot ("" without layers)."""
        chain = _media.chain_ids(self.diff_ids)
        return chain[-1] if chain else ""

    @property
    def complete(self) -> bool:
        """Whether the platform's manifest and config were found (its layers are not checked)."""
        return self.manifest is not None and self.config_descriptor is not None


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of an import or an unpack, given to a ``progress`` callback.

    ``phase`` is ``"read"`` (a blob read from an archive into the content
    store; ``item`` is its path in the archive), ``"unpack"`` (a layer applied
    to a snapshot; ``item`` is the layer's digest: once at 0 bytes, once
    done) or ``"write"`` (a blob written into an exported archive; ``item`` is
    its path there). ``done`` and ``total`` count bytes (``total`` is None
    when not known).
    """

    phase: str
    item: str
    done: int
    total: int | None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """What the namespace's images take: bytes in the content store and in snapshots."""

    content: int
    snapshots: int

    @property
    def total(self) -> int:
        return self.content + self.snapshots
