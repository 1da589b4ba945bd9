"""Reading a latency curve: which widths are worth using, what step the curve takes, and
which points to avoid.

Curves on real devices take three shapes (see docs/profiling.md): clean staircases (wide
spatial maps: the time jumps at the kernels' channel block and stays flat in between),
sawtooths (the time climbs within a block and drops back at its multiples) and near-linear
ramps with isolated spikes (narrow maps, many channels: every channel costs a little).
Testing width against width cannot serve all three: on a ramp each neighbour is only a
percent or two slower, within the noise of one point, so no width ever wins its verdict.
So the evidence is pooled over the whole curve:

1. **The step**, on the sweep's lattice (multiples of its grid ``G``): starting from ``G``,
   the step doubles while the time rises *across* the candidate steps clearly more than
   *inside* them (from an odd multiple of the step to the next even one), and stays once
   the rise inside is clearly more than a quarter of the rise across (``INSIDE_SHARE``).
   Each test averages every candidate step of the curve, so a 1% rise per step is seen on
   a 512-channel ramp where no single pair of points could show it. A staircase of 16 on a
   lattice of 8 doubles once; a ramp stays at ``G``: every multiple of ``G`` is usable at
   its own measured cost. "No step" is therefore never "full width only" unless the curve
   is flat. A test the curve leaves unclear is settled by the network's step
   (``network_step``: the same test on all its slots' curves at once).
2. **The usable widths** are the multiples of the step and the full width, unless a wider
   usable width surely costs at most ``rel_tol`` more (it buys nothing), plus any other
   measured width that is clearly cheaper than every wider one (off the lattice, on
   ``OFF_LATTICE`` times the evidence).
3. **Spikes**: a lattice width clearly slower than both lattice neighbours is flagged and
   never usable; it decides nothing about the others (it is left out of the step test,
   whose averages are trimmed as well). Spikes and dips (clearly faster than both
   neighbours) are measured again: a disturbance goes away, a real kernel choice stays.

A verdict is "clear" at ``z`` combined standard errors of the medians involved; standard
errors are floored at the curve's typical relative one, so a point whose few samples
happened to agree is no surer than the rest. ``Steps.uncertain`` lists the widths whose
verdict more samples could flip: the sweep measures them again.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import StaircaseError

__all__ = ["DEFAULT_GRID", "SNAP_MODES", "Steps", "network_step", "read_steps", "snap", "step_size"]

SNAP_MODES = ("nearest", "up", "down")
# the sweep's lattice: ONNX Runtime's and oneDNN's channel block on AVX2 CPUs (AVX-512's 16
# is a multiple of it); a coarser device step is found on it, a finer one by the probes
DEFAULT_GRID = 8
DEFAULT_Z = 3.0
DEFAULT_REL_TOL = 0.01  # a wider width at most this much slower makes a width pointless
INSIDE_SHARE = 0.25  # the rise inside a step may be at most this share of the rise across steps
OFF_LATTICE = 1.5  # evidence asked of a width off the lattice (and off the step), as a multiple of z
SPIKE_REL = 0.03  # a spike is at least this much slower than both its neighbours
TRIM = 0.2  # share of the increments trimmed at each end before averaging (spikes, outliers)


@dataclass(frozen=True)
class Steps:
    """What one curve says: ``usable`` widths (ascending, the widest measured last), the
    ``step`` the curve takes on the sweep's ``lattice``, ``spikes`` (widths to avoid), the
    measured widths whose verdict is ``uncertain``, and whether the step was ``clear``."""

    usable: list[int]
    step: int
    lattice: int
    spikes: list[int] = field(default_factory=list)
    uncertain: list[int] = field(default_factory=list)
    clear: bool = True  # the step was decided by this curve alone (not by the network's)

    @property
    def flat(self) -> bool:
        """Only the full width is usable: the slot's width buys no time."""
        return len(self.usable) <= 1


