"""Sweeping every slot's width on a backend, resumably, into a profile.

Order matters on noisy machines: each round visits every (op, width) point once, in a
fresh random order, so drift spreads over all widths instead of painting false steps,
and every point is timed block by block against its op at full width, so that what drift
remains cancels in the ratio (see ``timing.measure``).
The rounds cover the lattice, every ``grid``-th width: the steps of CPU runtimes fall on
multiples of their channel block (8 or 16), so the lattice holds every step's top there.
On a coarser grid than a device's steps, one probe in each gap below a step's edge finds
a top off the lattice, and only such gaps are swept width by width. Then the widths whose
verdict is uncertain (``Steps.uncertain``) get one to three more interleaved rounds with
more samples (``timing.TIMINGS``), stopping once none is left.
Then the whole network is timed once, and a few students of random widths against it,
which calibrates the prediction (see ``profile.calibration``).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..errors import StaircaseError
from ..modelref import resolve_model
from ..progress import NoBar, progress_bar
from ..slots import Slot, SlotGraph
from .backends import Backend
from .calibration import CALIBRATION_VERSION, calibrate
from .ops import OpSpec, slot_ops
from .steps import DEFAULT_GRID
from .store import FullTime, NetworkEntry, Profile, SlotEntry, network_key
from .timing import TIMINGS, Timing, TimingProtocol

__all__ = ["SweepResult", "SweepRunner", "grid_widths", "profile_network", "refine_and_edges"]


@dataclass
class SweepResult:
    profile: Profile
    network: str
    measured: int  # points measured in this run
    reused: int  # points found in the profile already
    complete: bool
    noisy_points: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase of this run


class Phases(dict):
    """Seconds spent per phase of a sweep (lattice, probes, refine, uncertain, whole network,
    calibration), added up as they run."""

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - began


def grid_widths(full: int, grid: int) -> list[int]:
    """Widths swept for a slot of ``full`` channels: every ``grid``-th, plus 1 and ``full``
    (1 prices the narrowest designs)."""
    return sorted({1, full, *range(grid, full + 1, grid)})


def profile_network(
    model_ref: str,
    backend: Backend,
    out: str | Path,
    *,
    input_size: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    include_all: bool = False,
    grid: int = DEFAULT_GRID,
    rounds: int = 1,
    timing: str = "standard",
    calibration_students: int = 12,
    recalibrate: bool = False,
    budget_minutes: float | None = None,
    seed: int = 0,
    allow_other_device: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Profile ``model_ref``'s slots on ``backend`` into ``out`` (created, extended or resumed);
    ``input_size`` and ``num_classes`` for models that do not declare them.

    ``recalibrate`` times the full network and the calibration students again and refits,
    keeping the op measurements: for a profile whose whole-network timings were taken while
    the machine was disturbed (its full-network time flagged noisy, or predictions off the
    same way for every student)."""
    if grid < 1 or rounds < 1:
        raise StaircaseError(f"--grid ({grid}) and --rounds ({rounds}) must be at least 1")
    if timing not in TIMINGS:
        raise StaircaseError(f"--timing {timing!r} is not one of {', '.join(TIMINGS)}")
    preset = TIMINGS[timing]
    start = time.perf_counter()
    resolved = resolve_model(model_ref, num_classes, input_size)
    model, size = resolved.model, resolved.architecture.input_size
    slots = SlotGraph(copy.deepcopy(model), size).selected(include_all)
    profile = _open_profile(Path(out), backend, preset.point, allow_other_device, log)
    key = network_key(model_ref if resolved.spec is None else resolved.architecture.name, size)
    ops = _register_network(profile, key, model_ref, model, size, slots, include_all, grid, recalibrate)
    widths = {k: grid_widths(op.full, grid) for k, op in ops.items()}
    reused = sum(1 for k in ops for w in widths[k] if profile.rounds_done(k, w) >= rounds)
    total = sum(max(0, rounds - profile.rounds_done(k, w)) for k in ops for w in widths[k])
    log(f"{key}: {len(slots)} slots, {len(ops)} distinct ops, {sum(len(v) for v in widths.values())} points x "
        f"{rounds} round{'s' if rounds > 1 else ''}{f' (every {grid} widths)' if grid > 1 else ''}; "
        f"{total} measurements to take on {backend.name}/{backend.device} ({backend.threads} threads)")
    deadline = start + budget_minutes * 60 if budget_minutes else None
    runner = SweepRunner(profile, backend, ops, deadline, seed, progress)
    phases = Phases()
    try:
        with phases.timed("lattice"):
            complete = runner.rounds([(k, w) for k in sorted(ops) for w in widths[k]], rounds, preset.point, total)
        complete = complete and refine_and_edges(runner, profile, key, grid, rounds, preset, log, phases)
        if complete:
            _time_whole_network(profile, key, backend, model, size, preset, calibration_students, seed, log, phases)
    finally:
        runner.close()
        profile.save()
    noisy = sum(sum(profile.curve(k).noisy) for k in profile.ops)  # cached per op
    if not complete:
        log(f"budget reached: rerun the same command to continue ({out})")
    return SweepResult(profile, key, runner.measured, reused, complete, noisy, time.perf_counter() - start, phases)


