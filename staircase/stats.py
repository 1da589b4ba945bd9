"""How sure a comparison is: the difference of two paired sets of runs with its confidence
interval (Student's t over the per-pair differences), and the verdict it allows."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Difference", "paired_difference"]


@dataclass(frozen=True)
class Difference:
    """``a - b``: the mean of the paired differences and its two-sided interval."""

    mean: float
    low: float
    high: float
    pairs: int
    level: float = 0.95

    @property
    def detectable(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0

    def describe(self, unit: str = "") -> str:
        if self.pairs < 2:
            return f"{self.mean:+.2f}{unit} (one pair: no interval)"
        verdict = "" if self.detectable else ": no detectable difference"
        return f"{self.mean:+.2f}{unit} [{self.low:+.2f}, {self.high:+.2f}]{verdict}"


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Difference:
    """The mean of ``a[i] - b[i]`` with its ``level`` interval (Student's t, n - 1 degrees of
    freedom); with one pair the interval is unbounded."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference needs two equally long, non-empty sequences ({len(a)} and {len(b)})")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return Difference(mean, float("-inf"), float("inf"), 1, level)
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, len(diffs) - 1)) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return Difference(mean, mean - half, mean + half, len(diffs), level)
