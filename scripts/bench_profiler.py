"""Benchmark of the profiler (issue 3): reproducibility, cost, prediction error, step sizes.

Every figure is measured by this script and written to docs/bench_profiler.json and
docs/BENCH_PROFILER.md. Usage:

    python scripts/bench_profiler.py --threads 2 [--parts 1 2 3 4] [--profiles profiles]

Reproducibility and step sizes use the first model (wrn_40_2); cost and prediction every
model. With ``--profiles DIR`` the onnxruntime profile of every model and the torch profile
of the first are kept there (cpu-onnxruntime.json, cpu-torch.json): the shipped profiles.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from staircase.files import atomic_write_json, atomic_write_text
from staircase.modelref import resolve_model
from staircase.profile.backends import get_backend
from staircase.profile.prediction import LatencyModel
from staircase.profile.steps import snap, step_size
from staircase.profile.sweep import profile_network
from staircase.profile.timing import TIMINGS, time_relative
from staircase.slots import make_student
from staircase.table import format_table

ROOT = Path(__file__).resolve().parents[1]

# full sweeps at 224x224 cost ~4x a grid of 4 that is refined around the steps
GRIDS = {"resnet34": 4, "resnet18": 4, "densenet121": 4, "mobilenet_v2": 4}


def _sweep(model, backend, path, grid=None):
    grid = grid or GRIDS.get(model, 1)
    return profile_network(model, backend, path, grid=grid, progress=False, log=lambda m: None)


def reproducibility(model, backend, paths):
    """Profile twice from scratch; share of (slot, fraction) whose nearest snap agrees, and
    how many slots found steps at all (agreement on full width alone would be trivial).
    The same two profiles are also compared with every width tested at one threshold (no
    period): what the network's period buys, on the same measurements."""
    runs = [_sweep(model, backend, p) for p in paths]
    agreement, with_steps, disagreements = _agreement(runs, with_period=True)
    without, _, _ = _agreement(runs, with_period=False)
    return {"model": model, "agreement": agreement, "agreement_without_period": without,
            "periods": [r.profile.period(r.network) for r in runs],
            "comparisons": 3 * len(runs[0].profile.network(runs[0].network).slots),
            "slots_with_steps": with_steps, "slots": len(runs[0].profile.network(runs[0].network).slots),
            "seconds": [round(r.seconds, 1) for r in runs], "disagreements": disagreements}, runs[0]


def _agreement(runs, with_period: bool):
    """(share of agreeing snaps, slots with steps in each run, the disagreements: slot,
    width, its snap and the optimal widths in each run)."""
    agree = total = 0
    with_steps = [0] * len(runs)
    disagreements = []
    for slot in runs[0].profile.network(runs[0].network).slots:
        curves = [r.profile.slot_curve(r.network, slot) for r in runs]
        optimal = [(c if with_period else dataclasses.replace(c, period=None)).optimal() for c in curves]
        for i, opt in enumerate(optimal):
            with_steps[i] += len(opt) > 1
        full = curves[0].widths[-1]
        for frac in (0.3, 0.5, 0.7):
            w = max(1, round(full * frac))
            snapped = [snap(w, opt) for opt in optimal]
            agree += snapped[0] == snapped[1]
            total += 1
            if snapped[0] != snapped[1]:
                disagreements.append({"slot": slot, "width": w, "snapped": snapped, "optimal": optimal})
    return agree / total, with_steps, disagreements


def _keep(result, kept: Path):
    """Copy one finished network (its ops and entry) into the kept profile file."""
    from staircase.profile.store import Profile

    prof = Profile.load(kept) if kept.exists() else Profile(kept, result.profile.fingerprint, result.profile.protocol)
    prof.check_fingerprint(result.profile.fingerprint)
    for key in {k for s in result.profile.network(result.network).slots.values() for k in s.layers.values()}:
        prof.ops[key] = result.profile.ops[key]
    prof.networks[result.network] = result.profile.networks[result.network]
    prof.save()


def naive_cost_seconds(result, repeats=100):
    """What a naive sweep would cost: every width of each slot separately (no shared ops, no
    grid), 100 fixed runs per width; from the measured medians, preparation not counted."""
    prof, net = result.profile, result.network
    total = 0.0
    for info in prof.network(net).slots.values():
        for key in info.layers.values():
            curve = prof.curve(key)
            total += sum(repeats * curve.at(w) / 1e3 for w in range(1, info.width + 1))
    return total