def _floored_stderrs(t: list[float], se: list[float]) -> list[float]:
    rel = sorted(e / x for e, x in zip(se, t, strict=True) if x > 0)
    typical = rel[len(rel) // 2] if rel else 0.0
    return [max(e, typical * x) for e, x in zip(se, t, strict=True)]


def _trimmed(values: list[tuple[float, float]]) -> tuple[float, float]:
    """The mean of ``values`` (value, error) without the ``TRIM`` share at each end (spikes,
    outliers), and its standard error: the larger of the propagated errors and the kept
    values' own scatter."""
    ordered = sorted(values)
    cut = int(TRIM * len(ordered)) if len(ordered) >= 5 else 0
    kept = ordered[cut:len(ordered) - cut]
    mean = statistics.fmean(v for v, _ in kept)
    propagated = math.sqrt(sum(e * e for _, e in kept)) / len(kept)
    scatter = statistics.stdev(v for v, _ in kept) / math.sqrt(len(kept)) if len(kept) > 2 else 0.0
    return mean, max(propagated, scatter)


DOUBLES, STAYS, UNCLEAR = "doubles", "stays", "unclear"


def _flat(at: dict[int, tuple[float, float]], z: float, rel_tol: float) -> bool:
    """The curve does not rise from its narrowest lattice width to its widest (beyond the
    noise and ``rel_tol``): its widths all cost the same."""
    first, last = at[min(at)], at[max(at)]
    return last[0] - first[0] <= max(z * math.hypot(first[1], last[1]), rel_tol * last[0])


@dataclass
class _Evidence:
    """One curve's increments at one step (see ``_evidence``)."""

    gaps: list[tuple[float, float]]  # rise across minus rise inside, with its error
    excess: list[tuple[float, float]]  # rise inside beyond what counts as none, with its error
    flat: bool = False
    measured: bool = True  # some increment at this step was measured


def _evidence(step: int, at: dict[int, tuple[float, float]], full: int, z: float, rel_tol: float) -> _Evidence:
    """What a curve says about doubling ``step``.

    Each increment *inside* a candidate step of ``2 * step`` (from an odd multiple of
    ``step`` to the next even one) is set beside the increments *across* on either side of
    it (from an even multiple to the next odd one): near each other the curve's scale is the
    same, so a curve whose rise shrinks with width (most do, in relative terms) does not blur
    the comparison. Increments are relative (of the log time)."""
    if _flat(at, z, rel_tol):
        return _Evidence([], [], flat=True)
    inc: dict[int, tuple[float, float]] = {}  # j -> increment from j*step to (j+1)*step, its error
    for j in range(1, full // step):
        lo, hi = j * step, (j + 1) * step
        if lo in at and hi in at and at[lo][0] > 0 and at[hi][0] > 0:
            inc[j] = (math.log(at[hi][0] / at[lo][0]), math.hypot(at[hi][1] / at[hi][0], at[lo][1] / at[lo][0]))
    if not inc:
        return _Evidence([], [], measured=False)
    gaps, excess = [], []
    for j in (j for j in inc if j % 2):
        neighbours = [inc[k] for k in (j - 1, j + 1) if k in inc]
        if not neighbours:
            continue
        d, e = inc[j]
        a = statistics.fmean(n[0] for n in neighbours)
        err = math.hypot(e, math.sqrt(statistics.fmean(n[1] ** 2 for n in neighbours) / len(neighbours)))
        gaps.append((a - d, err))
        excess.append((d - INSIDE_SHARE * max(a, 0.0) - rel_tol / 2, err))
    return _Evidence(gaps, excess)


def _verdict(evidence: Sequence[_Evidence], z: float) -> str:
    """Whether the step doubles, from one curve's evidence or the pooled evidence of many:
    ``STAYS`` when the rise inside the candidate steps is clearly more than a quarter of its
    neighbours' (``INSIDE_SHARE``; and ``rel_tol / 2``), ``DOUBLES`` when the rise across
    clearly exceeds the rise inside (or every curve is flat, or none was measured at this
    step: the lattice is coarser), ``UNCLEAR`` otherwise (a weak structure, or too much
    noise to see one)."""
    gaps = [g for ev in evidence for g in ev.gaps]
    excess = [x for ev in evidence for x in ev.excess]
    if not gaps:
        return DOUBLES if all(ev.flat or not ev.measured for ev in evidence) else STAYS
    # the gaps are the steps themselves, rare and large on a fine lattice: all of them count,
    # with the points' own errors (their scatter is the signal); the excess should be alike
    # everywhere if the step stays, so a few outliers are trimmed and its scatter counts
    g_mean = statistics.fmean(g for g, _ in gaps)
    g_se = math.sqrt(sum(e * e for _, e in gaps)) / len(gaps)
    h_mean, h_se = _trimmed(excess)
    if h_mean - z * h_se > 0:
        return STAYS
    if g_mean - z * g_se > 0:
        return DOUBLES
    return UNCLEAR


def read_steps(
    widths: Sequence[int],
    times: Sequence[float],
    stderrs: Sequence[float] | None = None,
    lattice: int = 1,
    prior_step: int | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
    z: float = DEFAULT_Z,
) -> Steps:
    """Read one curve (medians ``times`` and their standard errors at ``widths``) swept on a
    ``lattice`` (the sweep's grid): see the module docstring. ``prior_step``, the network's
    step (``network_step``), settles a test the curve leaves unclear."""
    c = _Prepared.of(widths, times, stderrs, lattice, z)
    w, t, se, idx, full, spikes, lattice = c.widths, c.times, c.stderrs, c.index, c.full, c.spikes, c.lattice
    uncertain: set[int] = c.spikes | c.dips  # measured again: real, or a disturbance?
    if _flat(c.at, z, rel_tol):  # the width buys no time: one plateau, the widest width is the one to use
        return Steps([full], full, lattice, sorted(spikes), sorted(uncertain), clear=False)

    step, clear = lattice, True
    while 2 * step <= full:
        verdict = _verdict([_evidence(step, c.at, full, z, rel_tol)], z)
        if verdict == UNCLEAR:
            # the network's step decides; without one, more samples of the test's lattice
            # sharpen its averages
            clear = False
            if not prior_step:
                uncertain.update(x for x in c.at if x % step == 0)
            verdict = DOUBLES if prior_step and prior_step > step else STAYS
        if verdict != DOUBLES:
            break
        step *= 2

    def cheaper_by(a: int, b: int) -> float:
        """How many thresholds ``a`` is cheaper than the wider ``b`` by (over 1: clearly)."""
        ia, ib = idx[a], idx[b]
        need = max(z * math.hypot(se[ia], se[ib]), rel_tol * t[ib])
        return (t[ib] - t[ia]) / need if need > 0 else math.inf

    def matched_by(a: int, b: int) -> float:
        """How surely the wider ``b`` is at most ``rel_tol`` slower than ``a`` (1: at ``z``)."""
        ia, ib = idx[a], idx[b]
        room = rel_tol * t[ia] - (t[ib] - t[ia])
        noise = z * math.hypot(se[ia], se[ib])
        return room / noise if noise > 0 else (math.inf if room >= 0 else -math.inf)

    usable: list[int] = []
    for x in reversed(w):  # widest first: each width is judged against the wider usable ones
        if x in spikes or x < min(lattice, full):  # under the lattice: measured to price designs only
            continue
        if x % step == 0 or x == full:
            # a step's top: usable unless a wider usable width surely costs no more
            verdict, witness = max(((matched_by(x, v), v) for v in usable), default=(-math.inf, None))
            keep = verdict < 1
            near = 0.5 <= verdict < 1
        else:
            # off the step: usable only when clearly cheaper than every wider measured width;
            # off the lattice too, on more evidence (the kernels block channels on the lattice)
            need = 1.0 if x % lattice == 0 else OFF_LATTICE
            verdict, witness = min(((cheaper_by(x, v) / need, v) for v in w[idx[x] + 1:] if v not in spikes),
                                   default=(math.inf, None))
            keep = verdict > 1
            near = 0.5 <= verdict <= 2
        if near:  # the verdict hangs on this pair: both are measured again
            uncertain.update((x, witness))
        if keep:
            usable.append(x)
    return Steps(sorted(usable), step, lattice, sorted(spikes), sorted(uncertain), clear)


def _outliers(points: list[int], t: list[float], se: list[float], idx: dict[int, int], z: float
              ) -> tuple[set[int], set[int]]:
    """Interior lattice widths clearly slower than both lattice neighbours (spikes), and
    clearly faster than both (dips: a real fast kernel, or a measurement the machine sped
    up; measured again before they decide their neighbours)."""
    spikes, dips = set(), set()
    for a, b, c in zip(points, points[1:], points[2:], strict=False):
        ia, ib, ic = idx[a], idx[b], idx[c]
        higher = max((t[ia], se[ia]), (t[ic], se[ic]))
        lower = min((t[ia], se[ia]), (t[ic], se[ic]))
        if t[ib] - higher[0] > max(z * math.hypot(se[ib], higher[1]), SPIKE_REL * t[ib]):
            spikes.add(b)
        if lower[0] - t[ib] > max(z * math.hypot(se[ib], lower[1]), SPIKE_REL * t[ib]):
            dips.add(b)
    return spikes, dips


@dataclass(frozen=True)
class _Prepared:
    """A curve sorted by width, its standard errors floored, and its lattice points without
    the spikes (``at``: width -> (median, standard error))."""

    widths: list[int]
    times: list[float]
    stderrs: list[float]
    index: dict[int, int]
    lattice: int
    at: dict[int, tuple[float, float]]
    spikes: set[int]
    dips: set[int]

    @property
    def full(self) -> int:
        return self.widths[-1]

    @classmethod
    def of(cls, widths: Sequence[int], times: Sequence[float], stderrs: Sequence[float] | None, lattice: int,
           z: float) -> _Prepared:
        if not widths:
            raise StaircaseError("a curve with no measured widths")
        order = sorted(range(len(widths)), key=lambda i: widths[i])
        w = [int(widths[i]) for i in order]
        t = [float(times[i]) for i in order]
        se = _floored_stderrs(t, [float(stderrs[i]) for i in order] if stderrs is not None else [0.0] * len(w))
        lattice = max(1, int(lattice))
        idx = {x: i for i, x in enumerate(w)}
        on_lattice = [x for x in w if x % lattice == 0 or x == w[-1]]
        spikes, dips = _outliers(on_lattice, t, se, idx, z)
        at = {x: (t[idx[x]], se[idx[x]]) for x in on_lattice if x not in spikes}
        return cls(w, t, se, idx, lattice, at, spikes, dips)


def network_step(curves: Sequence[tuple[Sequence[int], Sequence[float], Sequence[float] | None]], lattice: int = 1,
                 rel_tol: float = DEFAULT_REL_TOL, z: float = DEFAULT_Z) -> int | None:
    """The step a network's slots share: the step test of ``read_steps`` on the evidence of
    all its curves (``(widths, medians, standard errors)``, one per distinct curve) pooled,
    so that a dozen slots decide where one alone cannot. None without curves."""
    prepared = [_Prepared.of(w, t, se, lattice, z) for w, t, se in curves if len(w)]
    if not prepared:
        return None
    step = max(1, int(lattice))
    while any(2 * step <= c.full for c in prepared):
        evidence = [_evidence(step, c.at, c.full, z, rel_tol) for c in prepared if 2 * step <= c.full]
        if _verdict(evidence, z) != DOUBLES:
            break
        step *= 2
    return step


def snap(width: int, points: Sequence[int], mode: str = "nearest") -> int:
    """Move ``width`` to a usable width: ``nearest`` (ties go up), ``up`` (more channels,
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
    """The typical distance between consecutive usable widths (their median gap)."""
    gaps = sorted(b - a for a, b in zip(points, points[1:], strict=False))
    return gaps[len(gaps) // 2] if gaps else None
