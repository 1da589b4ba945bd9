"""Benchmark of the schedule search (issue 7): the unpruned ResNet-56, the off-the-shelf
schedule retrained, and the search's front after N trials, plain, with widths snapped to
the staircase, and without early stopping; the trials and wall time needed to first beat
the off-the-shelf schedule on both latency and top-1. The schedule and every front point
are then timed again together, interleaved, so the fronts compare on one footing (each
study's own latencies carry the machine's drift between studies).

Every figure is measured by this script and written to docs/bench_search.json,
docs/BENCH_SEARCH.md and docs/bench_search.png. Usage:

    python scripts/bench_search.py --data cifar10:../shared/data --threads 2 \
        [--teacher-epochs 15] [--epochs 3] [--trials 20] [--variants plain snapped no-early-stop]

Every run lives under --runs and is reused or resumed when the script runs again (the
studies are SQLite files: a killed benchmark continues where it stopped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from staircase.files import atomic_write_json, atomic_write_text
from staircase.profile.backends import get_backend
from staircase.profile.sweep import profile_network
from staircase.profile.timing import measure_network
from staircase.search import SearchSettings, plot_fronts, run_search
from staircase.table import format_table
from staircase.train.checkpoint import model_from_checkpoint
from staircase.train.trainer import TrainConfig, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {  # name -> (snapped, early stopping)
    "plain": (False, True),
    "snapped": (True, True),
    "no-early-stop": (False, False),
}
# the seed's reference points: full CIFAR-10, Intel Neural Compute Stick
SEED = {"unpruned": (92.58, 4.375), "off-the-shelf retrained": (87.72, 3.88), "best tuned": (88.08, 3.557)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="cifar10:../shared/data")
    ap.add_argument("--schedule", default="resnet56_cifar10")
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--teacher-warmup", type=int, default=1,
                    help="epochs at lr/10 first (ResNet-56 does not start to learn at lr 0.1)")
    ap.add_argument("--epochs", type=int, default=3, help="retraining epochs per trial")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--train-device", default="auto", help="where networks train (latency: this CPU, onnxruntime)")
    ap.add_argument("--train-images", type=int, default=None)
    ap.add_argument("--remeasure-rounds", type=int, default=3,
                    help="interleaved rounds of the final re-measurement of every front point")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_search")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print("[1] the unpruned ResNet-56", flush=True)
    config = TrainConfig(model="resnet56", data=args.data, out=str(args.runs / "resnet56"), epochs=args.teacher_epochs,
                         batch_size=128, lr=0.1, schedule="cosine", warmup_epochs=args.teacher_warmup, train_images=args.train_images,
                         threads=args.threads, device=args.train_device, progress=False)
    unpruned = train_or_reuse(config, log=lambda m: print(f"    {m}", flush=True))
    checkpoint = args.runs / "resnet56" / "last.pt"
    model, arch, _ = model_from_checkpoint(checkpoint)
    backend = get_backend("onnxruntime", threads=args.threads)
    unpruned_ms = measure_network(backend, model.eval(), arch.input_size).median_ms
    print(f"    top-1 {unpruned['final_top1']:.2f}%, {unpruned_ms:.3f} ms", flush=True)

    profile = None
    if "snapped" in args.variants:
        print("[2] profiling ResNet-56 on this CPU (onnxruntime) for the snapped variant", flush=True)
        profile = args.runs / "profile.json"
        profile_network("resnet56", backend, profile, grid=4, rounds=2, progress=False,
                        log=lambda m: print(f"    {m}", flush=True))

    variants = {}
    for name in args.variants:
        snapped, early = VARIANTS[name]
        print(f"[3] search: {name} ({args.trials} trials, {args.epochs} retraining epochs each)", flush=True)
        settings = SearchSettings(schedule=args.schedule, checkpoint=str(checkpoint), data=args.data,
                                  out=str(args.runs / name), trials=args.trials, threads=args.threads,
                                  epochs=args.epochs, train_images=args.train_images, train_device=args.train_device,
                                  profile=str(profile) if snapped else None, early_stop=early)
        summary = run_search(settings, log=lambda m: print(f"    {m}", flush=True))
        variants[name] = _digest(summary, json.loads((args.runs / name / "front.json").read_text())["all"])

    print("[4] re-measuring the schedule and every front point together, interleaved, beside the unpruned net",
          flush=True)
    remeasured, unpruned_ms = _remeasure(backend, model.eval(), arch.input_size, variants, rounds=args.remeasure_rounds)
    for v in variants.values():
        for point in [v["baseline"], *v["front"]]:
            if point is not None and point.get("spec") in remeasured:
                point["remeasured_ratio"], point["remeasured_ms"] = remeasured[point["spec"]]

    result = {"settings": {"data": args.data, "schedule": args.schedule, "teacher_epochs": args.teacher_epochs,
                           "retrain_epochs": args.epochs, "trials": args.trials, "threads": args.threads,
                           "train_device": args.train_device, "train_images": args.train_images or "all",
                           "backend": "onnxruntime CPU, batch 1, f32"},
              "unpruned": {"top1": unpruned.final_top1, "ms": unpruned_ms, "epochs": args.teacher_epochs,
                           "train_minutes": unpruned.get("seconds_this_session", 0) / 60},
              "variants": variants, "seed_reference": SEED, "remeasure_rounds": args.remeasure_rounds, "wall_minutes": (time.perf_counter() - started) / 60}
    _report(result, args.docs)
    return 0


def _remeasure(backend, unpruned, input_size, variants: dict,
               rounds: int) -> tuple[dict[str, tuple[float, float]], float]:
    """Each study measured its trials against the unpruned net timed when it began, so two
    studies' latencies differ by the machine's drift between them. Here every front point
    and the schedule are timed again in one session: ``rounds`` passes in a fresh shuffled
    order, each network beside the unpruned one (network, unpruned, unpruned, network).
    Returns spec path -> (median ratio to the unpruned net, that ratio x its median ms), and
    the unpruned net's median ms in this session."""
    import random
    import statistics

    from staircase.modelref import resolve_model
    from staircase.profile.timing import time_relative

    specs = sorted({p["spec"] for v in variants.values() for p in [v["baseline"], *v["front"]]
                    if p is not None and p.get("spec")})
    reference = backend.prepare_model(unpruned, tuple(input_size), paired=True)
    runs = {spec: backend.prepare_model(resolve_model(spec).model.eval(), tuple(input_size), paired=True)
            for spec in specs}
    ratios: dict[str, list[float]] = {spec: [] for spec in specs}
    unpruned_ms: list[float] = []
    rng = random.Random(0)
    for _ in range(rounds):
        order = list(specs)
        rng.shuffle(order)
        for spec in order:
            rel = time_relative(backend, runs[spec], reference)
            ratios[spec].append(rel.ratio)
            unpruned_ms += [m.ref_ms for m in rel.runs]  # the reference's own time in each pair
    base = statistics.median(unpruned_ms)
    return {spec: (statistics.median(r), statistics.median(r) * base) for spec, r in ratios.items()}, base


