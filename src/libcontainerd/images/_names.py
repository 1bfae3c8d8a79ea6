"""Image names and platforms, normalised as containerd and Docker do.

Names: ``busybox`` is ``docker.io/library/busybox:latest``, ``me/app`` is
``docker.io/me/app:latest``; a first component with a dot, a colon or
``localhost`` is a registry host; a name with a digest keeps the digest and
drops its tag. So an image imported as ``busybox`` is the image ``ctr`` and
``nerdctl`` call ``docker.io/library/busybox:latest``.

Platforms: ``os/architecture[/variant]`` with Go's names (``x86_64`` is
``amd64``, ``aarch64`` is ``arm64`` whose default variant is ``v8``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import InvalidArgument

__all__ = ["Platform", "host_platform", "normalize_name", "parse_platform"]

DEFAULT_DOMAIN: Final = "docker.io"
_LEGACY_DOMAIN: Final = "index.docker.io"
_OFFICIAL_PREFIX: Final = "library/"

_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = re.compile(rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?\Z")
_PATH: Final = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG: Final = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST: Final = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}\Z")
_MAX_NAME: Final = 255


def normalize_name(name: object, what: str = "image name") -> str:
    """The full reference containerd stores for ``name``; InvalidArgument if it is not one."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{what} must be a non-empty string, not {name!r}")
    remainder, _, digest = name.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidArgument(f"{what} {name!r} has an invalid digest {digest!r}")
    tag = ""
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidArgument(f"{what} {name!r} has an invalid tag {tag!r}")
    domain, _, path = remainder.partition("/")
    if not path or not ("." in domain or ":" in domain or domain == "localhost"):
        domain, path = DEFAULT_DOMAIN, remainder
    elif not _DOMAIN.match(domain):
        raise InvalidArgument(f"{what} {name!r} has an invalid registry host {domain!r}")
    if domain == _LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    if not _PATH.match(path):
        raise InvalidArgument(
            f"{what} {name!r} is not a valid image reference: repository names use"
            " lower-case letters, digits and single separators (. _ -)"
        )
    full = f"{domain}/{path}"
    if len(full) > _MAX_NAME:
        raise InvalidArgument(f"{what} {name[:40]!r}... is longer than {_MAX_NAME} characters")
    if digest:
        return f"{full}@{digest}"
    return f"{full}:{tag or 'latest'}"


def is_full_reference(name: str) -> bool:
    """Whether an archive's ref name is a whole image name (``app:1``), not just a tag (``1``)."""
    try:
        normalize_name(name)
    except InvalidArgument:
        return False
    return "/" in name or ":" in name or "@" in name


@dataclass(frozen=True, slots=True)
class Platform:
    """An OCI platform: ``os/architecture[/variant]``."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def matches(self, other: Platform) -> bool:
        """Same os and architecture, and the same variant when both name one."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        mine, theirs = _default_variant(self), _default_variant(other)
        return not mine or not theirs or mine == theirs

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Platform | None:
        """The platform a descriptor's ``platform`` or a config names; None if it names none."""
        os_name = document.get("os")
        architecture = document.get("architecture")
        if not isinstance(os_name, str) or not isinstance(architecture, str):
            return None
        variant = document.get("variant")
        return _normalized(os_name, architecture, variant if isinstance(variant, str) else "")


_ARCHITECTURES: Final = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
}


def _normalized(os_name: str, architecture: str, variant: str) -> Platform:
    arch, implied = _ARCHITECTURES.get(architecture.lower(), (architecture.lower(), ""))
    variant = variant.lower() or implied
    if arch == "arm64" and variant == "8":
        variant = "v8"
    return Platform(os_name.lower(), arch, variant)


def _default_variant(platform: Platform) -> str:
    if platform.architecture == "arm64":
        return platform.variant or "v8"
    if platform.architecture == "arm":
        return platform.variant or "v7"
    return platform.variant


def host_platform() -> Platform:
    """The platform of this machine (containers run on it)."""
    return _normalized("linux", os.uname().machine, "")


def parse_platform(value: object) -> Platform:
    """``"linux/arm64/v8"`` (or a :class:`Platform`) as a Platform; InvalidArgument otherwise."""
    if isinstance(value, Platform):
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"platform must be a string like 'linux/amd64', not {value!r}")
    parts = value.split("/")
    if not 2 <= len(parts) <= 3 or not all(re.fullmatch(r"[A-Za-z0-9_.-]+", p) for p in parts):
        raise InvalidArgument(
            f"platform {value!r} is not os/architecture[/variant] (e.g. 'linux/amd64')"
        )
    return _normalized(parts[0], parts[1], parts[2] if len(parts) == 3 else "")
