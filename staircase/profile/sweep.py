"""Sweeping every slot's width on a backend, resumably, into a profile.

Order matters on noisy machines: each round visits every (op, width) point once, in a
fresh random order, so drift spreads over all widths instead of painting false steps,
and every point is timed block by block against its op at full width, so that what drift
remains cancels in the ratio (see ``timing.measure``).
After the rounds, the widths where the staircase is uncertain (and the width just above
each) get one to three more interleaved rounds with more samples (``TIMINGS``). Then the
whole network is timed once, and a few students of random widths against it, which
calibrates the prediction (see ``_calibrate``).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._progress import NoBar, progress_bar
from ..errors import StaircaseError
from ..modelref import resolve_model
from ..slots import SlotGraph
from .backends import Backend
from .ops import OpSpec, slot_ops
from .store import Profile
from .timing import TimingProtocol

__all__ = ["SweepResult", "disturbed_whole_network", "grid_widths", "network_key", "profile_network"]

DEFAULT_PROTOCOL = TimingProtocol()
FULL_NETWORK_PROTOCOL = TimingProtocol(min_samples=15, max_samples=200, max_s=4.0, target_spread=0.03)


@dataclass(frozen=True)
class Timing:
    """A ``--timing`` preset: per point and round, at uncertain edges (with more samples, so
    their standard errors shrink), how many edge passes, for whole networks, and per
    measurement of a calibration student (shorter: it is taken ``CALIBRATION_PAIRS`` times
    against the full network, and the median of those pairs is what counts)."""

    point: TimingProtocol
    edge: TimingProtocol
    edge_passes: int
    network: TimingProtocol
    calibration: TimingProtocol


TIMINGS: dict[str, Timing] = {
    "quick": Timing(TimingProtocol(warmup_s=0.005, min_block_s=0.001, min_samples=5, max_samples=15, max_s=0.2,
                                   target_spread=0.1),
                    TimingProtocol(warmup_s=0.005, min_block_s=0.001, min_samples=9, max_samples=30, max_s=0.4), 1,
                    TimingProtocol(warmup_s=0.01, min_samples=7, max_samples=30, max_s=0.5),
                    TimingProtocol(warmup_s=0.01, min_samples=5, max_samples=20, max_s=0.3)),
    "standard": Timing(DEFAULT_PROTOCOL, TimingProtocol(min_samples=15, max_samples=80, max_s=1.5, target_spread=0.03),
                       2, FULL_NETWORK_PROTOCOL,
                       TimingProtocol(min_samples=10, max_samples=100, max_s=1.0, target_spread=0.03)),
    "careful": Timing(TimingProtocol(min_samples=15, max_samples=120, max_s=2.0, target_spread=0.03),
                      TimingProtocol(min_samples=31, max_samples=200, max_s=4.0, target_spread=0.02), 3,
                      TimingProtocol(min_samples=31, max_samples=400, max_s=8.0, target_spread=0.02),
                      TimingProtocol(min_samples=15, max_samples=200, max_s=3.0, target_spread=0.02)),
}
CALIBRATION_PAIRS = 4


@dataclass
class SweepResult:
    profile: Profile
    network: str
    measured: int  # points measured in this run
    reused: int  # points found in the profile already
    complete: bool
    noisy_points: int
    seconds: float


def grid_widths(full: int, grid: int) -> list[int]:
    """Widths swept for a slot of ``full`` channels: every ``grid``-th, plus 1 and ``full``."""
    return sorted({1, full, *range(grid, full + 1, grid)})


def network_key(name: str, input_size) -> str:
    return f"{name}@{'x'.join(map(str, input_size))}"


def profile_network(
    model_ref: str,
    backend: Backend,
    out: str | Path,
    *,
    include_all: bool = False,
    grid: int = 1,
    rounds: int = 2,
    timing: str = "standard",
    calibration_students: int = 12,
    recalibrate: bool = False,
    budget_minutes: float | None = None,
    seed: int = 0,
    allow_other_device: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Profile ``model_ref``'s slots on ``backend`` into ``out`` (created, extended or resumed).

    ``recalibrate`` times the full network and the calibration students again and refits,
    keeping the op measurements: for a profile whose whole-network timings were taken while
    the machine was disturbed (its full-network time flagged noisy, or predictions off the
    same way for every student)."""
    if grid < 1 or rounds < 1:
        raise StaircaseError(f"--grid ({grid}) and --rounds ({rounds}) must be at least 1")
    if timing not in TIMINGS:
        raise StaircaseError(f"--timing {timing!r} is not one of {', '.join(TIMINGS)}")
    preset = TIMINGS[timing]
    protocol, edge_protocol, edge_passes = preset.point, preset.edge, preset.edge_passes
    start = time.perf_counter()
    deadline = start + budget_minutes * 60 if budget_minutes else None
    resolved = resolve_model(model_ref)
    model, size = resolved.model, resolved.architecture.input_size
    graph = SlotGraph(copy.deepcopy(model), size)
    slots = graph.selected(include_all)

    out = Path(out)
    if out.exists() or Path(str(out) + ".journal").exists():
        profile = Profile.load(out) if out.exists() else Profile(out, backend.fingerprint(), protocol.to_dict())
        if not out.exists():
            profile._replay_journal()
        profile.check_fingerprint(backend.fingerprint(), allow_other_device)
        log(f"extending {out} ({sum(len(e['rounds']) for e in profile.ops.values())} points already measured)")
    else:
        profile = Profile(out, backend.fingerprint(), protocol.to_dict())

    key = network_key(model_ref if resolved.spec is None else resolved.architecture.name, size)
    ops: dict[str, OpSpec] = {}
    entry = profile.networks.get(key, {})
    entry.update({"model": model_ref, "input_size": list(size), "include_all": include_all, "grid": grid,
                  "slots": entry.get("slots", {})})
    for slot in slots:
        layers = {}
        for layer, op in slot_ops(model, slot):
            ops[op.key] = op
            layers[layer] = op.key
        entry["slots"][slot.name] = {"width": slot.width, "layers": layers}
    profile.networks[key] = entry
    if recalibrate:
        for stale in ("full", "untouched_ms", "calibration"):
            entry.pop(stale, None)
    widths = {k: grid_widths(op.full, grid) for k, op in ops.items()}

    reused = sum(1 for k in ops for w in widths[k] if profile.rounds_done(k, w) >= rounds)
    total = sum(max(0, rounds - profile.rounds_done(k, w)) for k in ops for w in widths[k])
    log(f"{key}: {len(slots)} slots, {len(ops)} distinct ops, {sum(len(v) for v in widths.values())} points x "
        f"{rounds} rounds{f' (every {grid} widths, refined at the steps)' if grid > 1 else ''}; "
        f"{total} measurements to take on {backend.name}/{backend.device} ({backend.threads} threads)")

    runner = _Runner(profile, backend, ops, deadline, seed, progress)
    try:
        complete = runner.rounds([(k, w) for k in sorted(ops) for w in widths[k]], rounds, protocol, total)
        if complete and grid > 1 and not entry.get("refined"):
            refine = _refine_points(profile, key, grid)
            if refine:
                log(f"refining {len(refine)} points between grid widths at the steps")
            complete = runner.rounds(refine, rounds, protocol)
            entry["refined"] = complete
        for extra in range(edge_passes if complete and not entry.get("edges_done") else 0):
            edges = _edge_points(profile, key, rounds + extra)
            if not edges:
                break
            log(f"re-measuring {len(edges)} points where the staircase is uncertain (pass {extra + 1}/{edge_passes})")
            complete = runner.rounds(edges, rounds + extra + 1, edge_protocol, first_round=rounds + extra)
            if not complete:
                break
        if complete:
            entry["edges_done"] = True
        if complete and "full" not in entry:
            m = backend.time(backend.prepare_model(model, size), preset.network)
            entry["full"] = {"median_ms": m.median_ms, "spread_ms": m.iqr_ms, "noisy": m.noisy}
            touched = {}
            for s in entry["slots"].values():
                for layer, k in s["layers"].items():
                    touched[layer] = profile.curve(k).at(ops[k].full if k in ops else 10**9)
            entry["untouched_ms"] = m.median_ms - sum(touched.values())
        if complete and calibration_students and \
                entry.get("calibration", {}).get("version") != CALIBRATION_VERSION:
            entry["calibration"] = _calibrate(profile, key, backend, model, size, calibration_students, seed,
                                              preset.calibration, log)
    finally:
        runner.close()
        profile.save()
    noisy = sum(sum(profile.curve(k).noisy) for k in profile.ops)  # cached per op
    if not complete:
        log(f"budget reached: rerun the same command to continue ({out})")
    return SweepResult(profile, key, runner.measured, reused, complete, noisy, time.perf_counter() - start)


