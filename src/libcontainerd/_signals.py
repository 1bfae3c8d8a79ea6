"""Signals as callers name them: a number, a ``signal.Signals``, or ``"SIGTERM"`` / ``"TERM"``."""

from __future__ import annotations

import signal

from .errors import InvalidArgument

# Linux's real-time signals end at 64; 0 only probes and containerd rejects it.
MAX_SIGNAL = 64


def parse_signal(value: int | str | signal.Signals) -> int:
    """The signal number for ``value``; raises InvalidArgument naming what was wrong."""
    if isinstance(value, bool):
        raise InvalidArgument(f"signal must be a number or a name like 'SIGTERM', not {value!r}")
    if isinstance(value, str):
        text = value.strip().upper()
        # Only ASCII digits: str.isdigit() also takes '²', which int() refuses.
        if text.isascii() and text.isdigit():
            number = int(text)
        else:
            name = text if text.startswith("SIG") else f"SIG{text}"
            try:
                number = int(signal.Signals[name])
            except KeyError:
                raise InvalidArgument(f"unknown signal name {value!r}") from None
    elif isinstance(value, int):
        number = int(value)
    else:
        raise InvalidArgument(
            f"signal must be a number or a name like 'SIGTERM', not {type(value).__name__}"
        )
    if not 1 <= number <= MAX_SIGNAL:
        raise InvalidArgument(f"signal {value!r} is out of range 1..{MAX_SIGNAL}")
    return number
