"""Designs measured end to end: every student timed on the profile's backend beside the
teacher, and a target design searched by measurement.

A student's latency is judged at the speed the machine had when the profile was made: its
time over the teacher's, timed block by block beside it, times the teacher's time in the
profile (drift cancels). The measuring is a callable (``BesideTeacher`` on a real backend);
the loops here only decide what to measure next, so they run the same on a scripted one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from torch import nn

from ..errors import StaircaseError
from ..profile.backends import Backend
from ..spec import StudentSpec
from ..widths import WidthsFile
from .allocations import Allocation, default_allocation
from .allocations import allocation as allocation_named
from .baselines import (
    l1_scores,
    match_measured,
    pruned_family,
    removal_order,
    rounded_family,
    uniform_family,
    widest_under,
)
from .designer import Designer, Saliency

__all__ = ["BASELINES", "DEFAULT_ROUND_TO", "FILL_WITHIN", "MATCH_WITHIN", "MEASURE_PAIRS", "TOGETHER_PASSES",
           "BesideTeacher", "Designed", "Measure", "MeasureTogether", "RatioInterval", "Timed", "design_with_baselines",
           "designed", "fit_to_target", "interleaved", "measure_together", "no_slower", "time_over"]

MEASURE_PAIRS = 3  # paired student/teacher measurements: the median of three outvotes one disturbed one
FILL_WITHIN = 0.03  # a student this close below its target is not redesigned to fill the gap
MATCH_WITHIN = 0.03  # a baseline measured further than this from the student's latency is unmatched
DEFAULT_ROUND_TO = 16  # the l1-round baseline's multiple where the profile found no network step
TOGETHER_PASSES = 7  # the design job's final check: the fewest passes past the 6 a 95% median interval needs


@dataclass(frozen=True)
class Timed:
    """A student timed beside the teacher: its median and IQR (ms), the teacher's median in the
    same pairs, the median ratio of the two, and that ratio times the teacher's time in the
    profile."""

    median_ms: float
    iqr_ms: float
    teacher_measured_ms: float
    ratio: float
    at_profile_ms: float


class BesideTeacher:
    """Times networks block by block beside the teacher on ``backend`` (``time_relative``)."""

    def __init__(self, backend: Backend, teacher: nn.Module, input_size, teacher_ms: float,
                 pairs: int = MEASURE_PAIRS, protocol=None):
        """``teacher_ms``: the teacher's time in the profile; ``protocol``: each paired
        measurement's (default ``timing.FULL_NETWORK_PROTOCOL``)."""
        self.backend, self.input_size, self.teacher_ms, self.pairs = backend, tuple(input_size), teacher_ms, pairs
        self.protocol, self.teacher = protocol, teacher
        self.teacher_run = backend.prepare_model(teacher.eval(), self.input_size, paired=True)

    def __call__(self, model: nn.Module) -> Timed:
        from ..profile.timing import time_relative

        run = self.backend.prepare_model(model.eval(), self.input_size, paired=True)
        rel = time_relative(self.backend, run, self.teacher_run, pairs=self.pairs, protocol=self.protocol)
        spread = min(m.iqr_ms for m in rel.runs)  # the best-spread pair's IQR
        return Timed(rel.run_ms, spread, rel.reference_ms, rel.ratio, rel.ratio * self.teacher_ms)

    def together(self, networks: Mapping[str, nn.Module], passes: int = TOGETHER_PASSES) -> dict[str, RatioInterval]:
        """``networks`` timed beside the teacher in the same passes (``measure_together``)."""
        return measure_together(self.backend, self.teacher, networks, self.input_size, passes, self.protocol)


@dataclass(frozen=True)
class RatioInterval:
    """A network's time over the teacher's, from several passes: the median of the passes'
    ratios with its distribution-free 95% interval (``stats.median_interval``: a pass a
    disturbance slowed moves neither), and each pass's."""

    ratio: float
    low: float
    high: float
    passes: list[float]

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "ci95": [self.low, self.high], "passes": list(self.passes)}

    @classmethod
    def from_dict(cls, d: Mapping) -> RatioInterval:
        return cls(d["ratio"], *d["ci95"], list(d.get("passes", [])))

    def text(self) -> str:
        """``ratio [low, high]``, as the tables print it."""
        return f"{self.ratio:.3f} [{self.low:.3f}, {self.high:.3f}]"