def disturbed_whole_network(profile: Profile, network: str) -> str | None:
    """Why the profile's whole-network timings (the full network, the calibration students)
    may be off, or None: the full network's time stayed noisy, so the machine was disturbed
    while they were taken and the calibration is worth redoing when it is quiet."""
    full = profile.network(network).get("full")
    if not full or not full.get("noisy"):
        return None
    return (f"the full network's time stayed noisy (spread {full['spread_ms']:.3g} ms on {full['median_ms']:.3g} ms): "
            "the prediction's calibration was timed on a disturbed machine; when it is quiet, rerun "
            "`staircase profile` with --recalibrate (the op measurements are kept)")


CALIBRATION_VERSION = 7  # older calibrations (a scale only; the op step as the alignment; misaligned
# slots priced at full width; a quarter of the students random; the finer of two alignments that
# fit alike; students timed in turn with the full network, not block by block) are redone when the
# profile is rerun


def _calibrate(profile: Profile, network: str, backend: Backend, model, size, count: int, seed: int,
               protocol: TimingProtocol, log: Callable[[str], None]) -> dict:
    """Fit how whole networks differ from the summed op differences.

    One-op graphs see each width change in isolation, so their differences miss what the
    change does to its neighbours. The largest such effect is memory layout: runtimes keep
    activations in blocked layouts (ONNX Runtime's NCHWc) only where channel counts are
    aligned, and a slot off the alignment converts layouts on its way in and out, which a
    lone op does not show. Which alignment a whole network needs is not the op curves'
    step: on this project's CPU the ops step every 16 channels, but whole networks pay only
    for widths off a multiple of 4. So a few students are timed end to end, block by block
    beside the full network (``time_relative``: drift cancels; the median of
    ``CALIBRATION_PAIRS`` such ratios counts, so one disturbed measurement does not): half
    with random widths, the others with random multiples of the step, of
    half of it and of a quarter of it; every other round of these narrow. (The random ones
    pin the misalignment cost down: refitted on draws of 12 of the 48 students of
    ``scripts/study_alignment.py``, it ranged 0.191-0.330 (10th-90th percentile) with a
    quarter of them random and 0.209-0.295 with half.) For each candidate alignment (the
    step, halved down to 2) two coefficients are fitted by least squares through the
    origin:

        measured difference = scale * summed op differences + misalignment * misaligned ms

    where ``misaligned ms`` is the time of the layers of slots whose width is off the
    alignment, at that width; the coarsest alignment that fits as well as any (within
    ``BLOCK_RESIDUAL_TIE``) is kept (``block``). Measured differences are taken as ratios to
    the full network measured alongside, times the profile's full-network time (taken as
    deployed, threads spinning): drift since the sweep cancels.
    """
    from ..slots import make_student
    from .network import misaligned_ms, raw_delta, time_relative, vector_block

    slots = profile.networks[network]["slots"]
    full_ms = profile.networks[network]["full"]["median_ms"]
    blocks = candidate_blocks(vector_block(profile, network))
    alignments = [kind for block in blocks[:3] for kind in (None, block)] or [None]
    rng = random.Random(seed + 7919)
    full_run = backend.prepare_model(model, size, paired=True)
    log(f"calibrating the prediction on {count} students (widths random or on multiples of "
        f"{', '.join(map(str, blocks[:3])) or '-'})")
    points = []
    for i in range(count):
        # every other round of kinds narrow (5-40% of each slot), else 25-100%: narrow
        # students are what low latency targets design
        low, high = (0.05, 0.4) if (i // len(alignments)) % 2 else (0.25, 1.0)
        widths = {n: rng.randint(max(1, round(low * info["width"])), max(1, round(high * info["width"])))
                  for n, info in slots.items()}
        align = alignments[i % len(alignments)]
        if align:
            widths = {n: min(slots[n]["width"], max(align, align * round(w / align))) for n, w in widths.items()}
        run = backend.prepare_model(make_student(model, widths, size), size, paired=True)
        ratio = time_relative(backend, run, full_run, pairs=CALIBRATION_PAIRS, protocol=protocol).ratio
        points.append({"widths": widths, "aligned_to": align, "predicted_delta_ms": raw_delta(profile, network, widths),
                       "measured_delta_ms": (ratio - 1) * full_ms})
    block, scale, misalignment, residuals = _fit_best_block(
        points, blocks, lambda widths, b: misaligned_ms(profile, network, widths, b))
    return {"version": CALIBRATION_VERSION, "scale": scale, "misalignment": misalignment, "block": block,
            "residual_by_block": residuals, "students": points}


BLOCK_RESIDUAL_TIE = 0.05  # ResNet-34's calibration once fitted 4 and 2 to within 1% and kept 2


def _fit_best_block(points: list[dict], blocks: list[int], misaligned: Callable[[dict, int | None], float]
                    ) -> tuple[int | None, float, float, dict[str, float]]:
    """Fit (scale, misalignment) for each candidate alignment (``misaligned(widths, block)``
    gives a student's misaligned ms) and keep the coarsest whose squared residual is within
    ``BLOCK_RESIDUAL_TIE`` of the least: a dozen noisy students cannot tell two alignments
    apart by less, and the coarser one is the safe one for designs (widths aligned to it are
    aligned to the finer too). Sets each point's ``misaligned_ms`` for the kept alignment
    and returns (block, scale, misalignment, residual by block)."""
    fits, priced = {}, {}
    for block in blocks or [None]:
        priced[block] = [{**p, "misaligned_ms": misaligned(p["widths"], block)} for p in points]
        scale, misalignment = _fit_calibration(priced[block])
        fits[block] = (scale, misalignment, _residual(priced[block], scale, misalignment))
    least = min(fit[2] for fit in fits.values())
    block = next(b for b in fits if fits[b][2] <= least * (1 + BLOCK_RESIDUAL_TIE))  # coarsest first
    for point, kept in zip(points, priced[block], strict=True):
        point["misaligned_ms"] = kept["misaligned_ms"]
    return block, fits[block][0], fits[block][1], {str(b): fits[b][2] for b in fits if b}


def candidate_blocks(step: int | None) -> list[int]:
    """Alignments a whole network may need, coarsest first: the op curves' step, halved while
    it stays even, down to 2."""
    blocks = []
    while step and step >= 2:
        blocks.append(step)
        if step % 2:
            break
        step //= 2
    return blocks


def _residual(points: list[dict], scale: float, misalignment: float) -> float:
    """Sum of squared differences between the fitted and the measured differences (ms^2)."""
    return sum((scale * p["predicted_delta_ms"] + misalignment * p["misaligned_ms"] - p["measured_delta_ms"]) ** 2
               for p in points)


def _fit_calibration(points: list[dict]) -> tuple[float, float]:
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


class _Runner:
    """Measures (op, width) points in shuffled, interleaved rounds; saves every 30 s; stops
    at the deadline. A point already measured in a round is not measured again."""

    def __init__(self, profile: Profile, backend: Backend, ops: dict[str, OpSpec], deadline: float | None,
                 seed: int, progress: bool):
        self.profile, self.backend, self.ops, self.deadline, self.seed = profile, backend, ops, deadline, seed
        self.references = _References(backend)
        self.progress = progress
        self.bar = NoBar()
        self.measured = 0
        self.last_save = time.perf_counter()
        self.phase = 0

    def rounds(self, points: list[tuple[str, int]], upto: int, protocol: TimingProtocol, total: int | None = None,
               first_round: int = 0) -> bool:
        """Bring every point to ``upto`` rounds; False when the deadline stopped it."""
        self.phase += 1
        todo = sum(max(0, upto - self.profile.rounds_done(k, w)) for k, w in points) if total is None else total
        self.bar.close()
        self.bar = progress_bar(todo, "profiling", "pt", self.progress)
        for r in range(first_round, upto):
            order = [(k, w) for k, w in points if self.profile.rounds_done(k, w) <= r]
            random.Random(self.seed * 1000 + self.phase * 100 + r).shuffle(order)
            for k, w in order:
                if self.deadline and time.perf_counter() > self.deadline:
                    return False
                if self.profile.rounds_done(k, w) > r:
                    continue
                _measure_point(self.profile, self.backend, self.ops[k], w, protocol, self.references)
                self.measured += 1
                self.bar.update(1)
                if time.perf_counter() - self.last_save > 30:
                    self.profile.save()
                    self.last_save = time.perf_counter()
        return True

    def close(self) -> None:
        self.bar.close()


def _refine_points(profile: Profile, network: str, grid: int) -> list[tuple[str, int]]:
    """On a coarse grid, a step's corner lies between an optimal width and the next grid
    width: every width in between, for every op of the slot."""
    points = set()
    for slot, info in profile.networks[network]["slots"].items():
        curve = profile.slot_curve(network, slot)
        for w in curve.optimal()[:-1]:
            i = curve.widths.index(w)
            upper = curve.widths[i + 1] if i + 1 < len(curve.widths) else w
            for between in range(w + 1, upper):
                points.update((k, between) for k in info["layers"].values())
    return sorted(points)


class _References:
    """Each op at its full width, prepared once: every point is timed against it."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.runs: dict[str, Callable[[], object]] = {}

    def __call__(self, op: OpSpec) -> Callable[[], object]:
        if op.key not in self.runs:
            self.runs[op.key] = self.backend.prepare_op(op, op.full)
        return self.runs[op.key]


def _measure_point(profile: Profile, backend: Backend, op: OpSpec, width: int, protocol: TimingProtocol,
                   references: _References) -> None:
    reference = references(op)
    run = reference if width == op.full else backend.prepare_op(op, width)
    m = backend.time(run, protocol, reference=reference)
    profile.add_round(op.key, op.to_dict(), width, m.to_dict())


def _edge_points(profile: Profile, network: str, rounds_done: int) -> list[tuple[str, int]]:
    """Op points where a slot's staircase is uncertain (see ``ambiguous_edges``): each
    ambiguous width, the width just above it, and its witness (the wider point whose noise
    limits the verdict, often not the next one), unless measured more than ``rounds_done``
    times already."""
    points = set()
    for slot, info in profile.networks[network]["slots"].items():
        curve = profile.slot_curve(network, slot)
        for w, witness in curve.ambiguous_edges():
            i = curve.widths.index(w)
            for edge_w in {*curve.widths[i:i + 2], witness}:
                for k in info["layers"].values():
                    if profile.rounds_done(k, edge_w) <= rounds_done:
                        points.add((k, edge_w))
    return sorted(points)
