"""Sweeping every slot's width on a backend, resumably, into a profile.

Order matters on noisy machines: each round visits every (op, width) point once, in a
fresh random order, so drift spreads over all widths instead of painting false steps.
After the rounds, the widths at suspected step edges (and the width just above each) get
one more interleaved round. Then the whole network is timed once, which gives the part
of its latency that no slot changes.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..modelref import resolve_model
from ..slots import SlotGraph
from .backends import Backend
from .ops import OpSpec, slot_ops
from .store import Profile
from .timing import TimingProtocol

__all__ = ["SweepResult", "grid_widths", "network_key", "profile_network"]

DEFAULT_PROTOCOL = TimingProtocol()
FULL_NETWORK_PROTOCOL = TimingProtocol(min_samples=15, max_samples=200, max_s=4.0, target_spread=0.03)


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
    protocol: TimingProtocol = DEFAULT_PROTOCOL,
    budget_minutes: float | None = None,
    seed: int = 0,
    allow_other_device: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Profile ``model_ref``'s slots on ``backend`` into ``out`` (created, extended or resumed)."""
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
    widths = {k: grid_widths(op.full, grid) for k, op in ops.items()}

    reused = sum(1 for k in ops for w in widths[k] if profile.rounds_done(k, w) >= rounds)
    todo = [[(k, w) for k in sorted(ops) for w in widths[k] if profile.rounds_done(k, w) <= r] for r in range(rounds)]
    total = sum(len(t) for t in todo)
    log(f"{key}: {len(slots)} slots, {len(ops)} distinct ops, {sum(len(v) for v in widths.values())} points x "
        f"{rounds} rounds; {total} measurements to take on {backend.name}/{backend.device} ({backend.threads} threads)")

    bar = _progress(total, progress)
    measured, last_save, complete = 0, time.perf_counter(), True
    try:
        for r, points in enumerate(todo):
            random.Random(seed * 1000 + r).shuffle(points)
            for k, w in points:
                if deadline and time.perf_counter() > deadline:
                    complete = False
                    break
                if profile.rounds_done(k, w) > r:
                    continue
                _measure_point(profile, backend, ops[k], w, protocol)
                measured += 1
                bar.update(1)
                if time.perf_counter() - last_save > 30:
                    profile.save()
                    last_save = time.perf_counter()
            if not complete:
                break
        if complete:
            edges = _edge_points(profile, key, rounds)
            if edges:
                log(f"re-measuring {len(edges)} points at suspected step edges")
                random.Random(seed * 1000 + rounds).shuffle(edges)
                for k, w in edges:
                    if deadline and time.perf_counter() > deadline:
                        complete = False
                        break
                    _measure_point(profile, backend, ops[k], w, protocol)
                    measured += 1
        if complete and "full" not in entry:
            m = backend.time(backend.prepare_model(model, size), FULL_NETWORK_PROTOCOL)
            entry["full"] = {"median_ms": m.median_ms, "spread_ms": m.iqr_ms, "noisy": m.noisy}
            touched = {}
            for s in entry["slots"].values():
                for layer, k in s["layers"].items():
                    touched[layer] = profile.curve(k).at(ops[k].full if k in ops else 10**9)
            entry["untouched_ms"] = m.median_ms - sum(touched.values())
    finally:
        bar.close()
        profile.save()
    noisy = sum(p["noisy"] for e in profile.to_dict()["ops"].values() for p in e["points"].values())
    if not complete:
        log(f"budget reached: rerun the same command to continue ({out})")
    return SweepResult(profile, key, measured, reused, complete, noisy, time.perf_counter() - start)


def _measure_point(profile: Profile, backend: Backend, op: OpSpec, width: int, protocol: TimingProtocol) -> None:
    m = backend.time(backend.prepare_op(op, width), protocol)
    profile.add_round(op.key, op.to_dict(), width, m.to_dict())


def _edge_points(profile: Profile, network: str, rounds: int) -> list[tuple[str, int]]:
    """Every op point at a suspected edge of a slot's staircase, and the width just above it."""
    points = set()
    for slot, info in profile.networks[network]["slots"].items():
        curve = profile.slot_curve(network, slot)
        for w in curve.optimal()[:-1]:
            i = curve.widths.index(w)
            for edge_w in curve.widths[i:i + 2]:
                for k in info["layers"].values():
                    if profile.rounds_done(k, edge_w) <= rounds:
                        points.add((k, edge_w))
    return sorted(points)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="pt", desc="profiling", dynamic_ncols=True)
