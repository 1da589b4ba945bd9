"""Finding the staircase: optimal widths of a latency curve, and snapping widths to them.

A width is *optimal* when no larger measured width is as fast, within the measurement's
own noise: it is the top-right corner of its step (the paper's ``get_outliers``). The
tolerance for "as fast" is twice the larger of the two points' spreads (IQR), with a
small relative floor: a fixed percentage alone would either miss the small steps of wide
layers (16 channels of 512 cost ~3%) or find false ones in noisy curves.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ..errors import StaircaseError

__all__ = ["optimal_points", "snap", "step_size", "SNAP_MODES"]

SNAP_MODES = ("nearest", "up", "down")


def optimal_points(
    widths: Sequence[int],
    times: Sequence[float],
    spreads: Sequence[float] | None = None,
    rel_tol: float = 0.01,
    noise_factor: float = 2.0,
) -> list[int]:
    """Widths (ascending) for which every larger width is slower by more than the noise.

    ``times`` are medians; ``spreads`` their IQRs (same unit). The widest measured width is
    always optimal.
    """
    if not widths:
        return []
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    spreads = spreads if spreads is not None else [0.0] * len(widths)
    optimal = []
    best_t, best_s = float("inf"), 0.0  # fastest larger width and its spread
    for i in reversed(order):
        t, s = times[i], spreads[i]
        tol = max(noise_factor * max(s, best_s), rel_tol * t)
        if t + tol < best_t:  # faster than anything wider, beyond the noise
            optimal.append(widths[i])
        if t < best_t:
            best_t, best_s = t, s
    return sorted(optimal)


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
