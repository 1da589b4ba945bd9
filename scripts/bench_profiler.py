"""Benchmark of the profiler: reproducibility, cost, prediction error, designs reaching their
target, a large network, and the step per backend and precision.

Every figure is measured by this script and written to docs/bench_profiler.json and
docs/BENCH_PROFILER.md; each part's rows are saved as soon as the part ends (a part not run
again keeps its earlier rows). Usage:

    python scripts/bench_profiler.py --threads 2 [--parts 1 2 3 4 5 6] [--reference COMMIT]

Part 1 profiles each of ``--repro`` twice from scratch with the command's defaults (the
lattice of the models table); ``--reference COMMIT`` also runs that commit's profiler (a git
worktree of this repository, its own CLI) twice on the first of them with
``--reference-args``, so the two methods' times are ratios taken on one machine in one run.
Part 2 reads part 1's first runs. Part 3 times students of wrn_40_2 against the prediction.
Part 4 profiles wrn_40_2 on every backend and precision. Part 5 designs resnet18 at 64x64
for half the teacher's latency on part 1's profile. Part 6 profiles resnet50 at 224x224 once.
With ``--profiles DIR`` the first onnxruntime profile of wrn_40_2 is kept there
(cpu-onnxruntime.json) with the torch one of part 4 (cpu-torch.json): the shipped profiles.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from staircase.files import atomic_write_json, atomic_write_text
from staircase.modelref import resolve_model
from staircase.profile.backends import get_backend
from staircase.profile.prediction import LatencyModel
from staircase.profile.steps import DEFAULT_GRID, snap
from staircase.profile.sweep import profile_network
from staircase.profile.timing import FULL_NETWORK_PROTOCOL, time_relative
from staircase.slots import make_student
from staircase.table import format_table

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.3, 0.5, 0.7)  # of each slot's width, snapped to the nearest usable width in each profile


@dataclass(frozen=True)
class Bench:
    ref: str
    input_size: tuple[int, int, int] | None = None
    classes: int | None = None
    grid: int = DEFAULT_GRID

    def cli(self) -> list[str]:
        args = [self.ref]
        if self.input_size:
            args += ["--input-shape", ",".join(map(str, self.input_size))]
        if self.classes:
            args += ["--num-classes", str(self.classes)]
        return args


MODELS = {
    "resnet18@64": Bench("torchvision.models:resnet18", (3, 64, 64), 10),
    "wrn_40_2": Bench("wrn_40_2", grid=1),
    "resnet50@224": Bench("torchvision.models:resnet50", (3, 224, 224)),
}


def _sweep(name: str, backend, path: Path, grid: int | None = None):
    b = MODELS[name]
    for stale in (path, Path(str(path) + ".journal")):  # measured afresh
        stale.unlink(missing_ok=True)
    return profile_network(b.ref, backend, path, input_size=b.input_size, num_classes=b.classes,
                           grid=grid or b.grid, progress=False, log=lambda m: None)


def _slot_rows(result) -> list[dict]:
    prof, net = result.profile, result.network
    rows = []
    for slot, info in prof.network(net).slots.items():
        steps = prof.slot_curve(net, slot).steps()
        rows.append({"slot": slot, "width": info.width, "step": steps.step, "clear": steps.clear,
                     "usable": steps.usable, "spikes": steps.spikes})
    return rows


def agreement(slots_a: list[dict], slots_b: list[dict]) -> tuple[float, list[dict]]:
    """Share of (slot, fraction) whose nearest snap agrees between two profiles, and the
    disagreements."""
    agree, total, differ = 0, 0, []
    for a, b in zip(slots_a, slots_b, strict=True):
        for frac in FRACTIONS:
            w = max(1, round(a["width"] * frac))
            snapped = [snap(w, a["usable"]), snap(w, b["usable"])]
            agree += snapped[0] == snapped[1]
            total += 1
            if snapped[0] != snapped[1]:
                differ.append({"slot": a["slot"], "width": w, "snapped": snapped})
    return agree / total, differ


def _usable_below_full(slots: list[dict]) -> list[int]:
    return [len([w for w in s["usable"] if w < s["width"]]) for s in slots]


def reproducibility(name: str, backend, tmp: Path, keep: Path | None) -> tuple[dict, object]:
    """Two profiles from scratch, their agreement, and what each found per slot."""
    runs = [_sweep(name, backend, tmp / f"repro-{name}-{i}.json") for i in range(2)]
    slots = [_slot_rows(r) for r in runs]
    share, differ = agreement(*slots)
    if keep is not None and name == "wrn_40_2":
        _keep(runs[0], keep / "cpu-onnxruntime.json")
    below = _usable_below_full(slots[0])
    return {"model": name, "grid": MODELS[name].grid, "agreement": share, "comparisons": 3 * len(slots[0]),
            "disagreements": differ, "seconds": [round(r.seconds, 1) for r in runs],
            "phases": [{k: round(v, 1) for k, v in r.phases.items()} for r in runs],
            "measurements": [r.measured for r in runs], "periods": [r.profile.network_step(r.network) for r in runs],
            "usable_below_full_min": min(below), "usable_below_full_median": statistics.median(below),
            "slots": slots[0]}, runs[0]


def reference_runs(name: str, commit: str, extra: list[str], tmp: Path, threads: int) -> dict:
    """``commit``'s own profiler (its CLI, from a git worktree) twice on ``name``: its time,
    agreement and the slots where it found more than the full width."""
    tree = tmp / "reference"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    try:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        base = [sys.executable, "-m", "staircase"]
        seconds, slots = [], []
        for i in range(2):
            out = tmp / f"reference-{i}.json"
            began = time.perf_counter()
            subprocess.run([*base, "profile", *MODELS[name].cli(), "--backend", "onnxruntime", "--threads",
                            str(threads), "--no-progress", "--out", str(out), *extra], check=True, cwd=tmp,
                           capture_output=True, env=env)
            seconds.append(round(time.perf_counter() - began, 1))
            listing = subprocess.run([*base, "steps", str(out), "--json"], check=True, cwd=tmp, capture_output=True,
                                     text=True, env=env)
            slots.append([{"slot": r["slot"], "width": r["width"], "usable": r["optimal"]}
                          for r in json.loads(listing.stdout)])
        share, differ = agreement(*slots)
        below = _usable_below_full(slots[0])
        return {"model": name, "commit": commit, "args": " ".join(extra), "agreement": share,
                "disagreements": differ, "seconds": seconds, "usable_below_full_min": min(below),
                "usable_below_full_median": statistics.median(below),
                "slots_with_steps": sum(1 for n in below if n > 0), "slot_count": len(below)}
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def _vector_flags() -> list[str]:
    """The CPU's vector extensions that decide the kernels' channel blocks."""
    from staircase.quantize import cpu_flags

    return sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"})


def _keep(result, kept: Path):
    """Copy one finished network (its ops and entry) into the kept profile file."""
    from staircase.profile.store import Profile

    kept.unlink(missing_ok=True)
    prof = Profile(kept, result.profile.fingerprint, result.profile.protocol)
    for key in {k for s in result.profile.network(result.network).slots.values() for k in s.layers.values()}:
        prof.ops[key] = result.profile.ops[key]
    prof.networks[result.network] = result.profile.networks[result.network]
    prof.save()


def naive_cost_seconds(result, repeats=100):
    """What a naive sweep would cost: every width of each slot separately (no shared ops, no
    lattice), 100 fixed runs per width; from the measured medians, preparation not counted."""
    prof, net = result.profile, result.network
    total = 0.0
    for info in prof.network(net).slots.values():
        for key in info.layers.values():
            curve = prof.curve(key)
            total += sum(repeats * curve.at(w) / 1e3 for w in range(1, info.width + 1))
    return total


def prediction_error(name, backend, result, n=20, n_snapped=10, seed=0, passes=5):
    """Predicted vs measured end to end for n random-width students and n_snapped students
    snapped up to the staircase (what the designer builds), measured in interleaved passes.

    In each pass every student is timed beside the full network, block by block
    (``time_relative``), and the full network once more as deployed. Two errors per student:
    of its ratio to the full network (the median over the passes; the machine's drift since
    the profile was made cancels), and of the latency itself (predicted ms vs the ratio times
    the deployed full network's time in the same pass). How far the passes scatter (max - min
    over median) is the measurement's own noise."""
    rng = random.Random(seed)
    b = MODELS[name]
    resolved = resolve_model(b.ref, b.classes, b.input_size)
    size = resolved.architecture.input_size
    latency = LatencyModel(result.profile, result.network)
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
    protocol = FULL_NETWORK_PROTOCOL  # the ruler: longer than any profile's own measurements
    ratios = {i: [] for i in range(len(students))}
    measured = {i: [] for i in range(len(students))}
    for _ in range(passes):  # each pass visits every student in a fresh order
        teacher_ms = backend.time(full_deployed, protocol).median_ms
        order = list(range(len(students)))
        rng.shuffle(order)
        for i in order:
            ratio = time_relative(backend, runs[i], full_paired, pairs=1, protocol=protocol).ratio
            ratios[i].append(ratio)
            measured[i].append(ratio * teacher_ms)
    full_pred = latency.predict({}).median_ms
    cal = latency.calibration
    errors = {"random": [], "snapped": []}
    ratio_errors = {"random": [], "snapped": []}
    spreads, rows = [], []
    for i, (kind, widths, _) in enumerate(students):
        p = latency.predict(widths).median_ms
        m = statistics.median(measured[i])
        errors[kind].append(abs(p - m) / m)
        r = statistics.median(ratios[i])
        ratio_errors[kind].append(abs(p / full_pred - r) / r)
        spreads.append((max(ratios[i]) - min(ratios[i])) / r)
        off = sum(1 for s, x in widths.items() if x != slots[s] and cal.alignment and x % cal.alignment)
        rows.append({"kind": kind, "predicted_ratio": round(p / full_pred, 4), "measured_ratio": round(r, 4),
                     "pass_ratios": [round(x, 4) for x in ratios[i]], "slots_off_alignment": off})
    return {"model": name, "students": n, "snapped_students": n_snapped, "passes": passes,
            "median_pass_spread": statistics.median(spreads),
            "median_abs_error": statistics.median(errors["random"]), "max_abs_error": max(errors["random"]),
            "median_ratio_error": statistics.median(ratio_errors["random"]),
            "max_ratio_error": max(ratio_errors["random"]),
            "snapped_median_ratio_error": statistics.median(ratio_errors["snapped"]),
            "snapped_max_ratio_error": max(ratio_errors["snapped"]),
            "snapped_median_abs_error": statistics.median(errors["snapped"]),
            "snapped_max_abs_error": max(errors["snapped"]),
            "calibration": [round(cal.scale, 3), round(cal.misalignment, 3), cal.alignment], "per_student": rows}


