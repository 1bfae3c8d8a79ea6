"""Suite-wide hooks: the run ends with the figures reliability tests record, and its skips.

The skips are grouped by reason with their counts, so a run that left part of
the suite out says which part and why (in CI a missing prerequisite fails
instead: see ``tests/ci.py``).
"""

from __future__ import annotations

from collections import Counter

import pytest

from . import figures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = figures.report()
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)
    skips = skip_counts(terminalreporter.stats.get("skipped", []))
    if skips:
        terminalreporter.section(f"skips by reason ({sum(skips.values())})")
        for reason, count in skips.most_common():
            terminalreporter.write_line(f"{count:5}  {reason}")


def skip_counts(reports: list[pytest.TestReport]) -> Counter[str]:
    """How many tests were skipped for each reason (pytest's "Skipped: " prefix dropped)."""
    counts: Counter[str] = Counter()
    for report in reports:
        longrepr = report.longrepr
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
        counts[reason.removeprefix("Skipped: ")] += 1
    return counts