def _open_profile(out: Path, backend: Backend, protocol: TimingProtocol, allow_other_device: bool,
                  log: Callable[[str], None]) -> Profile:
    """The profile at ``out`` (replaying a killed sweep's journal), or a new one."""
    if not (out.exists() or Path(str(out) + ".journal").exists()):
        return Profile(out, backend.fingerprint(), protocol.to_dict())
    profile = Profile.load(out) if out.exists() else Profile(out, backend.fingerprint(), protocol.to_dict())
    if not out.exists():
        profile.replay_journal()
    profile.check_fingerprint(backend.fingerprint(), allow_other_device)
    log(f"extending {out} ({sum(len(e['rounds']) for e in profile.ops.values())} points already measured)")
    return profile


def _register_network(profile: Profile, key: str, model_ref: str, model: nn.Module, size, slots: list[Slot],
                      include_all: bool, grid: int, recalibrate: bool) -> dict[str, OpSpec]:
    """Write the network's entry (its slots and their layers' op keys) and return its ops."""
    entry = profile.networks.get(key) or NetworkEntry(model_ref, list(size))
    entry.model, entry.input_size, entry.include_all, entry.grid = model_ref, list(size), include_all, grid
    ops: dict[str, OpSpec] = {}
    for slot in slots:
        layers = {}
        for layer, op in slot_ops(model, slot):
            if op.key not in ops or op.full > ops[op.key].full:  # a shared op is swept to its widest slot
                ops[op.key] = op
            layers[layer] = op.key
        entry.slots[slot.name] = SlotEntry(slot.width, layers)
    if recalibrate:
        entry.full = entry.calibration = None
    profile.networks[key] = entry
    return ops


def refine_and_edges(runner: SweepRunner, profile: Profile, key: str, grid: int, rounds: int, preset: Timing,
                      log: Callable[[str], None], phases: Phases | None = None) -> bool:
    """After the lattice's rounds: on a coarse grid, one probe inside each gap a step's top
    could hide in, and every width of the gaps whose probe is usable; then the widths whose
    verdict is uncertain, until none is or the passes run out. False when the deadline
    stopped it."""
    entry = profile.network(key)
    phases = Phases() if phases is None else phases
    if grid > 1 and not entry.refined:
        # the probes first: which gaps are swept depends on what they find
        for phase, points_of, says in (("probes", _probe_points, "probing {} points between grid widths, below "
                                                                  "each step's edge"),
                                       ("refine", _refine_points, "refining {} points in the gaps whose probe "
                                                                  "found a step's top")):
            points = points_of(profile, key, grid)
            if points:
                log(says.format(len(points)))
            with phases.timed(phase):
                if not runner.rounds(points, rounds, preset.point):
                    return False
        entry.refined = True
    for extra in range(preset.edge_passes if not entry.edges_done else 0):
        edges = _uncertain_points(profile, key, rounds + extra)
        if not edges:
            break
        log(f"re-measuring {len(edges)} points whose verdict is uncertain (pass {extra + 1}/{preset.edge_passes})")
        with phases.timed("uncertain"):
            if not runner.rounds(edges, rounds + extra + 1, preset.edge, first_round=rounds + extra):
                return False
    entry.edges_done = True
    return True


def _time_whole_network(profile: Profile, key: str, backend: Backend, model: nn.Module, size, preset: Timing,
                        calibration_students: int, seed: int, log: Callable[[str], None], phases: Phases) -> None:
    """The full network's time as deployed, then the calibration, unless the profile has them."""
    entry = profile.network(key)
    if entry.full is None:
        with phases.timed("whole network"):
            m = backend.time(backend.prepare_model(model, size), preset.network)
        entry.full = FullTime(m.median_ms, m.iqr_ms, m.noisy)
    if calibration_students and (entry.calibration is None or entry.calibration.version != CALIBRATION_VERSION):
        with phases.timed("calibration"):
            entry.calibration = calibrate(profile, key, backend, model, size, calibration_students, seed,
                                          preset.calibration, log)


class SweepRunner:
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


def _probe_points(profile: Profile, network: str, grid: int) -> list[tuple[str, int]]:
    """For every op of a slot, one width in the middle of each grid gap a step's top could
    hide in: above a usable grid width whose next grid width is not usable (an edge lies
    between them)."""
    points = set()
    for slot, info in profile.network(network).slots.items():
        usable = set(profile.slot_curve(network, slot).optimal())
        for u in usable:
            if u % grid == 0 and u + grid <= info.width and u + grid not in usable:
                points.update((k, u + grid // 2) for k in info.layers.values())
    return sorted(points)


def _refine_points(profile: Profile, network: str, grid: int) -> list[tuple[str, int]]:
    """Every width of each grid gap holding a usable width: a step's top lies off the grid."""
    points = set()
    for slot, info in profile.network(network).slots.items():
        for u in profile.slot_curve(network, slot).optimal():
            if u % grid and u < info.width:
                low = u - u % grid
                points.update((k, w) for w in range(low + 1, min(low + grid, info.width))
                              for k in info.layers.values())
    return sorted(points)


def _uncertain_points(profile: Profile, network: str, rounds_done: int) -> list[tuple[str, int]]:
    """Op points whose verdict more samples could flip (``Steps.uncertain``: the step test's
    lattice, usable widths nearly matched by a wider one and the wider one, spikes), unless
    measured more than ``rounds_done`` times already."""
    points = set()
    for slot, info in profile.network(network).slots.items():
        for w in profile.slot_curve(network, slot).steps().uncertain:
            for k in info.layers.values():
                if profile.rounds_done(k, w) <= rounds_done:
                    points.add((k, w))
    return sorted(points)