def step_sizes(name, threads, tmp: Path, keep: Path | None) -> list[dict]:
    """``name`` profiled on each backend and precision: the step most slots take."""
    from staircase.quantize import precisions_here

    rows = []
    for backend_name, kw in (("torch", {}), ("onnxruntime", {}), ("openvino", {"precision": "f32"}),
                             ("openvino", {"precision": "bf16"}), ("onnxruntime", {"precision": "int8"}),
                             ("openvino", {"precision": "int8"})):
        label = f"{backend_name} {kw.get('precision', 'f32')}"
        try:
            be = get_backend(backend_name, threads=threads, **kw)
        except Exception as exc:  # noqa: BLE001 - record and go on, like timm's benchmark
            rows.append({"backend": label, "error": str(exc)})
            continue
        if be.precision != "f32" and be.precision not in precisions_here(backend_name):
            rows.append({"backend": label, "error": f"this device does not compute in {be.precision}",
                         "cpu": be.device_name()})
            continue
        path = keep / "cpu-torch.json" if backend_name == "torch" and keep else tmp / f"steps-{label}.json"
        r = _sweep(name, be, path, grid=DEFAULT_GRID)
        slots = _slot_rows(r)
        rows.append({"backend": label, "model": name, "grid": DEFAULT_GRID, "step": r.profile.network_step(r.network),
                     "steps": sorted({s["step"] for s in slots}), "usable_below_full_median":
                     statistics.median(_usable_below_full(slots)), "seconds": round(r.seconds, 1),
                     "cpu": be.device_name()})
    return rows


