"""Values typed on ``lcd``'s command line: sizes, users, environment entries.

Each parser raises InvalidArgument with a message that names the value and
says what would be accepted, so the command can print it as its one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import InvalidArgument

__all__ = ["parse_env", "parse_env_file", "parse_labels", "parse_size", "parse_user"]

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# "512", "512b", "64m", "1.5g", "64MiB", "64 MB", as Docker's RAMInBytes accepts (binary units).
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?\s*\Z", re.IGNORECASE | re.ASCII)
_MAX_SIZE = (1 << 63) - 1


def parse_size(text: str) -> int:
    """A size in bytes from ``512``, ``64k``, ``64m``, ``1.5g``, ``64MiB``, ... (binary units)."""
    match = _SIZE.match(text)
    if match is None:
        raise InvalidArgument(
            f"{text!r} is not a size: use a number of bytes with an optional unit"
            " b, k, m, g or t (for example 64m or 1.5g)"
        )
    value = float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if value < 1 or value > _MAX_SIZE:
        raise InvalidArgument(f"size {text!r} is out of range (1 byte to 8 EiB)")
    return int(value)


def parse_env(entries: Iterable[str], host: Mapping[str, str] | None = None) -> list[str]:
    """``K=V`` entries as given; a bare ``K`` takes the host's value, or is dropped if unset."""
    environ = os.environ if host is None else host
    result = []
    for entry in entries:
        name, equals, _ = entry.partition("=")
        if not name or "\0" in entry:
            raise InvalidArgument(f"environment entry {entry!r} must look like NAME=value or NAME")
        if equals:
            result.append(entry)
        elif name in environ:
            result.append(f"{name}={environ[name]}")
    return result


def parse_env_file(text: str, where: str) -> list[str]:
    """The entries of an ``--env-file`` (Docker's format): a ``NAME=VALUE`` or ``NAME`` per
    line, taken as written (no quotes removed); blank lines and ``#`` comments skipped."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        name, equals, value = stripped.partition("=")
        if not name or any(character.isspace() for character in name):
            raise InvalidArgument(f"{where}, line {number}: {name!r} is not a variable name")
        entries.append(f"{name}={value}" if equals else name)
    return entries


def parse_labels(entries: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` labels, the last one of a key winning.

    Docker also takes a bare ``KEY`` (an empty value); containerd keeps no empty
    value, so that is refused rather than lost.
    """
    labels = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        if not key.strip() or not value:
            raise InvalidArgument(
                f"label {entry!r} must look like KEY=VALUE (containerd keeps no empty value)"
            )
        labels[key] = value
    return labels


def parse_user(text: str, root: str | os.PathLike[str] | None) -> tuple[int, int | None]:
    """``uid``, ``uid:gid``, ``name`` or ``name:group`` -> (uid, gid or None).

    Names are looked up in the root filesystem's ``/etc/passwd`` and
    ``/etc/group``; a named user without a group gets the passwd entry's group.
    """
    user, colon, group = text.partition(":")
    if not user or (colon and not group):
        raise InvalidArgument(f"user {text!r} must look like uid, uid:gid, name or name:group")
    gid: int | None = None
    if user.isdigit():
        uid = int(user)
    else:
        entry = _lookup(root, "passwd", user)
        if entry is None:
            raise InvalidArgument(f"user {user!r} is not in the container's /etc/passwd")
        uid, gid = _number(entry[2], text), _number(entry[3], text)
    if colon:
        if group.isdigit():
            gid = int(group)
        else:
            found = _lookup(root, "group", group)
            if found is None:
                raise InvalidArgument(f"group {group!r} is not in the container's /etc/group")
            gid = _number(found[2], text)
    for value in (uid, gid):
        if value is not None and value > 0xFFFFFFFF:
            raise InvalidArgument(f"user {text!r}: ids must be below 2^32")
    return uid, gid


def _lookup(root: str | os.PathLike[str] | None, table: str, name: str) -> list[str] | None:
    if root is None:
        return None
    try:
        lines = (Path(root) / "etc" / table).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            return fields
    return None


def _number(field: str, text: str) -> int:
    if not field.isdigit():
        raise InvalidArgument(f"user {text!r}: the container's entry has a bad id {field!r}")
    return int(field)
