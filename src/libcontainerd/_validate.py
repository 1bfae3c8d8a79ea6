"""Value rules shared by the spec checks (oci) and the profile checks (seccomp).

Each takes ``where``, the parameter name or field path the value came from,
and raises :class:`~libcontainerd.errors.InvalidArgument` as ``<where> must
be <expected>, got <value>``, so a bad field reads the same whichever module
found it. oci imports seccomp, so these live in neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, TypeGuard

from .errors import InvalidArgument


def fail(where: str, expected: str, value: object) -> NoReturn:
    """Raise InvalidArgument: ``where`` must be ``expected``; the value shown cut to 80."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise InvalidArgument(f"{where} must be {expected}, got {shown}")


def required(obj: Mapping[str, Any], key: str, where: str) -> Any:
    """``obj[key]``; InvalidArgument naming ``where.key`` when it is missing."""
    if key not in obj:
        raise InvalidArgument(f"{where}.{key} is required")
    return obj[key]


def as_object(value: object, where: str) -> Mapping[str, Any]:
    """The value, checked to be a JSON object (a Mapping)."""
    if not isinstance(value, Mapping):
        fail(where, "an object (dict)", value)
    return value


def as_list(value: object, where: str) -> list[Any]:
    """The value (a list or tuple) as a list."""
    if not isinstance(value, list | tuple):
        fail(where, "a list", value)
    return list(value)


def is_int(value: object) -> TypeGuard[int]:
    """Whether the value is a JSON integer: bool is an int subclass, but True is none."""
    return isinstance(value, int) and not isinstance(value, bool)


def as_int(value: object, where: str, low: int, high: int) -> int:
    """The value, checked to be an integer from ``low`` to ``high``."""
    if not is_int(value) or not low <= value <= high:
        fail(where, f"an integer between {low} and {high}", value)
    return value
