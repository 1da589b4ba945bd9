"""Is the student staircase recommends the one to use? CIFAR-10 on this CPU, every network
at the same measured latency and the same training budget.

Teacher WRN-16-2 (WRN-40-2 is the paper's; on 2 CPU cores it trains about three times
slower), ONNX Runtime, batch 1. For each latency target (a share of the teacher's time in
the profile):

- **From the teacher** (the practical route): every network starts from the trained
  teacher's weights (each slot keeps its most Fisher-salient channels, ``--inherit``) and
  is fine-tuned for the same epochs with the same loss (cross-entropy + attention transfer):
  the staircase student under each allocation (``staircase-fisher``, the paper's;
  ``staircase-l1``; ``staircase-proportional``), uniform scaling, L1 widths rounded to the
  network's step in the profile (``l1-round``, what a user does without a profiler), and the
  Fisher-pruned widths unsnapped (``fisher``, the pruning run's removal order continued
  until it measures at the Fisher student's latency). The pruning run's own fine-tuning is
  given to none of them: it only ranks channels.
- **From scratch** (the paper's claim): the Fisher staircase student, the same Fisher
  widths unsnapped (the copycat), uniform scaling and the tool's default student, each
  trained with attention transfer for the teacher's epochs.

A row's ``method`` names the tool's default allocation (``DEFAULT_ALLOCATION``)
``staircase``, whichever it is when the page is written; its ``design`` names the network.

Every network's latency is its time measured beside the teacher (the ratio); a row more
than 3% from its target is marked unmatched. Each finished training run is a row of
``docs/results_cifar.json`` (``method``, ``init``, ``target``, ``seed``, ``epochs``,
``train_minutes``, ``ratio``, ``params``, ``top1``), written as it finishes; a rerun skips
the rows that are there, reuses the designs kept in ``docs/results_cifar/`` and resumes a
killed training run. ``docs/RESULTS.md`` and its plot are rendered from the rows. Usage:

    python scripts/reproduce_cifar.py                      # CIFAR-10 subset in ../shared/data
    python scripts/reproduce_cifar.py --data digits --teacher-epochs 2 --finetune-epochs 1 --seeds 0 \\
        --scratch-targets --runs runs/smoke --docs runs/smoke    # a few minutes, nothing committed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from staircase.design import job as design_job
from staircase.design.allocations import DEFAULT_ALLOCATION
from staircase.design.inherit import inherited_student, save_student
from staircase.files import atomic_write_json, atomic_write_text
from staircase.pipeline import Pipeline
from staircase.spec import StudentSpec
from staircase.table import format_table
from staircase.train.evaluate import evaluate_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# design -> how its spec is made: (the allocation designed, the suffix of one of its baselines)
DESIGNS = {"staircase-fisher": ("fisher", ""), "staircase-l1": ("l1", ""),
           "staircase-proportional": ("proportional", ""), "uniform": ("fisher", "-uniform"),
           "l1-round": ("fisher", "-l1-round"), "fisher": ("fisher", "-unsnapped")}
FROM_TEACHER = tuple(DESIGNS)
# the paper's student and its copycat (the same Fisher widths unsnapped), uniform scaling,
# and the tool's default student where that is another
FROM_SCRATCH = tuple(dict.fromkeys((f"staircase-{DEFAULT_ALLOCATION}", "staircase-fisher", "fisher", "uniform")))
MATCH_WITHIN = 0.03


def method_of(design: str, part: str) -> str:
    """A row's method: ``staircase`` for the tool's default allocation, ``copycat`` for the
    Fisher-pruned widths trained from scratch, else the design's name."""
    if design == f"staircase-{DEFAULT_ALLOCATION}":
        return "staircase"
    return "copycat" if design == "fisher" and part == "scratch" else design


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="cifar10:../shared/data")
    ap.add_argument("--model", default="wrn_16_2")
    ap.add_argument("--teacher-epochs", type=int, default=60, help="the teacher's, and the from-scratch students'")
    ap.add_argument("--val-split", type=float, default=0.1,
                    help="every run trains without this share of the training images and is judged on it; the test "
                         "set is read once, for the final table")
    ap.add_argument("--split-seed", type=int, default=0, help="which training images are the validation split")
    ap.add_argument("--stop-after", choices=("teacher",), default=None, help="run the stages up to this one only")
    ap.add_argument("--finetune-epochs", type=int, default=3, help="every network that starts from the teacher")
    ap.add_argument("--finetune-lr", type=float, default=0.01)
    ap.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.7], help="shares of the teacher's latency")
    ap.add_argument("--scratch-targets", type=float, nargs="*", default=[0.5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parts", nargs="+", choices=("teacher", "scratch"), default=["teacher", "scratch"],
                    help="train only these parts' rows this time (the page shows every row there is)")
    ap.add_argument("--prune-share", type=float, default=0.3, help="the saliency run prunes to this share")
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-device", default="auto")
    ap.add_argument("--budget-minutes", type=float, default=None, help="stop starting rows after this long")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "reproduce_cifar")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipe = Pipeline(args.runs, args.model, args.data, threads=args.threads, train_device=args.train_device,
                    val_split=args.val_split, split_seed=args.split_seed, log=lambda m: say(f"      {m}"))
    rows_path = args.docs / "results_cifar.json"
    doc = json.loads(rows_path.read_text()) if rows_path.exists() else {}
    split = {"val_split": args.val_split, "split_seed": args.split_seed}
    if doc.get("teacher", {}).get("split") != split or doc["teacher"].get("epochs") != args.teacher_epochs:
        doc = {}  # rows of another teacher or another split: in git's history only
    rows = [r for r in doc.get("rows", []) if "design" in r]  # rows of this experiment's schema only
    for r in rows:  # labelled by the tool's default allocation as it is now
        r["method"] = method_of(r["design"], r["init"])

    kept = args.docs / "results_cifar"
    _carry(kept, args.runs, KEPT)  # what an earlier session kept: the same teacher and saliency
    say(f"[1/4] the teacher, {args.teacher_epochs} epochs (deterministic: a later session retrains the same one)")
    teacher = pipe.teacher(args.teacher_epochs, lr=0.1, batch_size=128, deterministic=True)
    _carry(args.runs, kept, KEPT)
    curve = teacher_curve(args.runs / "teacher" / "metrics.jsonl")
    doc["teacher"] = {"model": args.model, "data": args.data, "epochs": args.teacher_epochs, "curve": curve,
                      "plateau": plateau(curve), "split": split, "recipe": "SGD 0.9, lr 0.1 x0.2 at 30/60/80%, "
                      "wd 5e-4, batch 128, pad-4 crops and flips"}
    doc["rows"] = rows
    _write(doc, args.docs)
    stop = doc["teacher"]["plateau"]
    say(f"      validation top-1 {curve[-1]['val_top1']:.2f}% after {len(curve)} epochs; {stop['reason']}")
    if not stop["plateaued"]:
        say(f"      rerun with --teacher-epochs {2 * args.teacher_epochs}: the students need a teacher that has "
            "stopped improving")
        return 1
    if args.stop_after == "teacher":
        return 0
    say(f"[2/4] profiling this CPU for {args.model} (onnxruntime, grid {args.grid})")
    prof = pipe.profile(grid=args.grid, progress=False).profile
    say(f"[3/4] Fisher saliency: pruning a copy to {args.prune_share:.0%} of its inner channels")
    widths_file = pipe.prune(args.prune_share)
    _carry(args.runs, kept, KEPT)
    say("[4/4] designs (kept in docs/results_cifar/), then one training run per row")
    specs = {t: _designs(pipe, prof, t, args.docs / "results_cifar")
             for t in sorted(set(args.targets) | set(args.scratch_targets))}
    kept_rows = current_rows(rows, specs)
    if len(kept_rows) < len(rows):
        say(f"      {len(rows) - len(kept_rows)} rows trained designs made again since: dropped")
        rows = kept_rows
    settings = _settings(args, prof, teacher, pipe)
    for seed in args.seeds:
        for part, targets, methods, epochs in (("teacher", args.targets, FROM_TEACHER, args.finetune_epochs),
                                               ("scratch", args.scratch_targets, FROM_SCRATCH, args.teacher_epochs)):
            if part not in args.parts:
                continue
            for target in targets:
                for design in methods:
                    if args.budget_minutes and time.perf_counter() - started > 60 * args.budget_minutes:
                        say("budget reached: rerun to continue")
                        return 0
                    key = (design, part, target, seed, epochs)
                    if any((r["design"], r["init"], r["target"], r["seed"], r["epochs"]) == key for r in rows):
                        continue
                    rows.append(_train_row(pipe, specs[target][design], widths_file, design, part, target, seed,
                                           epochs, args))
                    _write({**doc, "settings": settings, "rows": rows}, args.docs)
    _write({**doc, "settings": settings, "rows": rows}, args.docs)
    return 0


