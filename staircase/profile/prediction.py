"""Whole-network latency predicted from a profile.

Prediction = the full network's measured time
           + scale x (for every layer a slot touches, its time at the new widths minus its
                      time at full width, from the op curves)
           + misalignment x (the time of the layers of slots whose width is not a multiple
                             of the calibration's alignment, at that width),
with scale, misalignment and the alignment fitted on a few whole students when the profile
was made (see ``profile.calibration``). Working in differences cancels the per-call
overhead that one-op graphs pay and a whole network does not; a layer touched by two slots
(its inputs and its outputs) adds both differences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import SpecError
from .steps import snap
from .store import Calibration, Curve, NetworkEntry, Profile

__all__ = ["LatencyModel", "Prediction", "UP_REL_TOL"]

UP_REL_TOL = 0.01  # "no more time" for snapping up: at most 1% of the slot's own time more


@dataclass(frozen=True)
class Prediction:
    median_ms: float
    spread_ms: float
    teacher_ms: float


class LatencyModel:
    """One network of a profile, asked for latencies: what a width of a slot costs, what a
    set of widths predicts, and where a width snaps to on the slot's staircase."""

    def __init__(self, profile: Profile, network: str):
        self.profile = profile
        self.network = network
        self.entry: NetworkEntry = profile.network(network)

    @property
    def slots(self) -> dict[str, int]:
        """Each profiled slot's full width."""
        return {n: e.width for n, e in self.entry.slots.items()}

    @property
    def calibration(self) -> Calibration:
        """The profile's calibration; scale 1 and no misalignment cost before one was fitted."""
        return self.entry.calibration or Calibration()

    @property
    def teacher_ms(self) -> float:
        if self.entry.full is None:
            raise SpecError(f"profile {self.profile.path} has not finished {self.network} (no full-network time yet); "
                            "rerun `staircase profile` to complete it")
        return self.entry.full.median_ms

    def curve(self, slot: str) -> Curve:
        return self.profile.slot_curve(self.network, slot)

    def optimal(self, slot: str) -> list[int]:
        return self.curve(slot).optimal()

    def predict(self, widths: Mapping[str, int]) -> Prediction:
        """Predicted latency with ``widths`` (slots not named keep their full width)."""
        teacher_ms = self.teacher_ms
        missing = sorted(n for n in widths if n not in self.entry.slots)
        if missing:
            raise SpecError(f"profile {self.profile.path} lacks slot(s) {missing[:4]} of {self.network}"
                            f"{' (and more)' if len(missing) > 4 else ''}; profile them with `staircase profile --all`")
        scale = self.calibration.scale
        total, var = teacher_ms, self.entry.full.spread_ms ** 2
        for name, width in widths.items():
            delta, spread = self.slot_delta(name, width)
            total += self._calibrated(name, width, delta)
            var += (scale * spread) ** 2
        return Prediction(total, math.sqrt(var), teacher_ms)

    def predicted_ms(self, widths: Mapping[str, int]) -> float:
        """The prediction's median for the profiled slots among ``widths`` (others are ignored)."""
        return self.predict({n: w for n, w in widths.items() if n in self.entry.slots}).median_ms

    def slot_cost(self, slot: str, width: int) -> float:
        """What ``slot`` at ``width`` adds to the full network's predicted time, calibrated: the
        terms of the prediction are per slot, so a design can add them up slot by slot."""
        return self._calibrated(slot, width, self.slot_delta(slot, width)[0])

    def _calibrated(self, slot: str, width: int, delta: float) -> float:
        c = self.calibration
        cost = c.scale * delta
        if c.misalignment:
            cost += c.misalignment * self.misaligned_ms({slot: width}, c.alignment)
        return cost

    def slot_delta(self, slot: str, width: int) -> tuple[float, float]:
        """What ``slot`` at ``width`` adds to the full network's time before calibration (<= 0
        mostly), and the spread of that estimate. Slots add up: each layer's difference is its own."""
        info = self.entry.slots[slot]
        if width == info.width:
            return 0.0, 0.0
        if not 1 <= width <= info.width:
            raise SpecError(f"slot {slot!r}: width {width} outside 1..{info.width}")
        delta, var = 0.0, 0.0
        for key in info.layers.values():
            curve = self.profile.curve(key)
            delta += curve.at(width) - curve.at(info.width)
            var += curve.spread_ms[curve.index(width)] ** 2
        return delta, math.sqrt(var)

    def channel_cost(self, slot: str, width: int, span: int = 8) -> float:
        """What one channel of ``slot`` costs around ``width``: the slot's time saved over the
        last ``span`` channels, per channel (1 for slots the profile lacks, as for width 1).
        Latency-aware pruning ranks channels by saliency per this cost."""
        if slot not in self.entry.slots or width <= 1:
            return 1.0
        lower = max(1, width - span)
        return max(self.slot_delta(slot, width)[0] - self.slot_delta(slot, lower)[0], 0.0) / (width - lower)

    def raw_delta(self, widths: Mapping[str, int]) -> float:
        """The summed op differences for ``widths``, before calibration."""
        return sum(self.slot_delta(n, w)[0] for n, w in widths.items())

    def misaligned_ms(self, widths: Mapping[str, int], alignment: int | None) -> float:
        """The time of the layers of every slot whose width is off the alignment (not a multiple
        of ``alignment``, and not its full width), at that width: what the layout conversions
        cost scales with. (Pricing a slot at its full-width time fitted worse, and overstated
        narrow widths most: see ``scripts/study_alignment.py``.)"""
        if not alignment:
            return 0.0
        total = 0.0
        for name, width in widths.items():
            info = self.entry.slots[name]
            if width != info.width and width % alignment:
                total += sum(self.profile.curve(key).at(width) for key in info.layers.values())
        return total

    def flat_slots(self) -> list[str]:
        """Slots whose curve did not fall with width beyond the noise (only the full width
        is usable): their width buys no time, or the profile was too noisy to see how."""
        return [n for n in self.entry.slots if self.optimal(n) == [self.entry.slots[n].width]]

    def few_steps(self) -> str | None:
        """Why designing on this profile is unwise, or None: more than half its slots are
        flat, which a real device rarely shows; says what to run instead."""
        flat = self.flat_slots()
        if 2 * len(flat) <= len(self.entry.slots):
            return None
        return (f"profile {self.profile.path} found a time that falls with width in only "
                f"{len(self.entry.slots) - len(flat)} of {len(self.entry.slots)} slots of {self.network}: too noisy "
                "to design on; profile again on a quiet machine with --timing careful")

    def network_step(self) -> int | None:
        """The network's step (its slots' step tests pooled; None before any slot is measured):
        the calibration tries it and its halves as the alignment whole networks need."""
        return self.profile.network_step(self.network)

    def snap(self, slot: str, width: int, mode: str = "nearest") -> int:
        """``width`` of ``slot`` moved to the staircase.

        ``nearest`` and ``down`` go to the nearest (the paper) or next narrower optimal width.
        ``up`` promises more channels for no more time, so it is judged by the slot's measured
        curve, not by the next point alone: the widest optimal width at or above ``width``
        whose time is no more than ``width``'s, within the noise of the two points and at most
        1% of the slot's time. Where the curve is a slope rather than a step, every wider point
        is slower and the width stays where it is. (The misalignment term is left out here,
        slot by slot: what aligned widths save is spent for the whole network, by the
        designer's ``fill`` mode.)
        """
        curve = self.curve(slot)
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
