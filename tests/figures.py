"""Figures that reliability tests measure and the run prints at its end.

A test calls ``figures.record("leaks", "shim processes after 500 cycles", 0)``;
``tests/conftest.py`` prints every recorded figure, grouped by topic, in
pytest's terminal summary, so CI's log shows the numbers behind each promise.
"""

from __future__ import annotations

from collections import defaultdict

_recorded: dict[str, list[tuple[str, str]]] = defaultdict(list)


def record(topic: str, what: str, value: object) -> None:
    """Keep one figure (``value`` is printed with str) under ``topic``."""
    _recorded[topic].append((what, str(value)))


def report() -> list[str]:
    """The lines of the summary, or none when no test recorded a figure."""
    lines: list[str] = []
    for topic, rows in _recorded.items():
        lines.append(f"{topic}:")
        width = max(len(what) for what, _ in rows)
        lines.extend(f"  {what.ljust(width)}  {value}" for what, value in rows)
    return lines