def teacher_curve(metrics: Path) -> list[dict]:
    """The teacher's run, epoch by epoch: validation top-1, training loss, learning rate."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [{"epoch": r["epoch"], "val_top1": r["test_top1"], "train_loss": r["train_loss"], "lr": r["lr"]}
            for r in rows]


def plateau(curve: list[dict]) -> dict:
    """Whether validation top-1 has stopped rising: the mean of the last tenth of the epochs
    (at least 3) against the mean of the tenth before it, with the 95% interval of the rise
    (Welch's t over the two windows: the epochs' own scatter is the noise, about an image or
    more of the validation split per epoch). Still rising only when the interval lies above 0."""
    from scipy.stats import t

    window = max(3, round(len(curve) / 10))
    if len(curve) < 2 * window:
        return {"plateaued": False, "rise": None, "ci95": None, "window": window,
                "reason": f"fewer than {2 * window} epochs: too short to tell"}
    last = [r["val_top1"] for r in curve[-window:]]
    before = [r["val_top1"] for r in curve[-2 * window:-window]]
    rise = statistics.fmean(last) - statistics.fmean(before)
    a, b = statistics.variance(last) / window, statistics.variance(before) / window
    if a + b == 0:
        low = high = rise
    else:
        df = (a + b) ** 2 / (a ** 2 / (window - 1) + b ** 2 / (window - 1))
        half = float(t.ppf(0.975, df)) * (a + b) ** 0.5
        low, high = rise - half, rise + half
    flat = low <= 0
    return {"plateaued": flat, "rise": rise, "ci95": [low, high], "window": window,
            "reason": f"the mean validation top-1 of the last {window} epochs is {rise:+.2f} points against the "
                      f"{window} before, 95% interval [{low:+.2f}, {high:+.2f}] "
                      f"({'no detectable rise: stopped rising' if flat else 'still rising'})"}


# kept with the results (committed), so that later sessions train rows of the same teacher
KEPT = ("teacher/last.pt", "teacher/config.json", "teacher/metrics.jsonl", "teacher/summary.json",
        "fisher-widths.json")


def _carry(source: Path, dest: Path, names) -> None:
    """Copy each of ``names`` from ``source`` to ``dest`` where ``dest`` lacks it or has an
    older one."""
    import shutil

    for name in names:
        src, dst = source / name, dest / name
        if src.exists() and (not dst.exists() or src.stat().st_mtime > dst.stat().st_mtime):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _designs(pipe: Pipeline, prof, target: float, keep: Path) -> dict[str, StudentSpec]:
    """Each design's spec at ``target``: designed and measured once, kept in ``keep``
    (committed with the results, so the rows of later sessions use the same networks)."""
    folder = keep / f"t{round(target * 100)}"
    kept = {m: StudentSpec.load(folder / f"{m}.json") for m in DESIGNS if (folder / f"{m}.json").exists()}
    missing = sorted({DESIGNS[m][0] for m in DESIGNS if m not in kept})  # allocations to design again
    if not missing:
        say(f"      reusing the designs in {folder}")
        return kept
    designs = {}
    for allocation in missing:
        name = f"{pipe.model}-t{round(target * 100)}-{allocation}"
        settings = design_job.DesignSettings(model=pipe.model, profile=str(prof.path), out=str(pipe.out / "students" / f"{name}.json"),
                                  widths=str(pipe.widths_path()), target_share=target,
                                  baselines=allocation == "fisher", allocation=allocation)
        found = design_job.design(settings, teacher=pipe.trained_teacher(), log=pipe.log).designs
        designs.update({(allocation, d.spec.name[len(name):]): d.spec for d in found})
    specs = {**kept, **{m: designs[how] for m, how in DESIGNS.items() if m not in kept}}
    for method in DESIGNS:
        spec = specs[method]
        if method not in kept:
            spec.save(folder / f"{method}.json")
        ratio = spec.provenance.notes["ratio_to_teacher"]
        say(f"      {target:.0%} {method:24s} {spec.params:>8,} params, {ratio:.3f} of the teacher"
            + ("" if method in kept else " (designed now)"))
    return specs


def current_rows(rows: list[dict], specs: dict[float, dict[str, StudentSpec]]) -> list[dict]:
    """The rows that trained the networks now kept in ``results_cifar/``: a design made again
    (its spec file deleted) leaves its old rows behind, in git's history only."""
    def current(r: dict) -> bool:
        spec = specs.get(r["target"], {}).get(r["design"])
        return spec is None or (r["params"] == spec.params and r.get("widths", spec.widths) == spec.widths)

    return [r for r in rows if current(r)]


