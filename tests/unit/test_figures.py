from tests import figures


def test_recorded_figures_are_reported_by_topic_and_aligned() -> None:
    saved = dict(figures._recorded)
    figures._recorded.clear()
    try:
        figures.record("leaks", "shims left", 0)
        figures.record("leaks", "client fds before/after", "12/12")
        figures.record("churn", "exits delivered", 200)
        assert figures.report() == [
            "leaks:",
            "  shims left               0",
            "  client fds before/after  12/12",
            "churn:",
            "  exits delivered  200",
        ]
    finally:
        figures._recorded.clear()
        figures._recorded.update(saved)


def test_nothing_recorded_prints_nothing() -> None:
    saved = dict(figures._recorded)
    figures._recorded.clear()
    try:
        assert figures.report() == []
    finally:
        figures._recorded.update(saved)