def design_half(profile: Path, tmp: Path) -> dict:
    """`staircase design` for half the teacher's latency on part 1's resnet18 profile: where
    its student measured (beside the teacher, at the profile's speed)."""
    b = MODELS["resnet18@64"]
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "staircase", "design", *b.cli(), "--profile", str(profile),
                           "--target-share", "0.5", "--json", "--out", str(tmp / "half.json")],
                          capture_output=True, text=True, cwd=tmp)
    if proc.returncode not in (0, 3):
        return {"model": "resnet18@64", "error": proc.stderr.strip().splitlines()[-1]}
    out = json.loads(proc.stdout)
    student = out["students"][0]
    target = 0.5 * out["teacher_ms"]
    return {"model": "resnet18@64", "target_share": 0.5, "teacher_ms": out["teacher_ms"], "target_ms": target,
            "at_profile_ms": student["at_profile_speed_ms"], "ratio_to_target": student["at_profile_speed_ms"] / target,
            "met": student["met_target"], "seconds": round(time.perf_counter() - began, 1)}


def large(name: str, backend, tmp: Path) -> dict:
    r = _sweep(name, backend, tmp / f"large-{name}.json")
    slots = _slot_rows(r)
    below = _usable_below_full(slots)
    return {"model": name, "grid": MODELS[name].grid, "seconds": round(r.seconds, 1),
            "phases": {k: round(v, 1) for k, v in r.phases.items()}, "measurements": r.measured,
            "slot_count": len(slots), "period": r.profile.network_step(r.network),
            "usable_below_full_min": min(below), "usable_below_full_median": statistics.median(below),
            "spikes": sum(len(s["spikes"]) for s in slots)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--repro", nargs="+", default=["resnet18@64", "wrn_40_2"], choices=sorted(MODELS))
    ap.add_argument("--reference", default=None, help="a commit whose profiler runs beside this one (part 1)")
    ap.add_argument("--reference-args", default="--grid 8 --timing quick",
                    help="its profile settings (default: %(default)s)")
    ap.add_argument("--students", type=int, default=20)
    ap.add_argument("--passes", type=int, default=5, help="measurements of each student in part 3")
    ap.add_argument("--profiles", default=None, help="keep the shipped profiles in this folder (e.g. profiles)")
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--render", action="store_true", help="only render the page again from its JSON")
    args = ap.parse_args()
    out = Path(args.out)
    if args.render:
        atomic_write_text(out / "BENCH_PROFILER.md", render(json.loads((out / "bench_profiler.json").read_text())))
        return 0
    backend = get_backend("onnxruntime", threads=args.threads)
    path = out / "bench_profiler.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report.update(threads=args.threads, backend=backend.fingerprint(), cpu_flags=_vector_flags())
    keep = Path(args.profiles) if args.profiles else None
    started = time.perf_counter()

    def save(part: str, rows) -> None:
        report[part] = rows
        report["cpu_" + part] = backend.fingerprint()["cpu"]
        atomic_write_json(path, report)
        atomic_write_text(out / "BENCH_PROFILER.md", render(report))

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        first = {}
        if 1 in args.parts or 2 in args.parts or 5 in args.parts:
            repro = []
            for name in args.repro:
                row, first[name] = reproducibility(name, backend, tmp, keep)
                repro.append(row)
                print(f"[1] {name}: agreement {row['agreement']:.1%}, {row['seconds']} s, usable below full "
                      f"min {row['usable_below_full_min']}, median {row['usable_below_full_median']}", flush=True)
            if 1 in args.parts:
                save("repro", repro)
            if 1 in args.parts and args.reference:
                ref = reference_runs(args.repro[0], args.reference, args.reference_args.split(), tmp, args.threads)
                print(f"[1] reference {args.reference[:10]}: agreement {ref['agreement']:.1%}, {ref['seconds']} s",
                      flush=True)
                save("reference", [ref])
            if 2 in args.parts:
                cost = [{"model": n, "grid": MODELS[n].grid, "profile_s": r.seconds, "measurements": r.measured,
                         "naive_estimate_s": naive_cost_seconds(r), "ratio": r.seconds / naive_cost_seconds(r)}
                        for n, r in first.items()]
                for c in cost:
                    print(f"[2] {c['model']}: {c['profile_s']:.0f} s, naive {c['naive_estimate_s']:.0f} s", flush=True)
                save("cost", cost)
        if 3 in args.parts:
            r = first.get("wrn_40_2") or _sweep("wrn_40_2", backend, tmp / "wrn_40_2.json")
            pred = prediction_error("wrn_40_2", backend, r, args.students, passes=args.passes)
            print(f"[3] wrn_40_2: median |ratio error| {pred['median_ratio_error']:.1%}, worst "
                  f"{pred['max_ratio_error']:.1%}", flush=True)
            save("prediction", [pred])
        if 5 in args.parts and "resnet18@64" in first:
            d = design_half(first["resnet18@64"].profile.path, tmp)
            print(f"[5] {d}", flush=True)
            save("design", [d])
        if 6 in args.parts:
            row = large("resnet50@224", backend, tmp)
            print(f"[6] {row}", flush=True)
            save("large", [row])
        if 4 in args.parts:
            rows = step_sizes("wrn_40_2", args.threads, tmp, keep)
            for row in rows:
                print(f"[4] {row}", flush=True)
            save("steps", rows)
    report["seconds"] = time.perf_counter() - started
    atomic_write_json(path, report)
    atomic_write_text(out / "BENCH_PROFILER.md", render(report))
    print(f"wrote {out / 'BENCH_PROFILER.md'}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _phases(p: dict) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in p.items())


def render(r: dict) -> str:
    fp = r["backend"]
    lines = ["# Profiler benchmark", "",
             f"Written by `scripts/bench_profiler.py`; {fp['backend']} {fp['backend_version']}, {r['threads']} "
             f"threads, batch {fp['batch']}, {fp['precision']}. Each part names the CPU it ran on; the last run's "
             f"has {', '.join(r.get('cpu_flags', [])) or 'no AVX-512'} (ONNX Runtime and oneDNN block channels by "
             "16 with AVX-512, by 8 with AVX2 alone).", ""]
    if r.get("repro"):
        lines += [f"## 1. Two profiles from scratch, default settings ({r.get('cpu_repro')})", "",
                  "Agreement: the share of (slot, 0.3/0.5/0.7 x its width) whose nearest usable width is the same "
                  "in both profiles. Usable below full: how many widths under the slot's own each slot offers "
                  "(the fewest over slots, the median).", "",
                  format_table(["model", "grid", "agreement", "comparisons", "profile s (each)", "usable below full "
                                "(min, median)", "step (network)", "phases of the first, s"],
                               [[x["model"], x["grid"], _pct(x["agreement"]), x["comparisons"], str(x["seconds"]),
                                 f"{x['usable_below_full_min']}, {x['usable_below_full_median']:g}",
                                 str(x["periods"]), _phases(x["phases"][0])] for x in r["repro"]]), ""]
        for x in r["repro"]:
            lines += [f"{x['model']}, per slot (first profile): "
                      + "; ".join(f"{s['slot']} {s['width']}: step {s['step']}{'' if s['clear'] else ' (network)'}, "
                                  f"{len(s['usable'])} usable" + (f", spikes {s['spikes']}" if s["spikes"] else "")
                                  for s in x["slots"]) + ".", ""]
    for ref in r.get("reference", []):
        ours = next((x for x in r.get("repro", []) if x["model"] == ref["model"]), None)
        ratio = f"; this profiler took {statistics.median(ours['seconds']) / statistics.median(ref['seconds']):.2f}x " \
                "its time" if ours else ""
        lines += [f"The reference, commit {ref['commit'][:10]} (`{ref['args']}`), on {ref['model']} in the same run: "
                  f"agreement {_pct(ref['agreement'])}, {ref['seconds']} s, usable below full min "
                  f"{ref['usable_below_full_min']}, median {ref['usable_below_full_median']:g}, slots with more than "
                  f"the full width {ref['slots_with_steps']} of {ref['slot_count']}{ratio}.", ""]
    if r.get("cost"):
        lines += [f"## 2. Cost against a naive sweep ({r.get('cpu_cost')})", "",
                  "Naive: every width of each slot separately (no shared ops, no lattice), 100 fixed runs per width, "
                  "estimated from the measured medians (preparation excluded).", "",
                  format_table(["model", "grid", "measurements", "profile s", "naive s (est.)", "ours / naive"],
                               [[x["model"], x["grid"], x["measurements"], round(x["profile_s"], 1),
                                 round(x["naive_estimate_s"], 1), round(x["ratio"], 2)] for x in r["cost"]]), ""]
    if r.get("prediction"):
        lines += [f"## 3. Prediction against end-to-end measurement ({r.get('cpu_prediction')})", "",
                  "Random widths: 25-100% of each slot. Snapped: such widths snapped up to the usable widths. Each "
                  "student timed beside the full network block by block in interleaved passes (the median of "
                  f"{r['prediction'][0].get('passes')}); ratio error compares the latency relative to the full "
                  "network (the machine's drift since the profile cancels), ms error the milliseconds (the ratio "
                  "times the full network timed as deployed in the same pass: the drift counts). Pass spread: the "
                  "measurement's own scatter (max - min over median, the median over students).", "",
                  format_table(["model", "students", "median |ratio error|", "worst |ratio error|", "median |ms error|",
                                "worst |ms error|", "snapped: median / worst |ratio error|", "pass spread",
                                "calibration (scale, misalignment, alignment)"],
                               [[x["model"], x["students"], _pct(x["median_ratio_error"]), _pct(x["max_ratio_error"]),
                                 _pct(x["median_abs_error"]), _pct(x["max_abs_error"]),
                                 f"{_pct(x['snapped_median_ratio_error'])} / {_pct(x['snapped_max_ratio_error'])}",
                                 _pct(x["median_pass_spread"]), str(x["calibration"])] for x in r["prediction"]]), ""]
    if r.get("steps"):
        lines += [f"## 4. The step per backend and precision (wrn_40_2, grid {DEFAULT_GRID})", "",
                  "At int8 each op is quantised to QDQ first, as `staircase profile --precision int8` does. Step: "
                  "the network's (its slots' step tests pooled); steps seen: each slot's; a row this CPU cannot "
                  "run says why.", "",
                  format_table(["backend", "step", "steps seen", "usable below full (median)", "profile s", "device"],
                               [[x["backend"], x.get("step", "-"), str(x.get("steps", "-")),
                                 x.get("usable_below_full_median", "-"), x.get("seconds", x.get("error")),
                                 x.get("cpu", "-")] for x in r["steps"]]), ""]
    if r.get("design"):
        lines += [f"## 5. A design for half the teacher's latency ({r.get('cpu_design')})", "",
                  "`staircase design ... --target-share 0.5` on part 1's first resnet18 profile; the student "
                  "measured beside the teacher, scaled to the teacher's time in the profile.", "",
                  format_table(["model", "teacher ms", "target ms", "student ms", "student / target", "met", "s"],
                               [[x["model"], round(x["teacher_ms"], 3), round(x["target_ms"], 3),
                                 round(x["at_profile_ms"], 3), f"{x['ratio_to_target']:.3f}", x["met"], x["seconds"]]
                                if "error" not in x else [x["model"], x["error"], "", "", "", "", ""]
                                for x in r["design"]]), ""]
    if r.get("large"):
        lines += [f"## 6. A large network, default settings, once ({r.get('cpu_large')})", "",
                  format_table(["model", "grid", "slots", "measurements", "profile s", "phases, s",
                                "usable below full (min, median)", "step", "spikes"],
                               [[x["model"], x["grid"], x["slot_count"], x["measurements"], x["seconds"],
                                 _phases(x["phases"]), f"{x['usable_below_full_min']}, "
                                 f"{x['usable_below_full_median']:g}", x["period"], x["spikes"]]
                                for x in r["large"]]), ""]
    if r.get("seconds"):
        lines += [f"Wall time of the last run: {r['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