def _digest(summary: dict, trials: list[dict]) -> dict:
    """The off-the-shelf point, the front, and what it took to beat the schedule."""
    by_number = sorted(trials, key=lambda r: r["number"])
    first = summary["first_to_beat_baseline"]
    until = [r for r in by_number if first is not None and r["number"] <= first]
    return {"baseline": summary["baseline"], "front": summary["front"], "trials": summary["trials"],
            "stopped_early": summary["stopped_early"], "epochs_saved": summary["epochs_saved"],
            "epochs_run": summary["epochs_run"], "first_to_beat": first,
            "trials_to_beat": len(until) if first is not None else None,
            "minutes_to_beat": sum(r["seconds"] for r in until) / 60 if first is not None else None,
            "minutes_total": sum(r["seconds"] for r in by_number) / 60,
            "points": [(r["latency_ms"], r["top1"], r["state"]) for r in by_number]}


def _report(result: dict, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    variants = result["variants"]
    # 1. each study on its own: the latencies its trials were measured at (beside the
    # unpruned net timed when the study began), and what it took to beat the schedule
    rows = []
    for name, v in variants.items():
        b = v["baseline"]
        beat = (f"trial {v['first_to_beat']} ({v['trials_to_beat']} trials, {v['minutes_to_beat']:.0f} min)"
                if v["first_to_beat"] is not None else "not within the trials")
        rows.append([name, f"{b['latency_ms']:.3f} ({b['ratio']:.2f}x)" if b else "-", f"{b['top1']:.2f}" if b else "-",
                     f"{v['trials']}", beat, f"{v['stopped_early']} stopped, {v['epochs_saved']} of "
                     f"{v['epochs_run'] + v['epochs_saved']} epochs saved", f"{v['minutes_total']:.0f}"])
    studies = format_table(["search", "schedule's latency ms (x unpruned)", "its top-1 %", "trials",
                            "first to beat the schedule on both", "early stopping", "trial minutes"], rows)
    # 2. everything timed again together: the fronts compared on one footing
    schedule = next((v["baseline"] for v in variants.values() if v["baseline"]), None)
    rows = [["unpruned ResNet-56", "-", f"{result['unpruned']['ms']:.3f}", "1.00", f"{result['unpruned']['top1']:.2f}",
             "-"]]
    if schedule is not None and "remeasured_ms" in schedule:
        rows.append(["off-the-shelf schedule, retrained", "0", f"{schedule['remeasured_ms']:.3f}",
                     f"{schedule['remeasured_ratio']:.2f}", f"{schedule['top1']:.2f}", "-"])
    for name, v in variants.items():
        for point in sorted(v["front"], key=lambda q: q.get("remeasured_ms", q["latency_ms"])):
            if "remeasured_ms" not in point:
                continue
            beats = (schedule is not None and "remeasured_ms" in schedule and point["top1"] > schedule["top1"]
                     and point["remeasured_ms"] < schedule["remeasured_ms"])
            rows.append([f"front: {name}", str(point["number"]), f"{point['remeasured_ms']:.3f}",
                         f"{point['remeasured_ratio']:.2f}", f"{point['top1']:.2f}", "yes" if beats else ""])
    table = format_table(["network", "trial", "latency ms", "x unpruned", "top-1 %", "beats the schedule on both"],
                         rows)
    print(studies)
    print(table)
    atomic_write_json(docs / "bench_search.json", result)
    _plot(result, docs / "bench_search.png")
    lines = "\n".join(f"| {k} | {v} |" for k, v in result["settings"].items())
    seed = "\n".join(f"| {k} | {t:.2f} | {ms:.3f} |" for k, (t, ms) in result["seed_reference"].items())
    atomic_write_text(docs / "BENCH_SEARCH.md", f"""# Benchmark: searching the ResNet-56 pruning schedule

Written by `scripts/bench_search.py`; raw data in `bench_search.json`. On this machine's 2
CPU cores the unpruned ResNet-56 trained in {result['unpruned']['train_minutes']:.0f} min
({result['unpruned']['epochs']} epochs) and each search's trials took the minutes below; the
script's last pass, which reuses finished studies and times the fronts again, took
{result['wall_minutes']:.0f} min.

## Each search on its own

Each study times its trials beside the unpruned network it timed when it began
(ratio x that time); "first to beat" is the first trial faster and more accurate than
the schedule (trial 0) in that study; trial minutes are the sum over its trials.

```
{studies}
```

## The fronts timed again together

The schedule and every front point, timed again in one session ({result['remeasure_rounds']} shuffled
rounds, each network beside the unpruned one): the machine drifts between studies, so
only these latencies compare across searches. Top-1 is the study's.

```
{table}
```

![fronts](bench_search.png)

Settings:

| setting | value |
|---|---|
{lines}

The seed's reference points (full CIFAR-10, 200-epoch training, Neural Compute Stick), for
scale only: this run's data, epochs and device differ.

| point | top-1 % | ms |
|---|---|---|
{seed}
""")


def _plot(result: dict, path: Path) -> None:
    """The fronts and the schedule at their re-measured latencies (one footing); the trials
    off the front were timed in their own study only and are left out."""
    def again(point):
        return {"latency_ms": point.get("remeasured_ms", point["latency_ms"]), "top1": point["top1"]}

    fronts = {}
    for name, v in result["variants"].items():
        front = sorted((again(p) for p in v["front"]), key=lambda q: q["latency_ms"])
        fronts[f"front: {name}"] = (front, front)
    baseline = next((again(v["baseline"]) for v in result["variants"].values() if v["baseline"]), None)
    plot_fronts(path, fronts, baseline, {"latency_ms": result["unpruned"]["ms"], "top1": result["unpruned"]["top1"]},
                xlabel="latency (ms, onnxruntime, this CPU; timed again together)")


if __name__ == "__main__":
    sys.exit(main())