Measure = Callable[[nn.Module], Timed]
MeasureTogether = Callable[[Mapping[str, nn.Module]], dict[str, RatioInterval]]


def time_over(passes: list[float], reference: list[float]) -> RatioInterval:
    """A network's time over another's from one measurement run, pass by pass (each pass's two
    ratios to the teacher were taken close together): the median quotient, its 95% interval
    (``stats.median_interval``) and each pass's."""
    from ..stats import median_interval

    quotients = [a / b for a, b in zip(passes, reference, strict=True)]
    return RatioInterval(*median_interval(quotients), quotients)


def no_slower(quotient: float) -> bool:
    """Whether a network whose median per-pass time over another's is ``quotient`` runs at that
    one's latency or less: no more than ``MATCH_WITHIN`` above 1 (faster only gives latency
    away). The rule every comparison at one latency applies: the design job's, the demo's and
    the CIFAR experiment's."""
    return quotient <= 1 + MATCH_WITHIN


def measure_together(backend: Backend, teacher: nn.Module, networks: Mapping[str, nn.Module], input_size,
                     passes: int = 11, protocol=None, seed: int = 0) -> dict[str, RatioInterval]:
    """Every network of ``networks`` timed beside the teacher in the same ``passes``, each pass
    in a new random order, so that whatever the machine does meanwhile weighs on all alike:
    what networks compared at one latency need (one measurement run, its ratios comparable)."""
    from ..profile.timing import time_relative

    enough_passes(passes)  # before preparing any network: a refusal should cost nothing
    size = tuple(input_size)
    reference = backend.prepare_model(teacher.eval(), size, paired=True)

    def one_pair(run):
        return lambda: time_relative(backend, run, reference, pairs=1, protocol=protocol).ratio

    return interleaved({name: one_pair(backend.prepare_model(model.eval(), size, paired=True))
                        for name, model in networks.items()}, passes, seed)


def enough_passes(passes: int) -> None:
    """Refuses fewer passes than a distribution-free 95% interval of the median needs (6)."""
    if passes < 6:
        raise StaircaseError(f"timing networks together needs at least 6 passes for a 95% interval, got {passes}")


def interleaved(ratio_of: Mapping[str, Callable[[], float]], passes: int, seed: int = 0) -> dict[str, RatioInterval]:
    """Each callable of ``ratio_of`` (one paired measurement of a network beside the reference:
    its ratio) called once per pass, each pass in a new random order; every network's median
    ratio with its 95% interval and each pass's. The core of ``measure_together``, for networks
    prepared any way (``staircase compare`` times deployable files)."""
    import random

    from ..stats import median_interval

    enough_passes(passes)
    ratios: dict[str, list[float]] = {name: [] for name in ratio_of}
    order, rng = list(ratio_of), random.Random(seed)
    for _ in range(passes):
        rng.shuffle(order)
        for name in order:
            ratios[name].append(ratio_of[name]())
    return {name: RatioInterval(*median_interval(values), values) for name, values in ratios.items()}


@dataclass
class Designed:
    spec: StudentSpec
    predicted_ms: float
    measured_ms: float | None
    measured_iqr_ms: float | None
    retained: float | None  # share of the teacher's saliency kept
    attempts: int = 1
    met: bool = True  # measured within the target (when there was one)
    # the measured latency scaled to the machine's speed when the profile was made
    at_profile_ms: float | None = None

    @property
    def judged_ms(self) -> float:
        """What a target is checked against: the drift-free figure when there is one, else the
        measured one, else (not measured) the prediction."""
        for ms in (self.at_profile_ms, self.measured_ms):
            if ms is not None:
                return ms
        return self.predicted_ms

    @classmethod
    def from_spec(cls, spec: StudentSpec) -> Designed:
        """A design read back from its spec file."""
        p = spec.provenance
        return cls(spec, p.predicted_ms, p.measured_ms, p.measured_iqr_ms, p.retained_saliency,
                   at_profile_ms=p.notes.get("at_profile_speed_ms"))