def matched(ratio: float, target: float) -> bool:
    """A row counts as at its target when its measured ratio is within 3% of it."""
    return abs(ratio / target - 1) <= MATCH_WITHIN


def _train_row(pipe: Pipeline, spec: StudentSpec, widths_file, design: str, part: str, target: float, seed: int,
               epochs: int, args) -> dict:
    """Train one network for one seed; its row."""
    tag = hashlib.sha1(json.dumps(spec.widths, sort_keys=True).encode()).hexdigest()[:6]  # a design made again
    folder = f"t{round(target * 100)}-{part}-{design}-{tag}-e{epochs}-s{seed}"             # trains in new folders
    init = None
    if part == "teacher":
        teacher = pipe.trained_teacher()
        weights = pipe.out / "inherited" / f"t{round(target * 100)}-{design}-{tag}.json"
        if not weights.with_suffix(".pt").exists():
            inherited = StudentSpec.from_dict(spec.to_dict(), str(weights))
            save_student(inherited, inherited_student(teacher.model, inherited, str(pipe.teacher_checkpoint),
                                                      widths_file), weights)
        init = str(weights.with_suffix(".pt"))
    spec_copy = StudentSpec.from_dict(spec.to_dict(), design)
    spec_copy.name = f"{spec.name}-{part}-{tag}"
    lr = args.finetune_lr if part == "teacher" else 0.1
    summary = pipe.train_student(spec_copy, epochs, attention=True, init=init, seed=seed, lr=lr, batch_size=128,
                                 folder=folder)
    # the only time a run meets the test set: top-1 and whether it got each image right
    tested = evaluate_checkpoint(pipe.out / "train" / folder / "last.pt", args.data, per_image=True)
    ratio = spec.provenance.notes["ratio_to_teacher"]
    method = method_of(design, part)
    row = {"method": method, "design": design, "init": part, "target": target, "seed": seed, "epochs": epochs,
           "train_minutes": summary.seconds_this_session / 60, "ratio": ratio, "params": spec.params,
           "val_top1": summary.final_top1, "top1": tested["top1"], "images": tested["images"],
           "correct": pack_correct(tested["correct"]), "matched": matched(ratio, target), "network": spec.name,
           "widths": spec.widths}
    say(f"      {target:.0%} from {part:7s} {method:24s} seed {seed}: top-1 {row['top1']:.2f}% at {ratio:.3f} of the "
        f"teacher{'' if row['matched'] else ' (UNMATCHED)'}, {row['train_minutes']:.1f} min")
    return row