def prediction_error(model, backend, result, n=20, n_snapped=10, seed=0, passes=5):
    """Predicted vs measured end to end for n random-width students and n_snapped students
    snapped up to the staircase (what the designer builds), measured in interleaved passes.

    In each pass every student is timed beside the full network, block by block
    (``time_relative``, both sessions prepared ``paired``), and the full network once more as
    deployed (threads spinning). Two errors per student: of its ratio to the full network
    (the median over the passes; the machine's drift since the profile was made cancels),
    and of the latency itself (predicted ms vs the ratio times the deployed full network's
    time in the same pass). How far the passes scatter (max - min over median) is the
    measurement's own noise, which bounds how well any prediction can be seen to do.

    Last, one check of the ruler: each student timed in turn with the full network, both as
    deployed, a whole measurement each (student, full, full, student: the way whole
    networks were compared before ``time_relative`` paired them). Its ratio over the paired
    one, the median over students, is how far the paired ruler moves the ratio."""
    rng = random.Random(seed)
    resolved = resolve_model(model)
    size = resolved.architecture.input_size
    prof, net = result.profile, result.network
    latency = LatencyModel(prof, net)
    slots = latency.slots
    students = []
    for i in range(n + n_snapped):
        widths = {s: rng.randint(max(1, full // 4), full) for s, full in slots.items()}
        kind = "random"
        if i >= n:
            kind = "snapped"
            widths = {s: latency.snap(s, w, "up") for s, w in widths.items()}
        students.append((kind, widths, make_student(resolved.model, widths).eval()))
    full_paired = backend.prepare_model(resolved.model.eval(), size, paired=True)
    full_deployed = backend.prepare_model(resolved.model.eval(), size)
    runs = [backend.prepare_model(model, size, paired=True) for _, _, model in students]
    protocol = TIMINGS["standard"].calibration  # the calibration's, as there
    ratios = {i: [] for i in range(len(students))}
    measured = {i: [] for i in range(len(students))}
    for _ in range(passes):  # each pass visits every student in a fresh order
        full_ms = backend.time(full_deployed, TIMINGS["standard"].network).median_ms
        order = list(range(len(students)))
        rng.shuffle(order)
        for i in order:
            ratio = time_relative(backend, runs[i], full_paired, pairs=1, protocol=protocol).ratio
            ratios[i].append(ratio)
            measured[i].append(ratio * full_ms)
    del runs, full_paired
    deployed = [_alternated_ratio(backend, backend.prepare_model(model, size), full_deployed, protocol)
                for _, _, model in students]
    full_pred = latency.predict({}).median_ms
    errors = {"random": [], "snapped": []}
    ratio_errors = {"random": [], "snapped": []}
    calibration = latency.calibration
    block = calibration.alignment
    rows = []  # per student, to see where the prediction goes wrong
    for i, (kind, widths, _) in enumerate(students):
        p = latency.predict(widths).median_ms
        m = statistics.median(measured[i])
        errors[kind].append(abs(p - m) / m)
        r = statistics.median(ratios[i])
        ratio_errors[kind].append(abs(p / full_pred - r) / r)
        rows.append({"kind": kind, "predicted_ratio": p / full_pred, "measured_ratio": r, "pass_ratios": ratios[i],
                     "pass_spread": (max(ratios[i]) - min(ratios[i])) / r, "deployed_ratio": deployed[i],
                     "off_block_slots": sum(1 for s, w in widths.items() if block and w != slots[s]
                                            and w % block)})
    return {"model": model, "students": n, "snapped_students": n_snapped, "passes": passes, "ruler": "paired",
            "median_pass_spread": statistics.median(row["pass_spread"] for row in rows),
            "deployed_over_paired": statistics.median(row["deployed_ratio"] / row["measured_ratio"] for row in rows),
            "median_abs_error": statistics.median(errors["random"]), "max_abs_error": max(errors["random"]),
            "median_ratio_error": statistics.median(ratio_errors["random"]),
            "max_ratio_error": max(ratio_errors["random"]),
            "snapped_median_abs_error": statistics.median(errors["snapped"]) if n_snapped else None,
            "snapped_max_abs_error": max(errors["snapped"]) if n_snapped else None,
            "snapped_median_ratio_error": statistics.median(ratio_errors["snapped"]) if n_snapped else None,
            "snapped_max_ratio_error": max(ratio_errors["snapped"]) if n_snapped else None,
            "calibration_scale": calibration.scale, "misalignment": calibration.misalignment,
            "block": block, "per_student": rows}


def _alternated_ratio(backend, run, reference, protocol) -> float:
    """``run`` over ``reference``, a whole measurement each in the order run, reference,
    reference, run: the mean of the two pairs' ratios (linear drift cancels)."""
    a, b, c, d = (backend.time(f, protocol).median_ms for f in (run, reference, reference, run))
    return (a / b + d / c) / 2


def step_sizes(model, backends, tmp, keep, done, grid=None):
    """Profile ``model`` on each backend (reusing ``done``, a finished onnxruntime sweep)."""
    from staircase.quantize import precisions_here

    rows = []
    for name, kw in backends:
        label = f"{name} {kw.get('precision', 'f32')}"
        try:
            be = get_backend(name, **kw)
        except Exception as exc:  # noqa: BLE001 - record and go on, like timm's benchmark
            rows.append({"backend": label, "error": str(exc)})
            continue
        if be.precision != "f32" and be.precision not in precisions_here(name):  # it would run f32 and say bf16
            rows.append({"backend": label, "error": f"this device does not compute in {be.precision}",
                         "cpu": be.device_name()})
            continue
        if name == "onnxruntime" and be.precision == "f32" and done is not None:
            r = done
        else:
            path = Path(keep or tmp) / "cpu-torch.json" if name == "torch" and keep else \
                Path(tmp) / f"steps-{name}-{be.precision}.json"
            for stale in (path, Path(str(path) + ".journal")):  # measured afresh
                stale.unlink(missing_ok=True)
            r = _sweep(model, be, path, grid)
        sizes = [step_size(r.profile.slot_curve(r.network, s).optimal())
                 for s in r.profile.network(r.network).slots]
        sizes = [s for s in sizes if s]
        rows.append({"backend": f"{name} {be.precision}", "median_step": statistics.median(sizes) if sizes else None,
                     "slots_with_steps": len(sizes), "seconds": round(r.seconds, 1), "cpu": be.device_name(),
                     "grid": grid or GRIDS.get(model, 1), "model": model})
    return rows


def _earlier(out: Path) -> dict:
    path = out / "bench_profiler.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["wrn_40_2", "resnet34"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", nargs="+", type=int, default=[1, 2, 3, 4])
    ap.add_argument("--students", type=int, default=20)
    ap.add_argument("--passes", type=int, default=5, help="measurements of each student in part 3")
    ap.add_argument("--profiles", default=None, help="keep the profiles in this folder (e.g. profiles)")
    ap.add_argument("--repro-profiles", default=None,
                    help="keep part 1's two profiles in this folder (default: a temporary one)")
    ap.add_argument("--steps-grid", type=int, default=None,
                    help="part 4's sweep grid (default: the model's, as parts 1-3)")
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args()
    backend = get_backend("onnxruntime", threads=args.threads)
    report = {"threads": args.threads, "backend": backend.fingerprint(), "repro": [], "cost": [], "prediction": [],
              "steps": [], "grids": {m: GRIDS.get(m, 1) for m in args.models}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(args.profiles or tmp) / "cpu-onnxruntime.json"
        first_model, first = args.models[0], None
        earlier = _earlier(Path(args.out))
        if 1 in args.parts:  # from scratch, in temporary files; the first run replaces the kept network
            repro_dir = Path(args.repro_profiles or tmp)
            repro_dir.mkdir(parents=True, exist_ok=True)
            repro, first = reproducibility(first_model, backend, [repro_dir / "repro-first.json",
                                                                  repro_dir / "repro-second.json"])
            _keep(first, kept)
            report["repro"].append(repro)
            print(f"[1] {first_model}: snapped widths agree {repro['agreement']:.1%} over {repro['comparisons']} "
                  f"(periods {repro['periods']}; without a period {repro['agreement_without_period']:.1%})", flush=True)
        results = {}
        for model in args.models:
            if model == first_model and first is not None:
                results[model] = first
            elif 2 in args.parts or 3 in args.parts:
                results[model] = _sweep(model, backend, kept)
            if 2 in args.parts and results[model].measured == 0:  # reused: keep the run that measured it
                report["cost"] += [c for c in earlier.get("cost", []) if c["model"] == model]
            elif 2 in args.parts:
                r = results[model]
                naive = naive_cost_seconds(r)
                report["cost"].append({"model": model, "grid": GRIDS.get(model, 1), "profile_s": r.seconds,
                                       "measurements": r.measured, "naive_estimate_s": naive,
                                       "ratio": naive / r.seconds})
                print(f"[2] {model}: {r.seconds:.0f} s ({r.measured} measurements); naive sweep estimated "
                      f"{naive:.0f} s", flush=True)
            if 3 in args.parts:
                r = results[model]
                pred = prediction_error(model, backend, r, args.students, passes=args.passes)
                report["prediction"].append(pred)
                print(f"[3] {model}: median |ratio error| {pred['median_ratio_error']:.1%}, worst "
                      f"{pred['max_ratio_error']:.1%} (ms: {pred['median_abs_error']:.1%} / {pred['max_abs_error']:.1%}); "
                      f"snapped {pred['snapped_median_ratio_error']:.1%} / {pred['snapped_max_ratio_error']:.1%}; "
                      f"pass spread {pred['median_pass_spread']:.1%}; deployed / paired {pred['deployed_over_paired']:.3f}",
                      flush=True)
        if 4 in args.parts:
            backends = [("torch", {"threads": args.threads}), ("onnxruntime", {"threads": args.threads}),
                        ("openvino", {"threads": args.threads, "precision": "f32"}),
                        ("openvino", {"threads": args.threads, "precision": "bf16"}),
                        ("onnxruntime", {"threads": args.threads, "precision": "int8"}),
                        ("openvino", {"threads": args.threads, "precision": "int8"})]
            report["steps"] = step_sizes(first_model, backends, tmp, args.profiles,
                                         None if args.steps_grid else results.get(first_model), args.steps_grid)
            # a precision this device lacks keeps the figure an earlier run measured where it has it
            before = {x["backend"]: {"cpu": earlier.get("backend", {}).get("cpu"), **x}
                      for x in earlier.get("steps", []) if "error" not in x}
            report["steps"] = [before.get(x["backend"], x) if "error" in x else x for x in report["steps"]]
            for row in report["steps"]:
                print(f"[4] {row}", flush=True)
    report["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    for key in ("repro", "cost", "prediction", "steps"):
        for row in report[key]:
            row.setdefault("cpu", report["backend"]["cpu"])
    if earlier:  # parts not run this time keep their earlier figures
        for part, key in ((1, "repro"), (2, "cost"), (3, "prediction"), (4, "steps")):
            if part not in args.parts and earlier.get(key):
                # kept rows say which machine measured them
                report[key] = [{"cpu": earlier.get("backend", {}).get("cpu"), **x} for x in earlier[key]]
    atomic_write_json(out / "bench_profiler.json", report)
    atomic_write_text(out / "BENCH_PROFILER.md", render(report))
    print(f"wrote {out / 'BENCH_PROFILER.md'}")
    return 0


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def render(r: dict) -> str:
    fp = r["backend"]
    lines = ["# Profiler benchmark", "",
             f"Written by `scripts/bench_profiler.py`; its last run on {fp['cpu']} ({fp['cores']} cores), "
             f"{fp['backend']} {fp['backend_version']}, {r['threads']} threads, batch {fp['batch']}, {fp['precision']}.",
             f"Total wall time {r['seconds']:.0f} s.", ""]
    machines = {x["cpu"] for key in ("repro", "cost", "prediction", "steps") for x in r.get(key, []) if x.get("cpu")}
    if len(machines) > 1:
        lines += ["The rows come from more than one machine (a part not run again keeps its earlier rows; "
                  "part 4 keeps a precision this machine lacks): "
                  + "; ".join(f"part {i} on {', '.join(sorted({x['cpu'] for x in r[key] if x.get('cpu')}))}"
                              for i, key in enumerate(("repro", "cost", "prediction", "steps"), 1)
                              if any(x.get("cpu") for x in r.get(key, []))) + ".", ""]
    if r["repro"]:
        lines += ["## 1. Reproducibility (two profiles from scratch; nearest snap of 0.3/0.5/0.7 x width)", "",
                  format_table(["model", "agreement", "without a period", "period (each run)", "comparisons",
                                "slots with steps (each run)", "profile s (each)"],
                               [[x["model"], f"{x['agreement']:.1%}", _percent(x.get("agreement_without_period")),
                                 str(x.get("periods", "-")), x["comparisons"],
                                 f"{x.get('slots_with_steps')} of {x.get('slots')}", str(x["seconds"])]
                                for x in r["repro"]]), "",
                  "Without a period: the same two profiles, every width tested at one threshold "
                  "(3 standard errors) instead of less on the network's period and more off it.", ""]
    if r["cost"]:
        lines += ["## 2. Cost (naive = every slot separately, 100 fixed runs per width, no reuse; estimated from the measured medians, preparation excluded)", "",
                  format_table(["model", "grid", "measurements", "profile s", "naive s (est.)", "naive / ours"],
                               [[x["model"], x["grid"], x["measurements"], round(x["profile_s"], 1),
                                 round(x["naive_estimate_s"], 1), round(x["ratio"], 2)] for x in r["cost"]]), ""]
    if r["prediction"]:
        ruler, ms_basis = _ruler(r["prediction"])
        lines += ["## 3. Prediction vs end-to-end measurement", "",
                  "Random widths: 25-100% of each slot, drawn independently. Snapped: such widths snapped up to "
                  "the staircase (what the designer builds). Other students than the profile's calibration ones; "
                  f"{_passes(r['prediction'])} interleaved passes, each student timed beside the full network "
                  f"{ruler}, and the median over the passes. "
                  "|ratio error| compares the latency relative to the full network timed beside it (the "
                  "machine's drift since profiling cancels); |error| compares milliseconds"
                  f"{ms_basis}. Pass spread: "
                  "how far one student's passes scatter (max - min over median; the median over students), "
                  "the measurement's own noise. Deployed / paired: the ratio timed in turn, student and "
                  "full network in turn with threads spinning as deployed, over the paired one (the median "
                  "over students): what the ruler's pairing moves.", "",
                  format_table(["model", "widths", "students", "median |error|", "worst |error|",
                                "median |ratio error|", "worst |ratio error|", "pass spread", "deployed / paired",
                                "calibration (scale, misalignment, block)"],
                               [row for x in r["prediction"] for row in _prediction_rows(x)]), ""]
    if r["steps"]:
        models = sorted({x.get("model", "wrn_40_2") for x in r["steps"]})
        lines += [f"## 4. Step size per backend and precision ({', '.join(models)}; the median over slots of the "
                  "gap between optimal widths)", "",
                  "At int8 each op is quantised to QDQ first (ONNX Runtime's INT8 convolution; OpenVINO's INT8 "
                  "path), as `staircase profile --precision int8` does.", "",
                  format_table(["backend", "median step", "slots with steps", "profile s", "grid", "device"],
                               [[x["backend"], x.get("median_step", "-"), x.get("slots_with_steps", "-"),
                                 x.get("seconds", x.get("error")), x.get("grid", "-"), x.get("cpu", fp["cpu"])]
                                for x in r["steps"]]), ""]
    return "\n".join(lines)


def _ruler(rows: list[dict]) -> tuple[str, str]:
    """How part 3's students were timed beside the full network, and where its measured ms
    came from (rows written before the paired ruler keep their own description)."""
    if all(x.get("ruler") == "paired" for x in rows):
        return ("block by block (`time_relative`; ONNX Runtime's threads spin within a call and stop between "
                "calls), the ratio of each student to the full network",
                " (the measured ms: the ratio times the full network's time as deployed, threads spinning, "
                "taken in the same pass)")
    return "(student, full, full, student, a whole measurement each; the median of the pairs' ratios)", ""


def _passes(rows: list[dict]) -> str:
    return "/".join(sorted({str(x.get("passes", 3)) for x in rows}))


def _prediction_rows(x: dict) -> list[list]:
    def pct(v):
        return "-" if v is None else f"{v:.1%}"

    cal = (f"{x['calibration_scale']:.2f}, {x.get('misalignment') or 0:.3f}, {x.get('block')}"
           if x.get("calibration_scale") is not None else "-")
    spread = pct(x.get("median_pass_spread"))
    deployed = "-" if x.get("deployed_over_paired") is None else f"{x['deployed_over_paired']:.3f}"
    rows = [[x["model"], "random", x["students"], pct(x["median_abs_error"]), pct(x["max_abs_error"]),
             pct(x.get("median_ratio_error")), pct(x.get("max_ratio_error")), spread, deployed, cal]]
    if x.get("snapped_students"):
        rows.append([x["model"], "snapped", x["snapped_students"], pct(x["snapped_median_abs_error"]),
                     pct(x["snapped_max_abs_error"]), pct(x["snapped_median_ratio_error"]),
                     pct(x["snapped_max_ratio_error"]), spread, deployed, cal])
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
