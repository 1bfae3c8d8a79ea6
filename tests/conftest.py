"""Suite-wide hooks: the figures reliability tests record are printed at the end."""

from __future__ import annotations

import pytest

from . import figures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = figures.report()
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)