def _settings(args, prof, teacher: dict, pipe: Pipeline) -> dict:
    return {"data": args.data, "teacher": args.model, "teacher_epochs": args.teacher_epochs,
            "teacher_top1": teacher.final_top1, "teacher_params": teacher.params,
            "teacher_profile_ms": prof.network(next(iter(prof.networks))).full.median_ms,
            "targets": args.targets, "scratch_targets": args.scratch_targets,
            "default_allocation": DEFAULT_ALLOCATION,
            "finetune": f"{args.finetune_epochs} epochs, lr {args.finetune_lr} x0.2 at 30/60/80%, batch 128, CE + AT (beta 1e3)",
            "scratch": f"{args.teacher_epochs} epochs, lr 0.1 x0.2 at 30/60/80%, batch 128, CE + AT (beta 1e3)",
            "inherit": "each slot keeps the teacher's most Fisher-salient channels (the pruning run's saliency)",
            "backend": f"onnxruntime {prof.fingerprint.get('backend_version')}, {prof.fingerprint.get('threads')} "
                       "threads, batch 1, f32", "cpu": prof.fingerprint.get("cpu"),
            "python": platform.python_version(), "torch": torch.__version__}


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["init"], r["target"], r["method"]), []).append(r)
    return groups


def _summary(runs: list[dict]) -> dict:
    top1 = [r["top1"] for r in runs]
    return {"n": len(runs), "mean": statistics.mean(top1), "std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
            "ratio": statistics.median(r["ratio"] for r in runs), "params": runs[0]["params"],
            "minutes": sum(r["train_minutes"] for r in runs) / len(runs),
            "matched": all(r["matched"] for r in runs)}


