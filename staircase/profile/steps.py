"""Finding the staircase: optimal widths of a latency curve, and snapping widths to them.

A width is *optimal* when every larger measured width is slower by more than the
measurement can blur: it is the top-right corner of its step (the paper's
``get_outliers``). "Slower" is a one-sided test on the two medians' standard errors
(``z`` of them, combined), with a small relative floor. Standard errors shrink with the
number of samples, so a step of 3% (16 channels of 512) is found once a point has been
sampled enough, while two points of one noisy plateau are not told apart. Comparing by
the points' spreads (IQR) instead hides every small step on a noisy machine.

Curves need not be monotone: on CPUs, widths that fill the vector registers (multiples
of 4, 8 or 16) are often faster than narrower ones, and they are the optimal points.

The steps come from the kernels' channel blocking, so a network's staircases share a
period (16 channels for ONNX Runtime on this CPU). ``lattice_period`` finds it from the
optimal widths of all its slots, and the test then weighs the evidence by it: a width on
the period is optimal at ``z * ON_PERIOD`` standard errors, one off it at
``z * OFF_PERIOD``. This is a prior, not a rule: a clear step off the period is still
found, and without a period (too few steps, or no power of two they share) every width
is tested at ``z``. It is what makes two profiles of one machine agree: a step of 5-8%
measured with 2-4% noise per round sits near any single threshold (see
``scripts/bench_profiler.py``, part 1).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

from ..errors import StaircaseError

__all__ = ["optimal_points", "ambiguous_edges", "lattice_period", "snap", "step_size", "SNAP_MODES"]

SNAP_MODES = ("nearest", "up", "down")
DEFAULT_Z = 3.0  # one-sided; 2.5 split plateaus at their last width once in ~100 curves
DEFAULT_REL_TOL = 0.01
# evidence asked of a width on the network's period and off it, as multiples of z
ON_PERIOD, OFF_PERIOD = 0.5, 1.5
# 4 and 2 are where widths fill vector registers (dips, not steps): as a prior they would
# lower the bar for a quarter or half of all widths
PERIODS = (8, 16, 32, 64)
PERIOD_COVERAGE = 0.8  # share of the optimal widths a period must divide
PERIOD_MIN_POINTS = 6


def _threshold(width: int, z: float, period: int | None) -> float:
    if not period:
        return z
    return z * (ON_PERIOD if width % period == 0 else OFF_PERIOD)


def _margins(widths, times, stderrs, rel_tol):
    """For each width (ascending), the smallest of (t_v - t_w) / threshold over larger widths v,
    and that v (the *witness*: the wider point whose time limits the verdict).

    A width is optimal at level ``z`` when its margin exceeds ``z``; the widest width has
    margin infinity (and no witness). Threshold: the combined standard error, floored at
    ``rel_tol * t_w / z`` so that the relative floor holds whatever ``z`` is asked for later.
    """
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    w = [widths[i] for i in order]
    t = [float(times[i]) for i in order]
    se = [float(stderrs[i]) for i in order] if stderrs is not None else [0.0] * len(w)
    # a point whose few samples happened to agree is no surer than the curve's typical
    # point: floor each standard error at the curve's median relative one
    rel = sorted(e / x for e, x in zip(se, t, strict=True) if x > 0)
    typical = rel[len(rel) // 2] if rel else 0.0
    se = [max(e, typical * x) for e, x in zip(se, t, strict=True)]
    margins, witnesses = [], []
    for a in range(len(w)):
        best, witness = math.inf, None
        for b in range(a + 1, len(w)):
            gap = t[b] - t[a]
            if gap <= 0:
                best, witness = -math.inf, w[b]
                break
            noise = math.hypot(se[a], se[b])
            floor = rel_tol * t[a]
            # margin in units of noise, but never counting a gap under the floor as optimal
            m = gap / noise if noise > 0 else math.inf
            if gap <= floor:
                m = min(m, 0.0)
            if m < best:
                best, witness = m, w[b]
        margins.append(best)
        witnesses.append(witness)
    return w, margins, witnesses


def optimal_points(
    widths: Sequence[int],
    times: Sequence[float],
    stderrs: Sequence[float] | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
    z: float = DEFAULT_Z,
    period: int | None = None,
) -> list[int]:
    """Widths (ascending) for which every larger width is slower beyond the noise.

    ``times`` are medians and ``stderrs`` their standard errors (same unit; zero when
    omitted). The widest measured width is always optimal. With a ``period`` (see
    ``lattice_period``), widths on it need less evidence and widths off it more.
    """
    w, margins, _ = _margins(widths, times, stderrs, rel_tol)
    return [x for x, m in zip(w, margins, strict=True) if m > _threshold(x, z, period)]


def ambiguous_edges(
    widths: Sequence[int],
    times: Sequence[float],
    stderrs: Sequence[float] | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
    z: float = DEFAULT_Z,
    period: int | None = None,
) -> list[tuple[int, int]]:
    """Widths whose verdict would flip with half or twice the evidence (margin within
    half and twice its threshold), each with its witness, the wider point that limits its
    margin: the verdict is only as sure as the noisier of the two, so more samples of both
    settle the staircase where it is uncertain."""
    w, margins, witnesses = _margins(widths, times, stderrs, rel_tol)
    out = []
    for x, m, v in zip(w, margins, witnesses, strict=True):
        threshold = _threshold(x, z, period)
        if threshold / 2 <= m <= 2 * threshold:
            out.append((x, v))
    return out


def lattice_period(point_sets: Iterable[Sequence[int]], min_points: int = PERIOD_MIN_POINTS,
                   coverage: float = PERIOD_COVERAGE) -> int | None:
    """The channel period a network's staircases share: the largest power of two (8 to 64)
    that divides at least ``coverage`` of their optimal widths, or None.

    ``point_sets`` are the optimal widths of each curve, found without a period. Each
    curve's widest width is left out (it is optimal by definition), and so are widths
    under 8, where small layers' curves wander. Fewer than ``min_points`` widths say
    nothing.
    """
    points = [w for pts in point_sets for w in sorted(pts)[:-1] if w >= 8]
    if len(points) < min_points:
        return None
    shared = [p for p in PERIODS if sum(w % p == 0 for w in points) >= coverage * len(points)]
    return max(shared, default=None)


def snap(width: int, points: Sequence[int], mode: str = "nearest") -> int:
    """Move ``width`` to an optimal point: ``nearest`` (ties go up), ``up`` (more channels,
    no more time) or ``down`` (less time). Outside the points, the closest end is taken."""
    if mode not in SNAP_MODES:
        raise StaircaseError(f"snap mode {mode!r} is not one of {', '.join(SNAP_MODES)}")
    if not points:
        raise StaircaseError("no optimal points to snap to")
    pts = sorted(points)
    i = bisect.bisect_left(pts, width)
    above = pts[i] if i < len(pts) else None
    below = pts[i - 1] if i > 0 else None
    if above == width:
        return width
    if mode == "up" or below is None:
        return above if above is not None else pts[-1]
    if mode == "down" or above is None:
        return below
    return above if above - width <= width - below else below


def step_size(points: Sequence[int]) -> int | None:
    """The typical distance between consecutive optimal points (their median gap)."""
    gaps = sorted(b - a for a, b in zip(points, points[1:], strict=False))
    return gaps[len(gaps) // 2] if gaps else None
