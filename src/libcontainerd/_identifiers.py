"""containerd's identifier rules, checked before a request is sent.

containerd accepts ``[A-Za-z0-9]+`` joined by single ``.``, ``_`` or ``-``,
at most 76 characters. Checking here lets a bad id fail with a message that
names it, instead of a gRPC error, and keeps ids like ``../x`` away from
paths this library builds.
"""

from __future__ import annotations

import re

from .errors import InvalidArgument

MAX_IDENTIFIER_LENGTH = 76
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*\Z", re.ASCII)


def check_identifier(value: object, what: str = "container id") -> str:
    """Return ``value`` if it is a valid containerd identifier, else raise InvalidArgument."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidArgument(
            f"{what} {value[:20]!r}... is {len(value)} characters long;"
            f" containerd allows at most {MAX_IDENTIFIER_LENGTH}"
        )
    if not _IDENTIFIER.match(value):
        raise InvalidArgument(
            f"{what} {value!r} is not a valid identifier: use letters and digits,"
            " optionally joined by single '.', '_' or '-'"
        )
    return value
