"""Designing students from a device profile: snap widths to the staircase, or pick the
widths that keep the most saliency under a latency target, then measure the result.

The target-latency design is a multiple-choice knapsack (``knapsack.solve``): each slot
picks one of its optimal widths; its cost is the latency that width adds to the full
network (``profile.network.slot_cost``, calibrated and additive across slots) and its
value the saliency its kept channels carry (Fisher, L1), or the parameters it keeps when
no saliency is given. Every design is then measured end to end on the profile's backend,
beside the teacher, and judged at the speed the machine had when the profile was made
(its time over the teacher's, times the teacher's time in the profile: drift cancels); a
miss tightens the budget by the miss and designs again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..errors import StaircaseError
from ..modelref import ResolvedModel
from ..profile.backends import Backend, get_backend
from ..profile.network import predict, slot_cost, snap_slot, time_relative
from ..profile.store import Profile
from ..profile.sweep import network_key
from ..profile.timing import Measurement
from ..slots import SlotGraph
from ..spec import Provenance, StudentSpec
from .baselines import l1_scores, match_measured, pruned_family, removal_order, uniform_family, widest_under
from .knapsack import Choice, min_cost, solve

__all__ = ["Designed", "Saliency", "Designer", "WidthsFile", "backend_of", "design_students"]


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


@dataclass
class Designed:
    spec: StudentSpec
    predicted_ms: float
    measured_ms: float | None
    measured_spread_ms: float | None
    retained: float | None  # share of the teacher's saliency kept
    attempts: int = 1
    met: bool = True  # measured within the target (when there was one)
    # the measured latency scaled to the machine's speed when the profile was made: the
    # student's time over the teacher's, timed beside it, times the profile's teacher time
    at_profile_ms: float | None = None

    @property
    def judged_ms(self) -> float | None:
        """What a target is checked against: the drift-free figure when there is one."""
        return self.at_profile_ms if self.at_profile_ms is not None else self.measured_ms


def backend_of(profile: Profile) -> Backend:
    """The backend a profile was measured with, set up the same way."""
    fp = profile.fingerprint
    return get_backend(fp["backend"], fp.get("device"), threads=fp.get("threads"), batch=fp.get("batch", 1),
                       precision=fp.get("precision", "f32"))


MEASURE_PAIRS = 3  # paired student/teacher measurements: the median of three outvotes one disturbed one
FILL_WITHIN = 0.03  # a student this close below its target is not redesigned to fill the gap


class Designer:
    def __init__(self, profile: Profile, resolved: ResolvedModel, backend: Backend | None = None,
                 log: Callable[[str], None] = print):
        self.profile = profile
        self.resolved = resolved
        self.arch = resolved.architecture
        self.network = network_key(self.arch.name, self.arch.input_size)
        entry = profile.network(self.network)
        if "full" not in entry:
            raise StaircaseError(f"profile {profile.path} has not finished {self.network}; rerun `staircase profile`")
        self.slots = list(entry["slots"])
        self.full_ms = entry["full"]["median_ms"]
        self.graph = SlotGraph(resolved.model, self.arch.input_size)
        self.optimal = {n: profile.slot_curve(self.network, n).optimal() for n in self.slots}
        self.backend = backend
        self._teacher_run = None
        self.log = log

    # -- widths ------------------------------------------------------------------------------

    def snapped(self, widths: Mapping[str, int], mode: str = "nearest",
                saliency: Saliency | None = None) -> dict[str, int]:
        """Each profiled slot's width moved to the staircase: ``nearest`` (the paper) or
        ``down`` slot by slot; ``up`` for the whole network (see ``_filled_up``)."""
        self._check_slots(widths)
        each = {n: snap_slot(self.profile, self.network, n, w, mode) if n in self.optimal else w
                for n, w in widths.items()}
        if mode != "up":
            return each
        return self._filled_up(widths, each, saliency or Saliency.from_parameters(self.graph, self.slots))

    def _filled_up(self, given: Mapping[str, int], each: Mapping[str, int], saliency: Saliency) -> dict[str, int]:
        """``up``: more channels for no more time, judged for the whole network.

        Slot by slot, a width goes to the top of its step (``snap_slot``: no more time on the
        slot's measured curve). That alone leaves time on the table: a width off the
        alignment whole networks need costs its neighbours layout conversions, which the
        calibration prices, and the aligned widths save them. So the saved time is spent:
        each slot picks its stepped-up width or a wider optimal one, keeping the most
        saliency (parameters when no scores are given) for no more predicted time than
        ``given``, or than the stepped-up widths where their noise allowance made them
        dearer (the multiple-choice knapsack of ``for_target``)."""
        profiled = [n for n in given if n in self.optimal]
        choices = self._choices(saliency, {n: sorted({each[n], *(p for p in self.optimal[n] if p > each[n])})
                                           for n in profiled})
        budget = max(sum(slot_cost(self.profile, self.network, n, widths[n]) for n in profiled)
                     for widths in (given, each))
        chosen = solve(choices, budget).widths
        return {n: chosen.get(n, w) for n, w in each.items()}

    def predicted(self, widths: Mapping[str, int]) -> float:
        return predict(self.profile, self.network, {n: w for n, w in widths.items() if n in self.optimal}).median_ms

    def smallest_ms(self) -> float:
        """The fastest predicted network whose slots sit on optimal widths."""
        return self.full_ms + min_cost(self._choices(Saliency({n: [] for n in self.slots})))

    def for_target(self, target_ms: float, saliency: Saliency) -> dict[str, int]:
        """Optimal widths keeping the most saliency with predicted latency <= ``target_ms``."""
        choices = self._choices(saliency)
        lowest = self.full_ms + min_cost(choices)
        if target_ms < lowest:
            raise StaircaseError(
                f"target {target_ms:.3f} ms is below the smallest latency reachable on this profile's steps: "
                f"{lowest:.3f} ms predicted for {self.network}; ask for at least that")
        return solve(choices, target_ms - self.full_ms).widths

    def _choices(self, saliency: Saliency, widths: Mapping[str, Sequence[int]] | None = None
                 ) -> dict[str, list[Choice]]:
        """Each slot's candidate widths (its optimal ones unless ``widths`` names them) with
        the latency they add and the saliency they keep."""
        options = self.optimal if widths is None else widths
        return {n: [Choice(w, slot_cost(self.profile, self.network, n, w),
                           saliency.kept(n, w) if n in saliency.prefix else 0.0) for w in options[n]]
                for n in options}

    def _check_slots(self, widths: Mapping[str, int]) -> None:
        unknown = sorted(set(widths) - {s.name for s in self.graph.slots})
        if unknown:
            raise StaircaseError(f"widths name slot(s) {unknown[:4]} that {self.arch.name} does not have; "
                                 "were they written for another model?")

    # -- students ----------------------------------------------------------------------------

    def student(self, widths: Mapping[str, int], name: str, method: str, saliency: Saliency | None = None,
                measure: bool = True, notes: dict | None = None) -> Designed:
        """Write the spec for ``widths``, predicted and (on the profile's backend) measured
        beside the teacher."""
        predicted = self.predicted(widths)
        retained = saliency.total(widths) / saliency.full() if saliency is not None and saliency.full() > 0 else None
        prov = Provenance(method=method, profile=str(self.profile.path), backend=self.profile.fingerprint["backend"],
                          predicted_ms=predicted, retained_saliency=retained, notes=dict(notes or {}))
        spec, model = StudentSpec.create(self.arch, dict(widths), name, prov)
        if not measure:
            return Designed(spec, predicted, None, None, retained)
        student_m, teacher_ms, ratio = self._measure_beside_teacher(model.eval())
        at_profile = ratio * self.full_ms
        spec.provenance.measured_ms, spec.provenance.measured_spread_ms = student_m.median_ms, student_m.iqr_ms
        spec.provenance.notes.update(teacher_measured_beside_ms=teacher_ms, ratio_to_teacher=ratio,
                                      at_profile_speed_ms=at_profile)
        return Designed(spec, predicted, student_m.median_ms, student_m.iqr_ms, retained, at_profile_ms=at_profile)

    def _measure_beside_teacher(self, model) -> tuple[Measurement, float, float]:
        """The student timed block by block beside the teacher (``time_relative``: drift
        cancels in the ratio); the student's best-spread run with its median
        time, the teacher's median time, and the student's median ratio to the teacher."""
        backend = self._backend()
        if self._teacher_run is None:
            self._teacher_run = backend.prepare_model(self.resolved.model.eval(), self.arch.input_size, paired=True)
        rel = time_relative(backend, backend.prepare_model(model, self.arch.input_size, paired=True), self._teacher_run,
                            pairs=MEASURE_PAIRS)
        student = replace(min(rel.runs, key=lambda m: m.iqr_ms), median_ms=rel.run_ms)
        return student, rel.reference_ms, rel.ratio

    def design_for_target(self, target_ms: float, saliency: Saliency, name: str, method: str,
                          attempts: int = 5, close: float = FILL_WITHIN) -> Designed:
        """The best student for ``target_ms``, measured, with the predicted budget searched
        by measurement: a miss tightens it by the miss, a student more than ``close`` (a
        share of the target) below it loosens it by the room left, and once both are known
        the budget is bisected between them. The widest student that fits is kept (fewest
        measurements: one, when the prediction is right). If none fits, the closest is
        returned with ``met`` False (its notes say by how much)."""
        budget = target_ms
        tried: list[tuple[float, Designed]] = []  # (predicted budget, designed), in order
        seen: set[tuple] = set()
        for _ in range(attempts):
            widths = self.for_target(budget, saliency)
            key = tuple(sorted(widths.items()))
            if key in seen:  # the staircase has nothing between the budgets tried
                break
            seen.add(key)
            designed = self.student(widths, name, method, saliency,
                                    notes={"target_ms": target_ms, "budget_ms": budget})
            judged = designed.judged_ms
            tried.append((budget, designed))
            if judged <= target_ms:
                if judged >= (1 - close) * target_ms:
                    break
                self.log(f"  measured {judged:.3f} ms (at the profile's speed) is {1 - judged / target_ms:.1%} "
                         f"below {target_ms:.3f} ms; loosening the budget")
            else:
                self.log(f"  measured {judged:.3f} ms (at the profile's speed) misses {target_ms:.3f} ms "
                         f"by {judged - target_ms:.3f}; tightening the budget")
            fit_budgets = [b for b, d in tried if d.judged_ms <= target_ms]
            miss_budgets = [b for b, d in tried if d.judged_ms > target_ms]
            if fit_budgets and miss_budgets:
                budget = (max(fit_budgets) + min(miss_budgets)) / 2
            else:
                budget += target_ms - judged
            if budget < self.smallest_ms():
                break
        fits = [d for _, d in tried if d.judged_ms <= target_ms]
        best = max(fits, key=lambda d: d.judged_ms) if fits else min((d for _, d in tried), key=lambda d: d.judged_ms)
        best.attempts = len(tried)  # designs measured (a repeated design is not)
        best.spec.provenance.notes["design_tries"] = [[b, d.judged_ms] for b, d in tried]  # [budget, judged ms]
        if fits:
            return best
        best.met = False
        best.spec.provenance.notes["missed_by_ms"] = best.judged_ms - target_ms
        return best

    def _backend(self) -> Backend:
        if self.backend is None:
            self.backend = backend_of(self.profile)
        return self.backend


@dataclass
class WidthsFile:
    """What ``staircase prune`` writes: final widths, and optionally per-channel saliency and
    the order channels were removed in (one slot name per removal)."""

    widths: dict[str, int]
    saliency: dict[str, list[float]] | None = None
    removed: list[str] | None = None
    method: str = "given widths"

    @classmethod
    def load(cls, path) -> WidthsFile:
        from .._io import read_json
        from ..spec import widths_from_data

        data = read_json(path, "widths file")
        widths = widths_from_data(data, path)
        saliency = data.get("saliency") if isinstance(data, dict) else None
        removed = data.get("removed") if isinstance(data, dict) else None
        if saliency is not None and not (isinstance(saliency, dict) and all(
                isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in saliency.values())):
            raise StaircaseError(f"widths file {path}: 'saliency' must map slots to lists of numbers")
        if removed is not None and not (isinstance(removed, list) and all(isinstance(x, str) for x in removed)):
            raise StaircaseError(f"widths file {path}: 'removed' must be a list of slot names")
        return cls(widths, saliency, removed, str(data.get("method", "given widths")) if isinstance(data, dict)
                   else "given widths")


def design_students(designer: Designer, name: str, widths_file: WidthsFile | None = None, snap_mode: str = "nearest",
                    target_ms: float | None = None, baselines: bool = False, measure: bool = True,
                    l1_model=None) -> list[Designed]:
    """The staircase student (first), then the baselines at its latency when asked: at its
    measured latency (judged at the profile's speed) when measuring, else at its prediction."""
    slots = [designer.graph[n] for n in designer.slots]
    if widths_file is not None:
        designer._check_slots(widths_file.widths)
        if widths_file.saliency:
            designer._check_slots(widths_file.saliency)
    if widths_file is not None and widths_file.saliency:
        saliency = Saliency(widths_file.saliency)
        kind = "saliency"
    else:
        saliency = Saliency.from_parameters(designer.graph, designer.slots)
        kind = "parameters"
    if target_ms is not None:
        main = designer.design_for_target(target_ms, saliency, name,
                                          f"staircase: optimal widths keeping the most {kind} under {target_ms} ms")
    elif widths_file is not None:
        widths = designer.snapped(widths_file.widths, snap_mode, saliency)
        main = designer.student(widths, name, f"{widths_file.method}, snapped {snap_mode} to the staircase",
                                saliency, measure)
    else:
        raise StaircaseError("give --widths (snap them to the staircase), --target-ms (design for a latency), or both")
    designed = [main]
    if not baselines:
        return designed
    measured = main.judged_ms is not None
    match = main.judged_ms if measured else main.predicted_ms
    kind = "measured" if measured else "predicted"

    def matched(family, suffix: str, describe: Callable[[float], str]) -> Designed:
        """The family's member at the student's latency: measured when measuring, else predicted."""
        label = f"{name}-{suffix}"
        if not measured:
            t = widest_under(family, designer.predicted, match)
            return designer.student(family(t), label, describe(t), saliency, measure=False)

        def measure_one(widths):
            d = designer.student(widths, label, "", saliency, notes={"matched_to_ms": match})
            return d, d.judged_ms

        found = match_measured(family, designer.predicted, measure_one, match)
        d = found.result
        d.spec.provenance.method = describe(found.t)
        d.spec.provenance.notes["match_tries"] = [[round(t, 6), ms] for t, ms in found.tried]
        designer.log(f"  {label}: {d.judged_ms:.3f} ms at the profile's speed after {len(found.tried)} "
                     f"measurement(s), for {match:.3f} ms")
        if found.t <= 0 and d.judged_ms > match:
            d.spec.provenance.notes["floor_ms"] = d.judged_ms
            designer.log(f"  {label} cannot get faster than that: its smallest member is slower than the student")
        return d

    full = {s.name: s.width for s in slots}
    if widths_file is not None:
        if widths_file.removed:
            order = list(widths_file.removed)
            if widths_file.saliency:  # past the pruning run: the kept channels by their last saliency, one shot
                order += removal_order({n: v[: widths_file.widths[n]] for n, v in widths_file.saliency.items()
                                        if n in full and n in widths_file.widths})

            def describe(t: float) -> str:
                extra = round((1 - t) * len(order)) - len(widths_file.removed)
                more = f", {extra} more channels by their last saliency" if extra > 0 else ""
                return f"{widths_file.method}, unsnapped{more}, pruned to the student's {kind} {match:.3f} ms"

            designed.append(matched(pruned_family(full, order), "unsnapped", describe))
        else:
            designed.append(designer.student(
                dict(widths_file.widths), f"{name}-unsnapped",
                f"{widths_file.method}, unsnapped (no removal order in the file: at its own latency)", saliency, measure))
    l1 = l1_scores(SlotGraph(l1_model, designer.arch.input_size) if l1_model is not None else designer.graph,
                   designer.slots)
    designed.append(matched(pruned_family(full, removal_order(l1)), "l1",
                            lambda t: f"L1-norm filter ranking, pruned to the student's {kind} {match:.3f} ms"))
    designed.append(matched(uniform_family(slots), "uniform",
                            lambda t: f"uniform width x{t:.3f} at the student's {kind} {match:.3f} ms"))
    return designed
