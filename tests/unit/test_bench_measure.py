"""The benchmark's statistics: paired ratio intervals and the targets' verdicts (no timing)."""

from __future__ import annotations

import random

from bench.measure import ratio_interval
from bench.runner import evaluate_targets


def _pairs(factor: float, count: int = 30, seed: int = 1) -> list[tuple[float, float]]:
    """Ours = factor x the anchor, both under the same per-iteration drift and their own noise."""
    draw = random.Random(seed)
    pairs = []
    for _ in range(count):
        drift = draw.uniform(0.8, 1.2)
        anchor = 0.070 * drift * draw.uniform(0.95, 1.05)
        pairs.append((factor * 0.070 * drift * draw.uniform(0.95, 1.05), anchor))
    return pairs


def test_the_interval_of_equal_systems_holds_1_and_of_a_slower_one_does_not() -> None:
    same = ratio_interval(_pairs(1.0))
    slower = ratio_interval(_pairs(1.3))
    assert same is not None
    assert slower is not None
    assert same[0] < 1.0 < same[1]
    assert 1.0 < slower[0] < 1.3 < slower[1]


def test_the_interval_is_reproducible_and_needs_a_few_pairs() -> None:
    pairs = _pairs(1.1)
    assert ratio_interval(pairs) == ratio_interval(pairs)
    assert ratio_interval(pairs[:4]) is None


def _results(ratio: float, interval: list[float]) -> dict[str, object]:
    return {
        "benchmarks": {
            "lifecycle": {"ratios": {"go": ratio}, "ratio_intervals_90": {"go": interval}}
        }
    }


def _lifecycle_vs_go(results: dict[str, object]) -> dict[str, object]:
    return next(t for t in evaluate_targets(results) if t["target"] == "lifecycle vs Go")


def test_a_ratio_whose_interval_straddles_its_limit_is_not_settled() -> None:
    target = _lifecycle_vs_go(_results(1.03, [0.97, 1.08]))
    assert target["met"] is False
    assert target["settled"] is False
    assert target["interval_90"] == [0.97, 1.08]


def test_a_ratio_whose_interval_is_on_one_side_is_settled_either_way() -> None:
    missed = _lifecycle_vs_go(_results(1.07, [1.02, 1.12]))
    met = _lifecycle_vs_go(_results(0.9, [0.85, 0.95]))
    assert (missed["met"], missed["settled"]) == (False, True)
    assert (met["met"], met["settled"]) == (True, True)


def test_a_target_without_an_interval_has_no_settled_verdict() -> None:
    target = _lifecycle_vs_go({"benchmarks": {"lifecycle": {"ratios": {"go": 0.98}}}})
    assert target["met"] is True
    assert "settled" not in target
