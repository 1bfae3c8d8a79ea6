"""Signals by number, enum or name; anything else is refused before sending."""

import signal

import pytest

from libcontainerd._signals import parse_signal
from libcontainerd.errors import InvalidArgument


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (9, 9),
        (signal.SIGTERM, 15),
        ("SIGTERM", 15),
        ("term", 15),
        ("KILL", 9),
        ("10", 10),
        (64, 64),
    ],
)
def test_signals_are_accepted_by_number_enum_or_name(
    value: int | str | signal.Signals, number: int
) -> None:
    assert parse_signal(value) == number


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (0, "out of range"),
        (65, "out of range"),
        (-1, "out of range"),
        ("SIGNOPE", "unknown"),
        (True, "must be a number"),
        (1.5, "must be a number"),
        ("²", "unknown signal name"),
        ("٣", "unknown signal name"),
    ],
)
def test_bad_signals_are_refused(value: object, complaint: str) -> None:
    with pytest.raises(InvalidArgument, match=complaint):
        parse_signal(value)  # type: ignore[arg-type]
