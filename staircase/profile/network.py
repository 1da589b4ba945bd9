"""Whole-network latency: predicted from a profile, or measured end to end on a backend.

Prediction = the full network's measured time
           + scale x (for every layer a slot touches, its time at the new widths minus its
                      time at full width, from the op curves)
           + misalignment x (the time of the layers of slots whose width is not a multiple
                             of the calibration's alignment, at that width),
with scale, misalignment and the alignment fitted on a few whole students when the profile
was made (see ``sweep._calibrate``). Working in differences cancels the per-call overhead
that one-op graphs pay and a whole network does not; a layer touched by two slots (its
inputs and its outputs) adds both differences.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from ..errors import SpecError
from .backends import Backend
from .staircase import snap
from .store import Profile
from .timing import Measurement, TimingProtocol

__all__ = ["Prediction", "predict", "slot_cost", "snap_slot", "slot_delta", "raw_delta", "calibration_scale", "misaligned_ms",
           "vector_block", "measure_network", "Relative", "time_relative"]


@dataclass(frozen=True)
class Prediction:
    median_ms: float
    spread_ms: float
    full_ms: float


def predict(profile: Profile, network: str, widths: Mapping[str, int]) -> Prediction:
    """Predicted latency of ``network`` (a key of ``profile.networks``) with ``widths``."""
    entry = profile.network(network)
    if "full" not in entry:
        raise SpecError(f"profile {profile.path} has not finished {network} (no full-network time yet); "
                        "rerun `staircase profile` to complete it")
    slots = entry["slots"]
    missing = sorted(n for n, w in widths.items() if n not in slots)
    if missing:
        raise SpecError(f"profile {profile.path} lacks slot(s) {missing[:4]} of {network}"
                        f"{' (and more)' if len(missing) > 4 else ''}; profile them with `staircase profile --all`")
    calibration = _calibration(profile, network)
    scale = calibration[0]
    total = entry["full"]["median_ms"]
    var = entry["full"]["spread_ms"] ** 2
    for name, width in widths.items():
        delta, spread = slot_delta(profile, network, name, width)
        total += _calibrated(profile, network, name, width, delta, calibration)
        var += (scale * spread) ** 2
    return Prediction(total, math.sqrt(var), entry["full"]["median_ms"])


def slot_cost(profile: Profile, network: str, slot: str, width: int) -> float:
    """What ``slot`` at ``width`` adds to the full network's predicted time, calibrated: the
    terms of the prediction are per slot, so a design can add them up slot by slot."""
    return _calibrated(profile, network, slot, width, slot_delta(profile, network, slot, width)[0],
                       _calibration(profile, network))


UP_REL_TOL = 0.01  # "no more time" for snapping up: at most 1% of the slot's own time more


def snap_slot(profile: Profile, network: str, slot: str, width: int, mode: str = "nearest") -> int:
    """``width`` of ``slot`` moved to the staircase.

    ``nearest`` and ``down`` go to the nearest (the paper) or next narrower optimal width.
    ``up`` promises more channels for no more time, so it is judged by the slot's measured
    curve, not by the next point alone: the widest optimal width at or above ``width``
    whose time is no more than ``width``'s, within the noise of the two points and at most
    1% of the slot's time. Where the curve is a slope rather than a step, every wider point
    is slower and the width stays where it is. (The prediction's misalignment term is left
    out here, slot by slot: what aligned widths save is spent for the whole network, by
    ``Designer.snapped``.)
    """
    curve = profile.slot_curve(network, slot)
    points = curve.optimal()
    if mode != "up":
        return snap(width, points, mode)  # which names an unknown mode

    def stderr(w: int) -> float:
        return curve.stderr_ms[curve.index(w)] if curve.stderr_ms is not None else 0.0

    here = curve.at(width)
    best = width
    for p in points:
        if p > width:
            allowed = min(2 * math.hypot(stderr(width), stderr(p)), UP_REL_TOL * here)
            if curve.at(p) - here <= allowed:
                best = p
    return best


def calibration_scale(profile: Profile, network: str) -> float:
    """How much of the summed op differences whole networks show (1 before calibration)."""
    return _calibration(profile, network)[0]


def _calibration(profile: Profile, network: str) -> tuple[float, float, int | None]:
    """(scale, misalignment cost, block) of the profile's calibration; (1, 0, None) without one."""
    calibration = profile.network(network).get("calibration", {})
    return (float(calibration.get("scale", 1.0)), float(calibration.get("misalignment", 0.0)),
            calibration.get("block"))


