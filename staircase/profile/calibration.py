"""Fitting the prediction to whole networks: a few students timed end to end beside the
full network, and the fit of ``scale`` and ``misalignment`` (see ``profile.prediction``).

One-op graphs see each width change in isolation, so their differences miss what the
change does to its neighbours. The largest such effect is memory layout: runtimes keep
activations in blocked layouts (ONNX Runtime's NCHWc) only where channel counts are
aligned, and a slot off the alignment converts layouts on its way in and out, which a lone
op does not show. Which alignment a whole network needs is not the op curves' step size: on
this project's CPU the ops step every 16 channels, but whole networks pay only for widths
off a multiple of 4. So a few students are timed end to end, block by block beside the full
network (``time_relative``: drift cancels; the median of ``CALIBRATION_PAIRS`` such ratios
counts, so one disturbed measurement does not): half with random widths, the others with
random multiples of the step size, of half of it and of a quarter of it; every other round
of these narrow. (The random ones pin the misalignment cost down: refitted on draws of 12 of
the 48 students of ``scripts/study_alignment.py``, it ranged 0.191-0.330 (10th-90th
percentile) with a quarter of them random and 0.209-0.295 with half.) For each candidate
alignment (the step size, halved down to 2) two coefficients are fitted by least squares
through the origin:

    measured difference = scale * summed op differences + misalignment * misaligned ms

where ``misaligned ms`` is the time of the layers of slots whose width is off the
alignment, at that width; the coarsest alignment that fits as well as any (within
``ALIGNMENT_RESIDUAL_TIE``) is kept. Measured differences are taken as ratios to the full
network measured alongside, times the profile's full-network time (taken as deployed,
threads spinning): drift since the sweep cancels.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from torch import nn

from ..slots import make_student
from .backends import Backend
from .prediction import LatencyModel
from .store import Calibration, Profile
from .timing import TimingProtocol, time_relative

__all__ = ["ALIGNMENT_RESIDUAL_TIE", "CALIBRATION_PAIRS", "CALIBRATION_VERSION", "calibrate", "candidate_alignments",
           "disturbed_whole_network", "fit_best_alignment", "fit_calibration"]

# A calibration of another version is redone when the profile is rerun.
CALIBRATION_VERSION = 7
CALIBRATION_PAIRS = 4
ALIGNMENT_RESIDUAL_TIE = 0.05  # ResNet-34's calibration once fitted 4 and 2 to within 1% and kept 2


def calibrate(profile: Profile, network: str, backend: Backend, model: nn.Module, size, count: int, seed: int,
              protocol: TimingProtocol, log: Callable[[str], None]) -> Calibration:
    """Time ``count`` students of ``model`` beside it and fit the calibration (module docstring)."""
    latency = LatencyModel(profile, network)
    slots = latency.slots
    teacher_ms = latency.teacher_ms
    alignments = candidate_alignments(latency.network_step())
    kinds = [kind for a in alignments[:3] for kind in (None, a)] or [None]
    rng = random.Random(seed + 7919)
    full_run = backend.prepare_model(model, size, paired=True)
    log(f"calibrating the prediction on {count} students (widths random or on multiples of "
        f"{', '.join(map(str, alignments[:3])) or '-'})")
    points = []
    for i in range(count):
        # every other round of kinds narrow (5-40% of each slot), else 25-100%: narrow
        # students are what low latency targets design
        low, high = (0.05, 0.4) if (i // len(kinds)) % 2 else (0.25, 1.0)
        widths = {n: rng.randint(max(1, round(low * full)), max(1, round(high * full))) for n, full in slots.items()}
        align = kinds[i % len(kinds)]
        if align:
            widths = {n: min(slots[n], max(align, align * round(w / align))) for n, w in widths.items()}
        run = backend.prepare_model(make_student(model, widths, size), size, paired=True)
        ratio = time_relative(backend, run, full_run, pairs=CALIBRATION_PAIRS, protocol=protocol).ratio
        points.append({"widths": widths, "aligned_to": align, "predicted_delta_ms": latency.raw_delta(widths),
                       "measured_delta_ms": (ratio - 1) * teacher_ms})
    alignment, scale, misalignment, residuals = fit_best_alignment(points, alignments, latency.misaligned_ms)
    return Calibration(CALIBRATION_VERSION, scale, misalignment, alignment, residuals, points)


def fit_best_alignment(points: list[dict], alignments: list[int], misaligned: Callable[[dict, int | None], float]
                       ) -> tuple[int | None, float, float, dict[str, float]]:
    """Fit (scale, misalignment) for each candidate alignment (``misaligned(widths, alignment)``
    gives a student's misaligned ms) and keep the coarsest whose squared residual is within
    ``ALIGNMENT_RESIDUAL_TIE`` of the least: a dozen noisy students cannot tell two alignments
    apart by less, and the coarser one is the safe one for designs (widths aligned to it are
    aligned to the finer too). Sets each point's ``misaligned_ms`` for the kept alignment
    and returns (alignment, scale, misalignment, residual by alignment)."""
    fits, priced = {}, {}
    for alignment in alignments or [None]:
        priced[alignment] = [{**p, "misaligned_ms": misaligned(p["widths"], alignment)} for p in points]
        scale, misalignment = fit_calibration(priced[alignment])
        fits[alignment] = (scale, misalignment, residual(priced[alignment], scale, misalignment))
    least = min(fit[2] for fit in fits.values())
    kept = next(a for a in fits if fits[a][2] <= least * (1 + ALIGNMENT_RESIDUAL_TIE))  # coarsest first
    for point, priced_point in zip(points, priced[kept], strict=True):
        point["misaligned_ms"] = priced_point["misaligned_ms"]
    return kept, fits[kept][0], fits[kept][1], {str(a): fits[a][2] for a in fits if a}


def candidate_alignments(step: int | None) -> list[int]:
    """Alignments a whole network may need, coarsest first: the op curves' step size at the
    nearest power of two (kernels block channels in powers of two: a step of 15 is a noisy
    16), halved down to 2."""
    alignments = []
    power = 1 << round(math.log2(step)) if step else 0
    while power >= 2:
        alignments.append(power)
        power //= 2
    return alignments


def residual(points: list[dict], scale: float, misalignment: float) -> float:
    """Sum of squared differences between the fitted and the measured differences (ms^2)."""
    return sum((scale * p["predicted_delta_ms"] + misalignment * p["misaligned_ms"] - p["measured_delta_ms"]) ** 2
               for p in points)


def fit_calibration(points: list[dict]) -> tuple[float, float]:
    """Least squares through the origin for (scale, misalignment); misalignment is a cost, so
    never negative (then the scale alone is fitted); the scale is clamped to 0.2..3."""
    xs = [(p["predicted_delta_ms"], p["misaligned_ms"]) for p in points]
    ys = [p["measured_delta_ms"] for p in points]
    s_aa = sum(a * a for a, _ in xs)
    s_bb = sum(b * b for _, b in xs)
    s_ab = sum(a * b for a, b in xs)
    s_ay = sum(a * y for (a, _), y in zip(xs, ys, strict=True))
    s_by = sum(b * y for (_, b), y in zip(xs, ys, strict=True))
    det = s_aa * s_bb - s_ab * s_ab
    scale, misalignment = 1.0, 0.0
    if det > 1e-12 * max(s_aa * s_bb, 1e-300):
        scale, misalignment = (s_ay * s_bb - s_by * s_ab) / det, (s_aa * s_by - s_ab * s_ay) / det
    if misalignment <= 0 or not det:
        misalignment = 0.0
        scale = s_ay / s_aa if s_aa > 0 else 1.0
    return min(max(scale, 0.2), 3.0), misalignment


def disturbed_whole_network(profile: Profile, network: str) -> str | None:
    """Why the profile's whole-network timings (the full network, the calibration students)
    may be off, or None: the full network's time stayed noisy, so the machine was disturbed
    while they were taken and the calibration is worth redoing when it is quiet."""
    full = profile.network(network).full
    if full is None or not full.noisy:
        return None
    return (f"the full network's time stayed noisy (spread {full.spread_ms:.3g} ms on {full.median_ms:.3g} ms): "
            "the prediction's calibration was timed on a disturbed machine; when it is quiet, rerun "
            "`staircase profile` with --recalibrate (the op measurements are kept)")
