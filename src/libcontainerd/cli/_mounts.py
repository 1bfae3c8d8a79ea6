"""``-v/--volume`` and ``--mount`` of ``lcd run``/``create``: bind mounts and tmpfs, as Docker's.

Parsing is pure (:func:`parse_volume`, :func:`parse_mount`); the host is
looked at only when a :class:`MountRequest` becomes a spec option. Named and
anonymous volumes are refused: lcd keeps no volumes of its own.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from .. import oci
from ..errors import InvalidArgument
from ._values import parse_size

__all__ = ["MountRequest", "parse_mount", "parse_volume"]

_TRUE = ("", "1", "true")
_FALSE = ("0", "false")


@dataclass(frozen=True, slots=True)
class MountRequest:
    """One mount asked for: a host path bound in, or a fresh tmpfs."""

    kind: str  # "bind" or "tmpfs"
    target: str
    source: str | None = None
    readonly: bool = False
    size: int | None = None  # tmpfs only
    mode: int | None = None  # tmpfs only
    create_source: bool = False  # -v makes a missing host directory, --mount refuses it

    def spec_option(self) -> oci.SpecOption:
        """The spec option; a bind source must exist (``-v`` makes a missing directory)."""
        if self.kind == "tmpfs":
            options = [f"mode={self.mode:o}"] if self.mode is not None else []
            if self.readonly:
                options.append("ro")
            return oci.with_tmpfs(self.target, self.size, options)
        assert self.source is not None
        if not os.path.exists(self.source):
            if not self.create_source:
                raise InvalidArgument(f"bind source path does not exist: {self.source}")
            os.makedirs(self.source, mode=0o755, exist_ok=True)
        return oci.with_bind_mount(self.source, self.target, self.readonly)


def parse_volume(text: str) -> MountRequest:
    """``-v HOST:CONTAINER[:ro|rw]``: a bind mount of an absolute host path."""
    parts = text.split(":")
    if len(parts) == 1:
        raise InvalidArgument(
            f"volume {text!r}: anonymous volumes are not supported;"
            " give HOST-PATH:CONTAINER-PATH (or --mount type=tmpfs,target=PATH)"
        )
    if len(parts) > 3:
        raise InvalidArgument(f"volume {text!r} must look like HOST-PATH:CONTAINER-PATH[:ro]")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if not source.startswith("/"):
        raise InvalidArgument(
            f"volume {text!r}: named volumes are not supported; the host path must be absolute"
        )
    flags = [flag for flag in mode.split(",") if flag]
    unknown = [flag for flag in flags if flag not in ("ro", "rw")]
    if unknown or ("ro" in flags and "rw" in flags):
        raise InvalidArgument(f"volume {text!r}: the mode must be ro or rw, not {mode!r}")
    return MountRequest(
        "bind",
        _target(target, text),
        source=posixpath.normpath(source),
        readonly="ro" in flags,
        create_source=True,
    )


def parse_mount(text: str) -> MountRequest:
    """``--mount type=bind,source=/a,target=/b[,readonly]`` or ``type=tmpfs,target=/t[,...]``.

    Keys as Docker's: ``type``, ``source``/``src``, ``target``/``destination``/``dst``,
    ``readonly``/``ro`` (optionally ``=true|false``), ``tmpfs-size``, ``tmpfs-mode``.
    """
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, equals, value = item.partition("=")
        key = key.strip().lower()
        if not key:
            raise InvalidArgument(f"mount {text!r}: empty field")
        if key in fields:
            raise InvalidArgument(f"mount {text!r}: {key!r} is given twice")
        fields[key] = value if equals else ""
    kind = fields.pop("type", "volume")
    if kind not in ("bind", "tmpfs"):
        raise InvalidArgument(
            f"mount {text!r}: type {kind!r} is not supported (bind or tmpfs; lcd has no volumes)"
        )
    target = _first(fields, text, "target", "destination", "dst")
    if target is None:
        raise InvalidArgument(f"mount {text!r}: target is required")
    source = _first(fields, text, "source", "src")
    readonly = _flag(fields, text, "readonly", "ro")
    size = mode = None
    if "tmpfs-size" in fields:
        size = parse_size(fields.pop("tmpfs-size"))
    if "tmpfs-mode" in fields:
        raw_mode = fields.pop("tmpfs-mode")
        try:
            mode = int(raw_mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o7777:
            raise InvalidArgument(f"mount {text!r}: tmpfs-mode {raw_mode!r} is not an octal mode")
    if fields:
        raise InvalidArgument(f"mount {text!r}: unknown field {sorted(fields)[0]!r}")
    if kind == "bind":
        if size is not None or mode is not None:
            raise InvalidArgument(f"mount {text!r}: tmpfs-size and tmpfs-mode are for tmpfs")
        if not source or not source.startswith("/"):
            raise InvalidArgument(f"mount {text!r}: a bind mount needs an absolute source")
        return MountRequest(
            "bind", _target(target, text), source=posixpath.normpath(source), readonly=readonly
        )
    if source:
        raise InvalidArgument(f"mount {text!r}: a tmpfs mount takes no source")
    return MountRequest("tmpfs", _target(target, text), readonly=readonly, size=size, mode=mode)


def _target(target: str, text: str) -> str:
    if not target.startswith("/"):
        raise InvalidArgument(f"mount {text!r}: the container path {target!r} must be absolute")
    normal = posixpath.normpath(target)
    if normal == "/":
        raise InvalidArgument(f"mount {text!r}: cannot mount over the container's root")
    return normal


def _first(fields: dict[str, str], text: str, *keys: str) -> str | None:
    found = [key for key in keys if key in fields]
    if len(found) > 1:
        raise InvalidArgument(f"mount {text!r}: {found[0]!r} and {found[1]!r} mean the same")
    return fields.pop(found[0]) if found else None


def _flag(fields: dict[str, str], text: str, *keys: str) -> bool:
    value = _first(fields, text, *keys)
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidArgument(f"mount {text!r}: readonly takes true or false, not {value!r}")
