"""lcd's container logs: one timestamped record per line of output, as the CRI writes them.

Outside ``cli/`` so that :mod:`._log_writer` imports it without click or grpc.

Why: ``lcd logs --since`` and ``-t`` need the moment each line was written,
and only the writer knows it. A record is ``TIME STREAM TAG TEXT`` on one
line (the CRI log format, kubelet's): ``TIME`` in RFC 3339 with nanoseconds
in UTC, ``STREAM`` ``stdout`` or ``stderr``, ``TAG`` ``F`` for a full line
(its newline dropped) or ``P`` for a piece of one that went on in a later
record. Written by :mod:`._log_writer` (containers lcd leaves running) and by
lcd itself in the foreground; read by ``lcd logs``. A line that is not a
record (a log written by an older lcd) is shown as it is, with no time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Record", "format_records", "parse_moment", "parse_record", "records", "stamp"]

STDOUT = b"stdout"
STDERR = b"stderr"


@dataclass(frozen=True, slots=True)
class Record:
    """One record: ``moment`` (None for a line that is not a record), the stream, the text."""

    moment: bytes | None
    stream: bytes
    text: bytes
    full: bool


def stamp(nanoseconds: int | None = None) -> bytes:
    """``nanoseconds`` since the epoch (default: now) as RFC 3339 in UTC, to the nanosecond."""
    now = time.time_ns() if nanoseconds is None else nanoseconds
    seconds, fraction = divmod(now, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + (
        b".%09dZ" % fraction
    )


def format_records(stream: bytes, data: bytes, moment: bytes | None = None) -> bytes:
    """``data`` read from ``stream`` as records: one per line, a trailing piece as a ``P``."""
    when = moment or stamp()
    lines = data.split(b"\n")
    records = [b"%s %s F %s\n" % (when, stream, line) for line in lines[:-1]]
    if lines[-1]:
        records.append(b"%s %s P %s\n" % (when, stream, lines[-1]))
    return b"".join(records)


_RECORD = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([FP]) ")


def parse_record(line: bytes) -> Record:
    """One line of a log (without its newline) as a record; not one: a full stdout line."""
    match = _RECORD.match(line)
    if match is None:
        return Record(None, STDOUT, line, True)
    return Record(match[1], match[2], line[match.end() :], match[3] == b"F")


def records(data: bytes) -> Iterator[Record]:
    """The records of whole lines in ``data`` (which ends with a newline or is empty)."""
    for line in data.split(b"\n")[:-1]:
        yield parse_record(line)


_RELATIVE = re.compile(r"(?:(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_moment(value: str, now: datetime | None = None) -> bytes:
    """Docker's ``--since``: RFC 3339 (``2026-12-06T10:00:00Z``, a date, an offset), Unix
    seconds (``1765000000.5``), or a duration before now (``10m``, ``1h30m``, ``45s``).

    Returns the moment as :func:`stamp` writes it, so records compare as bytes.
    Raises ValueError saying what is accepted.
    """
    text = value.strip()
    now = now or datetime.now(UTC)
    moment: datetime | None = None
    if _RELATIVE.fullmatch(text):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
        moment = now - timedelta(seconds=seconds)
    elif re.fullmatch(r"\d+(\.\d+)?", text):
        moment = datetime.fromtimestamp(float(text), UTC)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None:
            moment = moment.astimezone()  # local time, as Docker reads one without an offset
    if moment is None:
        raise ValueError(
            f"{value!r} is not a moment: give RFC 3339 (2026-12-06T10:00:00Z), Unix seconds,"
            " or a duration before now (10m, 1h30m, 45s)"
        )
    utc = moment.astimezone(UTC)
    nanoseconds = (
        int(utc.replace(microsecond=0).timestamp()) * 1_000_000_000 + utc.microsecond * 1000
    )
    return stamp(nanoseconds)
