"""Which channel alignment do whole networks pay for, and how does the cost scale?

The prediction adds a *misalignment* cost for slots whose width is off an alignment (see
``staircase.profile.prediction``). This script measures students of a model beside the full
network (the median ratio of 4 adjacent pairs), of six kinds: widths drawn at random over
25-100% of each slot, narrow ones (5-40%), the same rounded to multiples of 16, 8 and 4,
and a mix. Then, for each candidate alignment and two ways of pricing an off-alignment
slot (the full-width time of its layers, or their time at its width), it fits

    measured difference = scale * summed op differences + misalignment * misaligned ms

and reports the leave-one-out error relative to the student's measured time. Then it asks
how the calibration's 12 students should be mixed: it refits alignment 4 on many draws of
12 of the measured students for each mix and reports the spread of the fitted
misalignment cost and the error on the random and mixed students left out. Usage:

    python scripts/study_alignment.py --profile profiles/cpu-onnxruntime.json --model wrn_40_2 --students 48

Writes docs/study_alignment-<model>.json (the measurements, to refit without measuring
again) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import numpy as np

from staircase.files import atomic_write_json
from staircase.modelref import resolve_model
from staircase.profile.backends import backend_of
from staircase.profile.calibration import fit_calibration
from staircase.profile.prediction import LatencyModel
from staircase.profile.store import Profile, network_key
from staircase.profile.timing import TIMINGS, time_relative
from staircase.slots import make_student
from staircase.table import format_table

ROOT = Path(__file__).resolve().parents[1]

KINDS = ("random", "narrow", "x16", "x8", "x4", "mixed")


def draw(slots: dict[str, int], kind: str, rng: random.Random) -> dict[str, int]:
    """Random widths of one kind for slots of the given full widths."""
    low, high = (0.05, 0.4) if kind == "narrow" else (0.25, 1.0)
    widths = {n: rng.randint(max(1, round(low * full)), max(1, round(high * full))) for n, full in slots.items()}
    if kind.startswith("x"):
        q = int(kind[1:])
        widths = {n: min(slots[n], max(q, q * round(w / q))) for n, w in widths.items()}
    if kind == "mixed":
        widths = {n: min(slots[n], max(16, 16 * round(w / 16))) if rng.random() < 0.5 else w
                  for n, w in widths.items()}
    return widths


def off_alignment_ms(latency: LatencyModel, widths: dict, block: int, at_width: bool) -> float:
    """The prediction's own feature (``misaligned_ms``, at the width), or the same slots
    priced at their full-width time, the alternative this study compares it with."""
    if at_width:
        return latency.misaligned_ms(widths, block)
    slots = latency.entry.slots
    return sum(latency.profile.curve(k).at(slots[n].width)
               for n, w in widths.items() if w != slots[n].width and w % block for k in slots[n].layers.values())


def leave_one_out(x: np.ndarray, y: np.ndarray, totals: np.ndarray) -> list[float]:
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        coef, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
        errors.append(abs(x[i] @ coef - y[i]) / totals[i])
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=str(ROOT / "profiles" / "cpu-onnxruntime.json"))
    ap.add_argument("--model", default="wrn_40_2")
    ap.add_argument("--students", type=int, default=48)
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args()
    profile = Profile.load(args.profile)
    resolved = resolve_model(args.model)
    size = resolved.architecture.input_size
    network = network_key(resolved.architecture.name, size)
    latency = LatencyModel(profile, network)
    slots, teacher_ms = latency.slots, latency.teacher_ms
    path = Path(args.out) / f"study_alignment-{args.model}.json"
    if path.exists():
        rows = json.loads(path.read_text())["students"]
        print(f"refitting the {len(rows)} students measured in {path}")
    else:
        backend = backend_of(profile)
        model = resolved.model.eval()
        full = backend.prepare_model(model, size, paired=True)
        rng = random.Random(11)
        rows = []
        for i in range(args.students):
            kind = KINDS[i % len(KINDS)]
            widths = draw(slots, kind, rng)
            run = backend.prepare_model(make_student(model, widths, size).eval(), size, paired=True)
            ratio = time_relative(backend, run, full, pairs=4, protocol=TIMINGS["standard"].calibration).ratio
            rows.append({"kind": kind, "widths": widths, "ratio": ratio})
            print(f"{i + 1}/{args.students} {kind}: {ratio:.3f} of the full network", flush=True)
        atomic_write_json(path, {"profile": args.profile, "model": args.model, "students": rows})
    y = np.array([(r["ratio"] - 1) * teacher_ms for r in rows])
    totals = y + teacher_ms
    raw = np.array([latency.raw_delta(r["widths"]) for r in rows])
    table = [["none", "-", *_summary(leave_one_out(raw[:, None], y, totals))]]
    for block in (16, 8, 4, 2):
        for at_width in (False, True):
            feature = np.array([off_alignment_ms(latency, r["widths"], block, at_width) for r in rows])
            errors = leave_one_out(np.stack([raw, feature], 1), y, totals)
            table.append([block, "at its width" if at_width else "full width", *_summary(errors)])
    print(format_table(["alignment", "off-alignment slot priced at", "median error", "worst error"], table))
    kinds = [r["kind"] for r in rows]
    feature = np.array([latency.misaligned_ms(r["widths"], 4) for r in rows])
    print()
    print(format_table(["calibration mix (of 12)", "misalignment p10-p90", "held-out median error",
                        "held-out worst error (median of draws)", "(p90 of draws)"],
                       [[name, *mix_spread(mix, kinds, raw, feature, y, totals)] for name, mix in MIXES.items()]))
    return 0


# how 12 calibration students of the kinds above can be mixed: a quarter random, or half
# random, wide and narrow (what the calibration does)
MIXES = {"1/4 random": {"random": 2, "narrow": 1, "x16": 3, "x8": 3, "x4": 3},
         "1/2 random": {"random": 3, "narrow": 3, "x16": 2, "x8": 2, "x4": 2}}


def mix_spread(mix: dict[str, int], kinds: list[str], raw: np.ndarray, feature: np.ndarray, y: np.ndarray,
               totals: np.ndarray, draws: int = 400) -> list[str]:
    """Refit (scale, misalignment) at alignment 4, as the calibration does, on ``draws`` random draws of students of
    the kinds in ``mix``; the spread of the misalignment cost and the errors on the random
    and mixed students not drawn."""
    rng = random.Random(0)
    by_kind: dict[str, list[int]] = {}
    for i, kind in enumerate(kinds):
        by_kind.setdefault(kind, []).append(i)
    costs, medians, worsts = [], [], []
    for _ in range(draws):
        fit = [i for kind, n in mix.items() for i in rng.sample(by_kind[kind], n)]
        # the calibration's own fit (non-negative cost, clamped scale), not a plain least squares
        scale, cost = fit_calibration([{"predicted_delta_ms": raw[i], "misaligned_ms": feature[i],
                                         "measured_delta_ms": y[i]} for i in fit])
        costs.append(cost)
        held = [i for i in by_kind["random"] + by_kind["mixed"] if i not in fit]
        errors = [abs(raw[i] * scale + feature[i] * cost - y[i]) / totals[i] for i in held]
        medians.append(statistics.median(errors))
        worsts.append(max(errors))
    q = statistics.quantiles
    return [f"{q(costs, n=10)[0]:.3f}-{q(costs, n=10)[-1]:.3f}", f"{statistics.median(medians):.1%}",
            f"{statistics.median(worsts):.1%}", f"{q(worsts, n=10)[-1]:.1%}"]


def _summary(errors: list[float]) -> list[str]:
    return [f"{statistics.median(errors):.1%}", f"{max(errors):.1%}"]


if __name__ == "__main__":
    raise SystemExit(main())