BOOTSTRAP_TEST = "paired bootstrap over test images and seeds, 10,000 resamples"


def pack_correct(correct: list[bool]) -> str:
    """Per-image correctness as hex (8 images a byte), as a row keeps it."""
    import numpy as np

    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_correct(text: str, images: int):
    import numpy as np

    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:images].astype(bool)


def verdicts(rows: list[dict]) -> list[dict]:
    """The tool's default student against each rival, per start and target: the difference
    of top-1 with its 95% interval (``BOOTSTRAP_TEST``), and "won" / "lost" only where the
    interval excludes 0. A rival measured more than 3% slower than the target is not at this
    latency and is not compared; rows without per-image results cannot be."""
    from staircase.stats import bootstrap_difference

    groups = _groups(rows)
    found = []
    for init, target in sorted({(k[0], k[1]) for k in groups}):
        mine = groups.get((init, target, "staircase"))
        if not mine:
            continue
        for rival in sorted(k[2] for k in groups if k[:2] == (init, target) and k[2] != "staircase"):
            theirs = groups[(init, target, rival)]
            v = {"init": init, "target": target, "method": "staircase", "rival": rival,
                 "seeds": [len(mine), len(theirs)], "difference": None, "ci95": None, "test": None}
            ratio = statistics.median(r["ratio"] for r in theirs)
            if ratio > target * (1 + MATCH_WITHIN):
                v["verdict"] = f"not compared: the rival measured {ratio:.3f} of the teacher, slower than the target"
            elif not all("correct" in r for r in mine + theirs):
                v["verdict"] = "not compared: rows without per-image results"
            else:
                images = mine[0]["images"]
                d = bootstrap_difference([unpack_correct(r["correct"], images) for r in mine],
                                         [unpack_correct(r["correct"], images) for r in theirs])
                v.update(difference=d.mean, ci95=[d.low, d.high], test=BOOTSTRAP_TEST, images=images,
                         detectable_from=d.detectable_from, verdict=d.outcome)
            found.append(v)
    return found


def verdict_lines(found: list[dict]) -> list[str]:
    """One line per verdict, as the page prints it."""
    lines = []
    for v in found:
        head = f"- from {v['init']}, {v['target']:.0%} of the teacher, staircase against {v['rival']}: "
        if v["difference"] is None:
            lines.append(head + v["verdict"])
            continue
        lo, hi = v["ci95"]
        lines.append(head + f"{v['difference']:+.2f} points, 95% interval [{lo:+.2f}, {hi:+.2f}]: {v['verdict']} "
                     f"(seeds {v['seeds'][0]} and {v['seeds'][1]}, {v['images']} test images; this design detects "
                     f"differences from about {v['detectable_from']:.1f} points)")
    return lines