def designed(designer: Designer, widths: Mapping[str, int], name: str, method: str, saliency: Saliency | None = None,
             measure: Measure | None = None, notes: dict | None = None) -> Designed:
    """The spec for ``widths``, predicted, and measured when ``measure`` is given."""
    spec, model, retained = designer.spec(widths, name, method, saliency, notes)
    held = designer.at_minimum(widths)
    if held:
        spec.provenance.notes["at_minimum_width"] = held
    if measure is None:
        return Designed(spec, spec.provenance.predicted_ms, None, None, retained)
    timed = measure(model)
    spec.provenance.measured_ms, spec.provenance.measured_iqr_ms = timed.median_ms, timed.iqr_ms
    spec.provenance.notes.update(teacher_measured_beside_ms=timed.teacher_measured_ms, ratio_to_teacher=timed.ratio,
                                  at_profile_speed_ms=timed.at_profile_ms)
    return Designed(spec, spec.provenance.predicted_ms, timed.median_ms, timed.iqr_ms, retained,
                    at_profile_ms=timed.at_profile_ms)


def fit_to_target(designer: Designer, target_ms: float, saliency: Saliency, name: str, method: str,
                  measure: Measure | None, log: Callable[[str], None] = print, attempts: int = 5,
                  close: float = FILL_WITHIN, allocation: Allocation | None = None) -> Designed:
    """The best student for ``target_ms``. Without ``measure``, the prediction's choice.
    ``allocation`` picks the widths for a predicted budget (default: the knapsack keeping
    the most ``saliency``, ``designer.for_target``).

    With it, the predicted budget is searched by measurement, aiming at ``close / 2`` under
    the target: a miss tightens it by the miss, a student more than ``close`` (a share of the
    target) below it loosens it by the room left, and once both are known the budget is
    bisected between them. The widest student that fits is kept (fewest measurements: one,
    when the prediction is right). If none fits, the closest is returned with ``met`` False
    (its notes say by how much)."""
    allocation = allocation or allocation_named("params")

    def choose(budget: float) -> dict[str, int]:
        return allocation.widths(designer, budget, saliency)

    floor = allocation.smallest_ms(designer)
    if target_ms < floor:
        log(f"  {target_ms:.3f} ms is below the fastest network this profile's steps reach ({floor:.3f} ms "
            "predicted): designing that one")
    if measure is None:
        d = designed(designer, choose(max(target_ms, floor)), name, method, saliency,
                     notes={"target_ms": target_ms, "budget_ms": max(target_ms, floor)})
        if d.judged_ms > target_ms:
            d.met = False
            d.spec.provenance.notes["missed_by_ms"] = d.judged_ms - target_ms
        return d
    # aim at the middle of the window a student may land in ([1 - close, 1] x the target):
    # a filled design's prediction sits on its budget, and measurement noise goes both ways
    budget = max(target_ms * (1 - close / 2), floor)
    tried: list[tuple[float, Designed]] = []  # (predicted budget, designed), in order
    seen: dict[tuple, Designed] = {}
    for _ in range(attempts):
        widths = choose(budget)
        key = tuple(sorted(widths.items()))
        if key in seen:  # the staircase has nothing new at this budget: not measured again
            judged = seen[key].judged_ms
            if judged <= target_ms or any(d.judged_ms <= target_ms for _, d in tried):
                break  # loosening found nothing wider, or the bracket holds nothing else
            budget -= max(judged - target_ms, close / 2 * target_ms)  # still missing: tighten past the repeat
        else:
            d = designed(designer, widths, name, method, saliency, measure,
                         {"target_ms": target_ms, "budget_ms": budget})
            seen[key] = d
            tried.append((budget, d))
            judged = d.judged_ms
            if target_ms >= judged >= (1 - close) * target_ms:
                break
            log(f"  measured {judged:.3f} ms (at the profile's speed) "
                + (f"is {1 - judged / target_ms:.1%} below {target_ms:.3f} ms; loosening the budget"
                   if judged <= target_ms else
                   f"misses {target_ms:.3f} ms by {judged - target_ms:.3f}; tightening the budget"))
            fit_budgets = [b for b, d in tried if d.judged_ms <= target_ms]
            miss_budgets = [b for b, d in tried if d.judged_ms > target_ms]
            budget = (max(fit_budgets) + min(miss_budgets)) / 2 if fit_budgets and miss_budgets \
                else budget + (1 - close / 2) * target_ms - judged
        if budget < floor:
            break
    return _best_of(tried, target_ms)


