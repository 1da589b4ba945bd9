"""How sure a comparison is: the difference of two sets of runs with its 95% interval, and
the verdict it allows. Two ways: Student's t over per-pair differences (``paired_difference``:
one figure per seed), and a bootstrap over test images and seeds (``bootstrap_difference``:
per-image correctness of every run), which counts the test set's sampling as well as the
seeds' spread. Where only each run's top-1 is kept, ``proportion_difference`` compares two
accuracies on the same number of test images as independent proportions."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Difference", "bootstrap_difference", "mean_interval", "median_interval", "paired_difference",
           "proportion_difference", "welch_difference"]


@dataclass(frozen=True)
class Difference:
    """``a - b``: the mean of the paired differences and its two-sided interval."""

    mean: float
    low: float
    high: float
    pairs: int  # pairs of runs (t), or runs of each side (bootstrap)
    level: float = 0.95
    detectable_from: float | None = None  # the smallest difference this design would detect (80% power)

    @property
    def detectable(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0

    @property
    def outcome(self) -> str:
        """The verdict for ``a``: "won" or "lost" only where the interval excludes zero; "tie"
        for no difference at all; else "no detectable difference"."""
        if self.low > 0:
            return "won"
        if self.high < 0:
            return "lost"
        return "tie" if self.mean == 0 else "no detectable difference"

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
    if len(diffs) < 2:
        return Difference(statistics.fmean(diffs), float("-inf"), float("inf"), 1, level)
    return Difference(*mean_interval(diffs, level), len(diffs), level)


def welch_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Difference:
    """The mean of ``a`` minus the mean of ``b``, two unpaired samples of at least two values
    each, with its ``level`` interval (Welch's t: each sample's own variance, the
    Welch-Satterthwaite degrees of freedom); both without scatter, the interval is the point."""
    from scipy.stats import t

    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_difference needs at least two values a side ({len(a)} and {len(b)})")
    diff = statistics.fmean(a) - statistics.fmean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return Difference(diff, diff, diff, min(len(a), len(b)), level)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(t.ppf(0.5 + level / 2, df)) * (va + vb) ** 0.5
    return Difference(diff, diff - half, diff + half, min(len(a), len(b)), level)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` (at least two) and its ``level`` interval
    (Student's t, n - 1 degrees of freedom)."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    half = float(t.ppf(0.5 + level / 2, len(values) - 1)) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the median of ``values`` and a distribution-free interval for it
    covering at least ``level`` (the order statistics k and n + 1 - k, k as large as the
    binomial(n, 1/2) allows). One disturbed value moves neither the median nor, with enough
    values, the interval; at least 6 values are needed for 95%."""
    from scipy.stats import binom

    ordered = sorted(values)
    n = len(ordered)
    k = 0
    while k + 1 <= n // 2 and 1 - 2 * binom.cdf(k, n, 0.5) >= level:
        k += 1  # the interval [x(k+1), x(n-k)] (1-based) still covers at least `level`
    if k == 0:
        raise ValueError(f"median_interval needs more than {n} values for a {level:.0%} interval")
    return statistics.median(ordered), ordered[k - 1], ordered[n - k]


def bootstrap_difference(a, b, resamples: int = 10_000, level: float = 0.95, seed: int = 0) -> Difference:
    """Top-1 of ``a`` minus top-1 of ``b``, in points, with its percentile interval. ``a`` and
    ``b``: per-image correctness, one row per run (seed) and one column per test image, the
    same images in the same order. Each resample draws the test images once for both sides
    (paired: an image hard for one is hard for the other) and each side's runs with
    replacement. ``detectable_from``: 2.8 bootstrap standard errors, the difference a test at
    this level would detect four times in five."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not a.size or not b.size:
        raise ValueError(f"bootstrap_difference needs (runs, images) arrays over the same images: {a.shape}, {b.shape}")
    rng = np.random.default_rng(seed)
    images = a.shape[1]
    diffs = np.empty(resamples)

    def shares(n: int, size: int):
        """``n`` resamples of ``size`` items drawn with replacement: each item's share."""
        drawn = rng.integers(0, size, (n, size)) + size * np.arange(n)[:, None]
        return np.bincount(drawn.ravel(), minlength=n * size).reshape(n, size) / size

    for start in range(0, resamples, 500):  # each resample as draw shares: one matrix product per side
        n = min(500, resamples - start)
        cols, ra, rb = shares(n, images), shares(n, len(a)), shares(n, len(b))
        diffs[start:start + n] = ((ra @ a) * cols).sum(axis=1) - ((rb @ b) * cols).sum(axis=1)
    diffs *= 100
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    mean = 100 * (a.mean() - b.mean())
    return Difference(float(mean), float(low), float(high), min(len(a), len(b)), level,
                      float(2.8 * diffs.std(ddof=1)))


PROPORTION_TEST = "two-proportion z interval (the test images counted as independent draws for each network)"


def proportion_difference(top1_a: float, top1_b: float, images: int, level: float = 0.95) -> Difference:
    """``top1_a - top1_b`` (percentages on ``images`` test images each) with its normal
    interval, the two accuracies taken as independent proportions (``PROPORTION_TEST``). Where
    both networks saw the same images this is wider than a paired test: it can miss a real
    difference, not invent one."""
    from scipy.stats import norm

    if images < 1:
        raise ValueError(f"proportion_difference needs at least one test image, got {images}")
    a, b = top1_a / 100, top1_b / 100
    se = 100 * ((a * (1 - a) + b * (1 - b)) / images) ** 0.5
    half = float(norm.ppf(0.5 + level / 2)) * se
    mean = top1_a - top1_b
    return Difference(mean, mean - half, mean + half, 1, level, 2.8 * se)