def _write(doc: dict, docs: Path) -> None:
    """results_cifar.json and RESULTS.md (with its plot) from the rows and the teacher's run."""
    docs.mkdir(parents=True, exist_ok=True)
    rows, settings, teacher = doc.get("rows", []), doc.get("settings"), doc.get("teacher")
    doc = {**doc, "verdicts": verdicts(rows)}
    atomic_write_json(docs / "results_cifar.json", doc)
    parts = ["# Which student to use: CIFAR-10 on this CPU", "",
             "Written by `scripts/reproduce_cifar.py` from `results_cifar.json`; the designs it trained are in "
             "`results_cifar/`.", ""]
    if teacher:
        parts += _teacher_section(teacher)
    if rows and settings:
        parts += _rows_section(rows, settings, doc["verdicts"], docs)
    else:
        parts += ["No student has been trained on this teacher yet.", ""]
    atomic_write_text(docs / "RESULTS.md", "\n".join(parts))


def _teacher_section(teacher: dict) -> list[str]:
    curve, stop = teacher["curve"], teacher["plateau"]
    every = max(1, len(curve) // 12)
    shown = [r for r in curve if r["epoch"] % every == 0 or r["epoch"] in (1, len(curve))]
    split = teacher["split"]
    return ["## The teacher", "",
            f"{teacher['model']} on {teacher['data']}, {teacher['epochs']} epochs ({teacher['recipe']}), trained "
            f"without the validation split ({split['val_split']:.0%} of the training images, split seed "
            f"{split['split_seed']}) and judged on it, epoch by epoch. Validation top-1 at the end: "
            f"{curve[-1]['val_top1']:.2f}% (best {max(r['val_top1'] for r in curve):.2f}%). Why it stopped: "
            f"{stop['reason']}.", "",
            "```", format_table(["epoch", "lr", "training loss", "validation top-1 %"],
                                [[r["epoch"], f"{r['lr']:.4g}", f"{r['train_loss']:.3f}", f"{r['val_top1']:.2f}"]
                                 for r in shown]), "```", ""]


def _rows_section(rows: list[dict], settings: dict, found: list[dict], docs: Path) -> list[str]:
    groups = {k: _summary(v) for k, v in _groups(rows).items()}
    table = format_table(
        ["from", "target", "method", "seeds", "ratio", "params", "top-1 % (mean +- std)", "min/run", "matched"],
        [[k[0], f"{k[1]:.0%}", k[2], s["n"], f"{s['ratio']:.3f}", s["params"], f"{s['mean']:.2f} +- {s['std']:.2f}",
          f"{s['minutes']:.1f}", "yes" if s["matched"] else "NO"] for k, s in sorted(groups.items())])
    plot = _plot(groups, settings, docs / "results_cifar.png")
    lines = "\n".join(f"| {k} | {v} |" for k, v in settings.items())
    return [f"""## The students

Ratio: the network's time measured beside the teacher (ONNX Runtime, batch 1), the median
over its seeds' rows; "matched": within 3% of the target. `staircase` is the tool's default
student (the {DEFAULT_ALLOCATION} allocation); `staircase-<allocation>` the others; `fisher` the
Fisher-pruned widths unsnapped (`copycat` when trained from scratch); "min/run":
wall-clock minutes of training, which include any time a run waited for the CPU. Rows so
far: {len(rows)}.

```
{table}
```

{chr(10).join(verdict_lines(found)) or "Not enough rows yet for a verdict."}

![top-1 vs latency]({plot.name})

## Settings

| setting | value |
|---|---|
{lines}
"""]


def _plot(groups: dict[tuple, dict], settings: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (part, method) in enumerate(sorted({(k[0], k[2]) for k in groups})):
        points = sorted((s["ratio"], s["mean"], s["std"]) for k, s in groups.items() if (k[0], k[2]) == (part, method))
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], capsize=3,
                    fmt="o-" if part == "teacher" else "s--", color=f"C{i % 10}", label=f"{method} (from {part})")
    ax.axvline(1.0, color="k", lw=0.5)
    ax.set_xlabel("latency measured beside the teacher (ratio; onnxruntime, batch 1)")
    ax.set_ylabel("test top-1 (%), mean +- std over seeds")
    ax.set_title(f"{settings['teacher']} on {settings['data'].split(':')[0]}: teacher "
                 f"{settings['teacher_top1']:.1f}% at ratio 1", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