def _best_of(tried: list[tuple[float, Designed]], target_ms: float) -> Designed:
    """The widest design that fits, else the closest one, marked as missing."""
    fits = [d for _, d in tried if d.judged_ms <= target_ms]
    best = max(fits, key=lambda d: d.judged_ms) if fits else min((d for _, d in tried), key=lambda d: d.judged_ms)
    best.attempts = len(tried)  # designs measured (a repeated design is not)
    best.spec.provenance.notes["design_tries"] = [[b, d.judged_ms] for b, d in tried]  # [budget, judged ms]
    if not fits:
        best.met = False
        best.spec.provenance.notes["missed_by_ms"] = best.judged_ms - target_ms
    return best


def design_with_baselines(designer: Designer, name: str, widths_file: WidthsFile | None = None,
                          snap_mode: str = "nearest", target_ms: float | None = None,
                          baselines: bool | Collection[str] = False, measure: Measure | None = None,
                          log: Callable[[str], None] = print, allocation: str | None = None,
                          together: MeasureTogether | None = None) -> list[Designed]:
    """The staircase student (first), then the baselines at its latency when asked: at its
    measured latency (judged at the profile's speed) when measuring, else at its prediction.
    ``baselines``: True for all of them, or the suffixes of those wanted (``unsnapped``,
    ``l1``, ``l1-round``, ``uniform``), in that order.

    Each baseline is matched by its own measurements, minutes apart, and two measurement runs
    of one network can differ by more than the tolerance. With ``together`` the student and
    its baselines are then timed in the same passes (``BesideTeacher.together``), and a
    baseline is ``matched`` when its median per-pass time over the student's lies within
    ``MATCH_WITHIN`` of 1 (notes ``over_student``).

    ``allocation`` (one of ``ALLOCATIONS``) says how a target's latency is shared among the
    slots (default ``default_allocation(widths_file)``); without a target it is the saliency snapping
    ranks slots by, by default the widths file's where it has one, else parameters."""
    if widths_file is not None:
        designer.check_slots(widths_file.widths)
        if widths_file.saliency:
            designer.check_slots(widths_file.saliency)
    if allocation is None:
        allocation = default_allocation(widths_file) if target_ms is not None else (
            "fisher" if widths_file is not None and widths_file.saliency else "params")
    how = allocation_named(allocation)
    saliency, kind = how.saliency(designer, widths_file)
    if target_ms is not None:
        main = fit_to_target(designer, target_ms, saliency, name, how.method(target_ms, kind), measure, log,
                             allocation=how)
    elif widths_file is not None:
        widths = designer.snapped(widths_file.widths, snap_mode, saliency)
        main = designed(designer, widths, name, f"{widths_file.method}, snapped {snap_mode} to the staircase",
                        saliency, measure)
    else:
        raise StaircaseError("give --widths (snap them to the staircase), --target-ms (design for a latency), or both")
    main.spec.provenance.notes["allocation"] = allocation
    if not baselines:
        return [main]
    which = set(BASELINES) if baselines is True else set(baselines)
    if which - set(BASELINES):
        raise StaircaseError(f"unknown baselines {sorted(which - set(BASELINES))}; choose from {', '.join(BASELINES)}")
    designs = [main, *_baselines(designer, main, name, widths_file, saliency, measure, log, which)]
    if together is not None and measure is not None:
        _timed_together(designs, together, log)
    return designs


BASELINES = ("unsnapped", "l1", "l1-round", "uniform")


