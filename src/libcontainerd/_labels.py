"""Container labels: checked before they are sent, as containerd would check them.

containerd refuses a label whose key is empty or whose key and value together
exceed 4096 bytes; checking here names the label instead of a gRPC error.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import InvalidArgument

__all__ = ["MAX_LABEL_LENGTH", "check_labels"]

MAX_LABEL_LENGTH = 4096


def check_labels(labels: object, *, removals: bool = False) -> dict[str, str]:
    """``labels`` as a dict if containerd would keep them, else InvalidArgument.

    containerd drops a label whose value is empty: refused, unless ``removals``
    says that an empty value means "remove it".
    """
    if not isinstance(labels, Mapping):
        raise InvalidArgument(f"labels must be a mapping of strings, not {type(labels).__name__}")
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgument(f"label {key!r}: keys and values must be strings")
        if not key or not key.strip():
            raise InvalidArgument("a label's key must not be empty")
        if "\0" in key or "\0" in value:
            raise InvalidArgument(f"label {key!r} must not contain NUL characters")
        if len(key.encode()) + len(value.encode()) > MAX_LABEL_LENGTH:
            raise InvalidArgument(
                f"label {key[:40]!r}: key and value together exceed {MAX_LABEL_LENGTH} bytes"
            )
        if not value and not removals:
            raise InvalidArgument(
                f"label {key!r} has an empty value, which containerd does not keep"
            )
        checked[key] = value
    return checked
