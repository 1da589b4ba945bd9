"""Choosing a student's widths from a device profile: snap given widths to the staircase,
or pick the widths that keep the most saliency under a latency target.

The target-latency design is a multiple-choice knapsack (``knapsack.solve``): each slot
picks one of its optimal widths; its cost is the latency that width adds to the full
network (``LatencyModel.slot_cost``, calibrated and additive across slots) and its value
the saliency its kept channels carry (Fisher, L1), or the parameters it keeps when no
saliency is given. Everything here is decided from the profile alone; measuring the result
end to end, and redesigning on a miss, is ``design.measured``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from ..errors import StaircaseError
from ..modelref import ResolvedModel
from ..profile.prediction import LatencyModel
from ..profile.store import Profile, network_key
from ..slots import SlotGraph
from ..spec import Provenance, StudentSpec
from .knapsack import Choice, min_cost, solve

__all__ = ["SNAP_MODES", "Designer", "Saliency"]

# nearest/down/up move each slot to its own staircase; fill is up for the whole network
SNAP_MODES = ("nearest", "up", "down", "fill")


class Saliency:
    """Per-slot channel saliencies (any order); the value of keeping ``w`` channels of a
    slot is the sum of its ``w`` largest. Without scores, every channel counts as the
    parameters it carries."""

    def __init__(self, scores: Mapping[str, Sequence[float]]):
        self.prefix: dict[str, list[float]] = {}
        for name, values in scores.items():
            acc, sums = 0.0, [0.0]
            for v in sorted((float(x) for x in values), reverse=True):
                acc += v
                sums.append(acc)
            self.prefix[name] = sums

    def kept(self, slot: str, width: int) -> float:
        sums = self.prefix[slot]
        return sums[min(width, len(sums) - 1)]

    def total(self, widths: Mapping[str, int]) -> float:
        return sum(self.kept(n, w) for n, w in widths.items() if n in self.prefix)

    def full(self) -> float:
        return sum(s[-1] for s in self.prefix.values())

    @classmethod
    def from_parameters(cls, graph: SlotGraph, names: Sequence[str]) -> Saliency:
        """Each channel scored by the weights that depend on it (producer row, norm, consumer column)."""
        scores = {}
        for name in names:
            slot = graph[name]
            per_channel = 0
            for member in slot.members:
                module = graph.model.get_submodule(member.module)
                weight = getattr(module, "weight", None)
                if weight is None:
                    continue
                if member.role in ("producer", "depthwise"):
                    per_channel += weight[0].numel() + (1 if getattr(module, "bias", None) is not None else 0)
                elif member.role == "norm":
                    per_channel += 2
                elif member.role == "consumer":
                    per_channel += weight.numel() // weight.shape[1]
            scores[name] = [float(per_channel)] * slot.width
        return cls(scores)


class Designer:
    """The widths of students of one network, chosen on one profile's staircases."""

    def __init__(self, profile: Profile, resolved: ResolvedModel, min_width: int | None = None):
        """``min_width``: no slot is designed narrower (nor wider than its own width); by
        default the network's step in the profile (1 when it found none). A one-channel
        bottleneck is legal but rarely what a user wants."""
        self.profile = profile
        self.resolved = resolved
        self.arch = resolved.architecture
        self.network = network_key(self.arch.name, self.arch.input_size)
        self.latency = LatencyModel(profile, self.network)
        self.teacher_ms = self.latency.teacher_ms  # raises when the profile has not finished the network
        self.slots = list(self.latency.slots)
        self.graph = SlotGraph(resolved.model, self.arch.input_size)
        if min_width is not None and min_width < 1:
            raise StaircaseError(f"--min-width {min_width} must be at least 1")
        floor = min_width if min_width is not None else (profile.network_step(self.network) or 1)
        self.min_widths = {n: min(full, floor) for n, full in self.latency.slots.items()}
        self.optimal = {n: [w for w in self.latency.optimal(n) if w >= self.min_widths[n]] or [full]
                        for n, full in self.latency.slots.items()}

    def _at_least_min(self, slot: str, width: int) -> int:
        return width if width >= self.min_widths[slot] else self.optimal[slot][0]

    def at_minimum(self, widths: Mapping[str, int]) -> list[str]:
        """The slots of ``widths`` held at the minimum width (below their own width)."""
        return [n for n, w in widths.items() if n in self.min_widths and w <= self.min_widths[n] < self.latency.slots[n]]

    # -- widths ------------------------------------------------------------------------------

    def snapped(self, widths: Mapping[str, int], mode: str = "nearest",
                saliency: Saliency | None = None) -> dict[str, int]:
        """Each profiled slot's width moved to the staircase: ``nearest`` (the paper), ``down``
        or ``up`` slot by slot; ``fill`` for the whole network (see ``_filled_up``)."""
        if mode not in SNAP_MODES:
            raise StaircaseError(f"snap mode {mode!r} is not one of {', '.join(SNAP_MODES)}")
        self.check_slots(widths)
        each = {n: self._at_least_min(n, self.latency.snap(n, w, "up" if mode == "fill" else mode))
                if n in self.optimal else w for n, w in widths.items()}
        if mode != "fill":
            return each
        return self._filled_up(widths, each, saliency or Saliency.from_parameters(self.graph, self.slots))

    def _filled_up(self, given: Mapping[str, int], each: Mapping[str, int], saliency: Saliency) -> dict[str, int]:
        """``fill``: more channels for no more time, judged for the whole network.

        Slot by slot, a width goes to the top of its step (``up``: no more time on the slot's
        measured curve). That alone leaves time on the table: a width off the alignment whole
        networks need costs its neighbours layout conversions, which the calibration prices,
        and the aligned widths save them. So the saved time is spent: each slot picks its
        stepped-up width or a wider optimal one, keeping the most saliency (parameters when
        no scores are given) for no more predicted time than ``given``, or than the
        stepped-up widths where their noise allowance made them dearer (the multiple-choice
        knapsack of ``for_target``)."""
        profiled = [n for n in given if n in self.optimal]
        choices = self.choices(saliency, {n: sorted({each[n], *(p for p in self.optimal[n] if p > each[n])})
                                          for n in profiled})
        budget = max(sum(self.latency.slot_cost(n, widths[n]) for n in profiled) for widths in (given, each))
        chosen = solve(choices, budget).widths
        return {n: chosen.get(n, w) for n, w in each.items()}

    def predicted(self, widths: Mapping[str, int]) -> float:
        return self.latency.predicted_ms(widths)

    def smallest_ms(self) -> float:
        """The fastest predicted network on optimal widths (what the knapsacks reach)."""
        return self.teacher_ms + min_cost(self.choices(Saliency({n: [] for n in self.slots})))

    def smallest_proportional_ms(self) -> float:
        """The fastest predicted network in the teacher's proportions (``proportional(0)``)."""
        return self.predicted(self.proportional(0.0))

    def for_target(self, target_ms: float, saliency: Saliency) -> dict[str, int]:
        """Optimal widths keeping the most saliency with predicted latency <= ``target_ms``."""
        choices = self.choices(saliency)
        self._check_reachable(target_ms, self.teacher_ms + min_cost(choices))
        return solve(choices, target_ms - self.teacher_ms).widths

    def _check_reachable(self, target_ms: float, lowest_ms: float) -> None:
        if target_ms < lowest_ms:
            raise StaircaseError(
                f"target {target_ms:.3f} ms is below the smallest latency reachable on this profile's steps: "
                f"{lowest_ms:.3f} ms predicted for {self.network}; ask for at least that")

    def proportional(self, t: float) -> dict[str, int]:
        """Every slot at share ``t`` of its width (at least its minimum width), then up to the
        top of that step, the narrowest optimal width at or above it: at least uniform
        scaling's channels, every slot on the staircase (never a misaligned width where the
        curve is a slope)."""
        return {n: next((w for w in self.optimal[n] if w >= round(t * full)), self.optimal[n][-1])
                for n, full in self.latency.slots.items()}

    def proportional_for(self, target_ms: float) -> dict[str, int]:
        """The widest ``proportional`` widths predicted at or under ``target_ms``, then
        ``filled`` up to it: one factor for every slot leaves up to a step of the widest
        slots' time unused."""
        from .baselines import widest_under

        self._check_reachable(target_ms, self.smallest_proportional_ms())
        return self.filled(self.proportional(widest_under(self.proportional, self.predicted, target_ms)), target_ms)

    def filled(self, widths: Mapping[str, int], budget_ms: float) -> dict[str, int]:
        """``widths`` grown along the slots' usable widths while the prediction stays within
        ``budget_ms``: each time the slot furthest below the teacher's proportions (the
        smallest share of its width) whose next usable width still fits moves up to it."""
        grown = dict(widths)
        full = self.latency.slots
        total = self.predicted(grown)
        while True:
            for name in sorted(self.optimal, key=lambda n: (grown[n] / full[n], n)):
                step_up = next((w for w in self.optimal[name] if w > grown[name]), None)
                if step_up is None:
                    continue
                extra = self.latency.slot_cost(name, step_up) - self.latency.slot_cost(name, grown[name])
                if total + extra <= budget_ms:
                    grown[name], total = step_up, total + extra
                    break
            else:
                return grown

    def choices(self, saliency: Saliency, widths: Mapping[str, Sequence[int]] | None = None
                ) -> dict[str, list[Choice]]:
        """Each slot's candidate widths (its optimal ones unless ``widths`` names them) with
        the latency they add and the saliency they keep."""
        options = self.optimal if widths is None else widths
        return {n: [Choice(w, self.latency.slot_cost(n, w),
                           saliency.kept(n, w) if n in saliency.prefix else 0.0) for w in options[n]]
                for n in options}

    def check_slots(self, widths: Mapping[str, int]) -> None:
        """Refuse widths that name slots the network does not have (a file for another model)."""
        unknown = sorted(set(widths) - {s.name for s in self.graph.slots})
        if unknown:
            raise StaircaseError(f"widths name slot(s) {unknown[:4]} that {self.arch.name} does not have; "
                                 "were they written for another model?")

    def spec(self, widths: Mapping[str, int], name: str, method: str, saliency: Saliency | None = None,
             notes: dict | None = None) -> tuple[StudentSpec, nn.Module, float | None]:
        """The student spec for ``widths`` (with its predicted latency), its network, and the
        share of the teacher's saliency it keeps (None without scores)."""
        predicted = self.predicted(widths)
        retained = saliency.total(widths) / saliency.full() if saliency is not None and saliency.full() > 0 else None
        prov = Provenance(method=method, profile=str(self.profile.path), backend=self.profile.fingerprint["backend"],
                          predicted_ms=predicted, retained_saliency=retained, notes=dict(notes or {}))
        spec, model = StudentSpec.create(self.arch, dict(widths), name, prov)
        return spec, model, retained