def _calibrated(profile: Profile, network: str, slot: str, width: int, delta: float,
                calibration: tuple[float, float, int | None]) -> float:
    scale, misalignment, block = calibration
    cost = scale * delta
    if misalignment:
        cost += misalignment * misaligned_ms(profile, network, {slot: width}, block)
    return cost


def vector_block(profile: Profile, network: str) -> int | None:
    """The op curves' step as the profile saw it: the median step of the slots' staircases
    (None when no slot shows a step); the calibration tries it and its halves as the
    alignment whole networks need."""
    from .staircase import step_size

    steps = sorted(s for s in (step_size(profile.slot_curve(network, n).optimal())
                               for n in profile.network(network)["slots"]) if s)
    return steps[len(steps) // 2] if steps else None


def misaligned_ms(profile: Profile, network: str, widths: Mapping[str, int], block: int | None) -> float:
    """The time of the layers of every slot whose width is off the block (not a multiple of
    ``block``, and not its full width), at that width: what the layout conversions cost
    scales with. (Pricing a slot at its full-width time fitted worse, and overstated narrow
    widths most: see ``scripts/study_alignment.py``.)"""
    if not block:
        return 0.0
    slots = profile.network(network)["slots"]
    total = 0.0
    for name, width in widths.items():
        if width != slots[name]["width"] and width % block:
            total += sum(profile.curve(key).at(width) for key in slots[name]["layers"].values())
    return total


def raw_delta(profile: Profile, network: str, widths: Mapping[str, int]) -> float:
    """The summed op differences for ``widths``, before calibration."""
    return sum(slot_delta(profile, network, n, w)[0] for n, w in widths.items())


def slot_delta(profile: Profile, network: str, slot: str, width: int) -> tuple[float, float]:
    """What slot ``slot`` at ``width`` adds to the full network's time (<= 0 mostly), and the
    spread of that estimate. Slots add up: each layer's difference is its own."""
    info = profile.network(network)["slots"][slot]
    full = info["width"]
    if width == full:
        return 0.0, 0.0
    if not 1 <= width <= full:
        raise SpecError(f"slot {slot!r}: width {width} outside 1..{full}")
    delta, var = 0.0, 0.0
    for key in info["layers"].values():
        curve = profile.curve(key)
        delta += curve.at(width) - curve.at(full)
        var += curve.spread_ms[curve.index(width)] ** 2
    return delta, math.sqrt(var)


@dataclass(frozen=True)
class Relative:
    """A network timed beside a reference: the median of the paired measurements' ratios (a
    disturbed measurement moves one of them, not the verdict), each side's median ms in the
    paired configuration, and the student's measurements themselves."""

    ratio: float
    run_ms: float
    reference_ms: float
    runs: list[Measurement]


def time_relative(backend: Backend, run: Callable[[], object], reference: Callable[[], object], pairs: int = 2,
                  protocol: TimingProtocol | None = None) -> Relative:
    """``run`` against ``reference``, both prepared with ``paired=True``: ``pairs`` times,
    block by block (a block of one, then a block of the other, and so on, as ops are timed
    beside their full width), so drift on any time scale longer than a block cancels in
    each ratio.

    This replaced timing the two in turn, a whole measurement each (run, reference,
    reference, run, ...), which only cancels drift that is linear over seconds: on this
    project's 2-core machine that scattered several times more between repeats (the
    README's prediction section has the figures; ``scripts/bench_profiler.py`` part 3
    reports how far the two rulers' ratios differ).
    """
    from .sweep import FULL_NETWORK_PROTOCOL

    runs = [backend.time(run, protocol or FULL_NETWORK_PROTOCOL, reference=reference) for _ in range(pairs)]
    return Relative(statistics.median(m.ratio for m in runs), statistics.median(m.median_ms for m in runs),
                    statistics.median(m.ref_ms for m in runs), runs)


def measure_network(backend: Backend, model: nn.Module, input_size, protocol: TimingProtocol | None = None) -> Measurement:
    """Time the whole network end to end on ``backend`` (median of blocks, IQR spread)."""
    from .sweep import FULL_NETWORK_PROTOCOL

    return backend.time(backend.prepare_model(model, tuple(input_size)), protocol or FULL_NETWORK_PROTOCOL)
