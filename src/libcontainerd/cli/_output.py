"""What lcd prints: results on stdout (tables, ids, JSON), notes and progress on stderr.

Also how it writes moments (ISO 8601, in UTC) and durations (``3m 20s``), the
same in every command.
"""

from __future__ import annotations

import contextlib
import json
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # rich is imported on first use: most runs print no table and no spinner
    from rich.console import Console
    from rich.table import Table

__all__ = ["Output", "ago", "duration", "iso", "since"]


class Output:
    """stdout for results (tables, ids, JSON), stderr for notes and progress."""

    @cached_property
    def stdout(self) -> Console:
        from rich.console import Console

        # A table piped to a file or a program keeps every column whole.
        width = None if sys.stdout.isatty() else 100_000
        return Console(width=width, markup=False, highlight=False, emoji=False)

    @cached_property
    def stderr(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, markup=False, highlight=False, emoji=False)

    def note(self, message: str) -> None:
        click.echo(f"lcd: {message}", err=True)

    def progress(self, message: str) -> contextlib.AbstractContextManager[Any]:
        """A spinner on stderr while something slow happens, only when stderr is a terminal."""
        if sys.stderr.isatty() and self.stderr.is_terminal:
            return self.stderr.status(message)
        return contextlib.nullcontext()

    def render_table(self, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 3, 0, 0))
        for header in headers:
            table.add_column(header, no_wrap=True, overflow="ignore")
        for row in rows:
            table.add_row(*row)
        return table

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        """Columns as wide as their widest cell, three spaces apart, no line cut.

        Plain text, laid out as :meth:`render_table` would be, without importing
        rich (a third of ``lcd ps``'s time).
        """
        lines = [list(headers), *(list(row) for row in rows)]
        widths = [max(_cells(line[column]) for line in lines) for column in range(len(headers))]
        click.echo(
            "\n".join(
                "".join(
                    _padded(text, width) for text, width in zip(line, widths, strict=True)
                ).rstrip()
                for line in lines
            )
        )

    def json(self, document: Any) -> None:
        click.echo(json.dumps(document, default=_json_default))


def _padded(text: str, width: int) -> str:
    return text + " " * (width - _cells(text) + 3)


def _cells(text: str) -> int:
    """How many terminal cells ``text`` takes: East Asian wide characters take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def since(moment: datetime | None, now: datetime | None = None) -> float | None:
    if moment is None:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())


def duration(seconds: float | None) -> str:
    """``42s``, ``3m 20s``, ``2h 5m``, ``3d 4h``."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    for size, unit, next_size, next_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if whole >= size:
            return f"{whole // size}{unit} {(whole % size) // next_size}{next_unit}"
    return f"{whole}s"


def ago(moment: datetime | None) -> str:
    seconds = since(moment)
    return "-" if seconds is None else f"{duration(seconds)} ago"
