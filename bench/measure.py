"""Summaries of samples, and ratios between systems measured in the same run."""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Median with its spread (quartiles, extremes) of a list of samples."""
    values = sorted(samples)
    return {
        "n": len(values),
        "median": statistics.median(values) if values else float("nan"),
        "p25": quantile(values, 0.25),
        "p75": quantile(values, 0.75),
        "min": values[0] if values else float("nan"),
        "max": values[-1] if values else float("nan"),
    }


def medians_ms(times: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each step's median in milliseconds, from its samples in seconds."""
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def print_medians(medians: Mapping[str, float], *, as_json: bool, width: int) -> None:
    """A run's figures as JSON, or a line each: a name with "/" in it is a ratio (no unit)."""
    if as_json:
        print(json.dumps(medians, indent=2))
        return
    for name, value in medians.items():
        unit = "" if "/" in name else " ms"
        print(f"{name:{width}} {value:8.2f}{unit}")


def ratio(ours: float | None, anchor: float | None) -> float | None:
    """ours / anchor, or None when either is missing."""
    if ours is None or anchor is None or anchor == 0:
        return None
    return ours / anchor


def ratio_interval(
    pairs: Sequence[tuple[float, float]], *, level: float = 0.9, resamples: int = 2000
) -> tuple[float, float] | None:
    """Bootstrap interval of median(ours) / median(anchor) over paired iterations.

    The systems are interleaved per iteration, so an iteration's pair shares
    the machine's state of the moment; resampling whole pairs keeps that, and
    the interval says whether a ratio near its target is told apart from
    noise. Seeded, so a run's report is reproducible from its samples.
    """
    if len(pairs) < 5:
        return None
    draw = random.Random(0)
    count = len(pairs)
    ratios = []
    for _ in range(resamples):
        picked = [pairs[draw.randrange(count)] for _ in range(count)]
        anchor = statistics.median(pair[1] for pair in picked)
        if anchor > 0:
            ratios.append(statistics.median(pair[0] for pair in picked) / anchor)
    if not ratios:
        return None
    ratios.sort()
    tail = (1 - level) / 2
    return quantile(ratios, tail), quantile(ratios, 1 - tail)


def rotate(items: Sequence[Any], by: int) -> list[Any]:
    """The items, starting at position ``by``: round-robin without a fixed first place."""
    if not items:
        return []
    by %= len(items)
    return [*items[by:], *items[:by]]


def format_seconds(value: float | None) -> str:
    """Seconds shown in the unit that reads best."""
    if value is None or value != value:
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} µs"
