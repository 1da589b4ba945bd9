"""Are the spikes in a profile real kernel choices or disturbances of the machine?

Profiles torchvision's resnet18 at 3x64x64 (ONNX Runtime, the default settings), then
reads every slot twice: from the first round of each lattice width alone (what the sweep
saw before it measured anything again) and from the finished profile. Every width flagged
a spike in either is timed again in a fresh order, with its two lattice neighbours, each
op beside its full width (the profile's ruler) with the careful protocol, over several
interleaved rounds. A spike that is still clearly slower than both neighbours then is a
property of the runtime at that width; one that is gone was the machine.

    python scripts/study_spikes.py --threads 2 [--rounds 7]

Writes docs/study_spikes.json; docs/profiling.md quotes it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

from staircase.files import atomic_write_json
from staircase.profile.backends import get_backend
from staircase.profile.ops import OpSpec
from staircase.profile.steps import SPIKE_REL, read_steps
from staircase.profile.store import Profile, summarize_rounds
from staircase.profile.sweep import profile_network
from staircase.profile.timing import TIMINGS

ROOT = Path(__file__).resolve().parents[1]
MODEL, INPUT, CLASSES = "torchvision.models:resnet18", (3, 64, 64), 10


def first_look_spikes(prof: Profile, network: str) -> dict[str, list[int]]:
    """Per slot, the spikes read from each lattice width's first round only."""
    entry = prof.network(network)
    out = {}
    for slot, info in entry.slots.items():
        total: dict[int, list[float]] = {}
        for key in info.layers.values():
            first = {w: rounds[:1] for w, rounds in prof.ops[key]["rounds"].items()}
            for w, s in summarize_rounds(first).items():
                total.setdefault(w, []).append((s["median_ms"], s["stderr_ms"]))
        widths = sorted(w for w, v in total.items() if len(v) == len(info.layers))
        times = [sum(t for t, _ in total[w]) for w in widths]
        errors = [sum(e * e for _, e in total[w]) ** 0.5 for w in widths]
        out[slot] = read_steps(widths, times, errors, lattice=entry.grid).spikes
    return out


def retime(prof: Profile, network: str, slot: str, width: int, backend, rounds: int, seed: int) -> dict:
    """The slot's time at ``width`` and its two lattice neighbours, over ``rounds`` rounds in
    a fresh order: each op's ratio to its full width times its profile reference, summed."""
    entry = prof.network(network)
    grid = entry.grid
    widths = [width - grid, width, width + grid]
    protocol = TIMINGS["careful"].point
    ops = [OpSpec.from_dict(prof.ops[k]["op"]) for k in entry.slots[slot].layers.values()]
    refs = {op.key: backend.prepare_op(op, op.full) for op in ops}
    runs = {(op.key, w): backend.prepare_op(op, w) for op in ops for w in widths}
    per_width: dict[int, list[float]] = {w: [] for w in widths}
    rng = random.Random(seed)
    for _ in range(rounds):
        order = list(runs)
        rng.shuffle(order)
        ratios = {}
        for key, w in order:
            ratios[key, w] = backend.time(runs[key, w], protocol, reference=refs[key]).ratio
        for w in widths:
            per_width[w].append(sum(ratios[op.key, w] * prof.curve(op.key).median_ms[-1] for op in ops))
    med = {w: statistics.median(v) for w, v in per_width.items()}
    higher = max(med[widths[0]], med[widths[2]])
    return {"slot": slot, "width": width, "ms": {str(w): round(m, 5) for w, m in med.items()},
            "excess": round(med[width] / higher - 1, 4), "persists": med[width] > (1 + SPIKE_REL) * higher}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "docs" / "study_spikes.json"))
    args = ap.parse_args()
    backend = get_backend("onnxruntime", threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        r = profile_network(MODEL, backend, Path(tmp) / "p.json", input_size=INPUT, num_classes=CLASSES,
                            progress=False, log=lambda m: None)
        prof, net = r.profile, r.network
        first = first_look_spikes(prof, net)
        final = {slot: prof.slot_curve(net, slot).steps().spikes for slot in prof.network(net).slots}
        rows = []
        for slot in prof.network(net).slots:
            full = prof.network(net).slots[slot].width
            for width in sorted(set(first[slot]) | set(final[slot])):
                if width + prof.network(net).grid > full:
                    continue
                row = retime(prof, net, slot, width, backend, args.rounds, seed=width)
                row.update(first_look=width in first[slot], after_profile=width in final[slot])
                rows.append(row)
                print(row, flush=True)
    summary = {"model": f"{MODEL}@{'x'.join(map(str, INPUT))}", "cpu": backend.fingerprint()["cpu"],
               "threads": args.threads, "rounds": args.rounds,
               "first_look": sum(r["first_look"] for r in rows), "after_profile": sum(r["after_profile"] for r in rows),
               "persist": sum(r["persists"] for r in rows),
               "persist_of_after_profile": sum(r["persists"] for r in rows if r["after_profile"]), "spikes": rows}
    atomic_write_json(Path(args.out), summary)
    print({k: v for k, v in summary.items() if k != "spikes"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
