"""lcd's log records (CRI format): written per read, read back per line, ``--since`` moments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libcontainerd._log_records import (
    STDERR,
    STDOUT,
    Record,
    format_records,
    parse_moment,
    parse_record,
    records,
    stamp,
)

NOW = datetime(2026, 12, 6, 11, 0, 0, tzinfo=UTC)


def test_a_read_becomes_one_full_record_per_line_and_a_partial_for_the_rest() -> None:
    data = format_records(STDOUT, b"a\n\nb", b"T")
    assert data == b"T stdout F a\nT stdout F \nT stdout P b\n"


def test_records_read_back_as_written() -> None:
    when = stamp(1_765_000_000_123_456_789)
    assert when == b"2025-12-06T05:46:40.123456789Z"
    read = list(records(format_records(STDERR, b"x y\nz", when)))
    assert read == [Record(when, STDERR, b"x y", True), Record(when, STDERR, b"z", False)]


def test_a_line_that_is_not_a_record_is_a_full_stdout_line_without_a_time() -> None:
    assert parse_record(b"plain old log") == Record(None, STDOUT, b"plain old log", True)


def test_stamps_sort_as_the_moments_they_stand_for() -> None:
    assert stamp(1_000_000_000) < stamp(1_000_000_001) < stamp(2_000_000_000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10m", b"2026-12-06T10:50:00.000000000Z"),
        ("1h30m", b"2026-12-06T09:30:00.000000000Z"),
        ("1.5h", b"2026-12-06T09:30:00.000000000Z"),
        ("250ms", b"2026-12-06T10:59:59.750000000Z"),
        ("2026-12-06T10:00:00Z", b"2026-12-06T10:00:00.000000000Z"),
        ("2026-12-06T10:00:00.5+01:00", b"2026-12-06T09:00:00.500000000Z"),
        ("1765000000.5", b"2025-12-06T05:46:40.500000000Z"),
    ],
)
def test_since_takes_docker_s_moments(value: str, expected: bytes) -> None:
    assert parse_moment(value, NOW) == expected


@pytest.mark.parametrize("value", ["", "yesterday", "-5m", "10x", "2026-13-01"])
def test_since_refuses_what_is_not_a_moment_saying_what_is(value: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_moment(value, NOW)