def _baselines(designer: Designer, main: Designed, name: str, widths_file: WidthsFile | None, saliency: Saliency,
               measure: Measure | None, log: Callable[[str], None],
               which: set[str]) -> list[Designed]:
    """The unsnapped pruned widths, L1 pruning and uniform scaling at the student's latency
    (those in ``which``)."""
    match = main.judged_ms if measure is not None else main.predicted_ms
    kind = "measured" if measure is not None else "predicted"

    def matched(family, suffix: str, describe: Callable[[float], str]) -> Designed:
        """The family's member at the student's latency: measured when measuring, else predicted."""
        label = f"{name}-{suffix}"
        if measure is None:
            t = widest_under(family, designer.predicted, match)
            return designed(designer, family(t), label, describe(t), saliency)

        def measure_one(widths):
            d = designed(designer, widths, label, "", saliency, measure, {"matched_to_ms": match})
            return d, d.judged_ms

        found = match_measured(family, designer.predicted, measure_one, match, tolerance=MATCH_WITHIN)
        d = found.result
        d.spec.provenance.method = describe(found.t)
        d.spec.provenance.notes["match_tries"] = [[round(t, 6), ms] for t, ms in found.tried]
        d.spec.provenance.notes["matched"] = abs(d.judged_ms - match) <= MATCH_WITHIN * match
        log(f"  {label}: {d.judged_ms:.3f} ms at the profile's speed after {len(found.tried)} "
            f"measurement(s), for {match:.3f} ms" + ("" if d.spec.provenance.notes["matched"] else
                                                     f": UNMATCHED (more than {MATCH_WITHIN:.0%} away)"))
        if found.t <= 0 and d.judged_ms > match:
            d.spec.provenance.notes["floor_ms"] = d.judged_ms
            log(f"  {label} cannot get faster than that: its smallest member is slower than the student")
        return d

    slots = [designer.graph[n] for n in designer.slots]
    full = {s.name: s.width for s in slots}
    found = []
    unsnapped = "unsnapped" in which and widths_file is not None
    if unsnapped and (widths_file.removed or widths_file.saliency):  # a pruning run's order, or a ranking's
        order = list(widths_file.removed)
        if widths_file.saliency:  # past the pruning run: the kept channels by their last saliency, one shot
            order += removal_order({n: v[: widths_file.widths[n]] for n, v in widths_file.saliency.items()
                                    if n in full and n in widths_file.widths})

        def describe(t: float) -> str:
            extra = round((1 - t) * len(order)) - len(widths_file.removed)
            more = f", {extra} more channels by their last saliency" if extra > 0 else ""
            return f"{widths_file.method}, unsnapped{more}, pruned to the student's {kind} {match:.3f} ms"

        found.append(matched(pruned_family(full, order), "unsnapped", describe))
    elif unsnapped:
        found.append(designed(designer, dict(widths_file.widths), f"{name}-unsnapped",
                              f"{widths_file.method}, unsnapped (no removal order in the file: at its own latency)",
                              saliency, measure))
    if which & {"l1", "l1-round"}:  # one graph trace for both
        l1 = l1_scores(designer.graph, designer.slots)
        l1_family = pruned_family(full, removal_order(l1))
    if "l1" in which:
        found.append(matched(l1_family, "l1",
                             lambda t: f"L1-norm filter ranking, pruned to the student's {kind} {match:.3f} ms"))
    round_to = designer.profile.network_step(designer.network) or DEFAULT_ROUND_TO
    if "l1-round" in which:
        found.append(matched(rounded_family(l1_family, full, round_to), "l1-round",
                             lambda t: f"L1-norm filter ranking, widths rounded to multiples of {round_to}, pruned "
                                       f"to the student's {kind} {match:.3f} ms"))
    if "uniform" in which:
        found.append(matched(uniform_family(slots), "uniform",
                             lambda t: f"uniform width x{t:.3f} at the student's {kind} {match:.3f} ms"))
    return found


def _timed_together(designs: list[Designed], together: MeasureTogether, log: Callable[[str], None]) -> None:
    """The student and its baselines timed in the same passes; each baseline's time over the
    student's, pass by pass, decides whether it is matched."""
    found = together({d.spec.name: d.spec.build() for d in designs})
    mine = found[designs[0].spec.name]
    designs[0].spec.provenance.notes["together"] = mine.to_dict()
    for d in designs[1:]:
        theirs = found[d.spec.name]
        over = time_over(theirs.passes, mine.passes)
        notes = d.spec.provenance.notes
        notes.update(together=theirs.to_dict(), over_student=over.to_dict(),
                     matched=abs(over.ratio - 1) <= MATCH_WITHIN)
        log(f"  {d.spec.name}: {over.ratio:.3f}x the student's time [{over.low:.3f}, {over.high:.3f}] over "
            f"{len(over.passes)} passes timed together" + ("" if notes["matched"] else
                                                           f": UNMATCHED (more than {MATCH_WITHIN:.0%} away)"))
