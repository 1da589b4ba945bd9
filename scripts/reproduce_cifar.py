"""Is the student staircase recommends the one to use? CIFAR-10 on this CPU, every network
at the same measured latency and the same training budget.

Teacher WRN-16-2 (WRN-40-2 is the paper's; on 2 CPU cores it trains about three times
slower), ONNX Runtime, batch 1. The stages, each kept so that a rerun resumes where the last
one stopped:

1. **The teacher**, trained without the validation split (``--val-split`` of the training
   images, ``--split-seed``) until its validation top-1 stops rising (``plateau``).
2. **The profile** of this CPU and the **Fisher saliency** (a pruning run of a copy of the
   teacher; it only ranks channels).
3. **The designs** at each target (a share of the teacher's time in the profile): the
   staircase student under every allocation (``staircase-<allocation>``), and, matched to the
   Fisher student's latency, uniform scaling, L1 widths rounded to the network's step
   (``l1-round``) and the Fisher-pruned widths unsnapped (``fisher``; ``copycat`` when trained
   from scratch). Kept in ``docs/results_cifar/t<target>/``.
4. **Latency**: all networks of one target timed beside the teacher in one run, interleaved
   (``measure_together``), each with the 95% interval of its ratio. A rival is at the
   default student's latency when, pass by pass, its time is no more than 3% above the
   default's (``matched``: the median of the per-pass quotients); else it is compared with
   nothing.
5. **Validation**, where every choice is made (the test set is not read): the fine-tuning
   recipe (epochs and learning rate) on the Fisher student at 50%, then the default
   allocation, from each allocation's student at every target.
6. **Rows**: from the teacher (each slot keeps the teacher's most Fisher-salient channels,
   fine-tuned with the recipe validation chose, cross-entropy + KD + attention transfer)
   the default student and the three baselines at every target, ``--seeds``, the other
   allocations ``--allocation-seeds``; from scratch at ``--scratch-targets`` the
   default student, the copycat and uniform, ``--scratch-seeds``, the teacher's epochs. Each
   finished run is evaluated once on the test set, keeping whether it got each image right,
   and written as a row of ``docs/results_cifar.json`` as it finishes.

The verdicts compare the default student (``staircase``) with each rival at the same start
and target by a paired bootstrap over test images and seeds. ``docs/RESULTS.md`` and its plot
are rendered from the JSON (``--render`` renders them alone). Usage:

    python scripts/reproduce_cifar.py                      # CIFAR-10 subset in ../shared/data
    python scripts/reproduce_cifar.py --data digits --teacher-epochs 6 --recipe-epochs 1 --recipe-lrs 0.01 \\
        --seeds 0 --allocation-seeds 0 --scratch-targets --accept-teacher --runs runs/smoke --docs runs/smoke
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import shutil
import statistics
import time
from pathlib import Path

import torch

from staircase.design import job as design_job
from staircase.design.allocations import ALLOCATIONS, DEFAULT_ALLOCATION
from staircase.design.inherit import inherited_student, save_student
from staircase.design.measured import MATCH_WITHIN, RatioInterval, no_slower, time_over
from staircase.files import atomic_write_json, atomic_write_text
from staircase.pipeline import Pipeline
from staircase.spec import StudentSpec
from staircase.stats import welch_difference
from staircase.table import format_table
from staircase.train.evaluate import evaluate_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# design -> how its spec is made: (the allocation designed, the suffix of one of its baselines)
DESIGNS = {**{f"staircase-{a}": (a, "") for a in ALLOCATIONS},
           "uniform": ("fisher", "-uniform"), "l1-round": ("fisher", "-l1-round"), "fisher": ("fisher", "-unsnapped")}
# trained from scratch: the default student, the Fisher widths unsnapped (the copycat), uniform scaling
FROM_SCRATCH = ("default", "fisher", "uniform")
MIN_SEEDS = 2  # a verdict counts the seeds' spread as well as the test images'
RECIPE_DESIGN, RECIPE_TARGET, VALIDATION_SEED = "staircase-fisher", 0.5, 0
# kept with the results (committed), so that later sessions train rows of the same teacher and designs
KEPT = ("teacher/last.pt", "teacher/config.json", "teacher/metrics.jsonl", "teacher/summary.json",
        "fisher-widths.json", "profile.json")
BOOTSTRAP_TEST = "paired bootstrap over test images and seeds, 10,000 resamples"


def method_of(design: str, part: str, default: str) -> str:
    """A row's method: ``staircase`` for the default allocation's student, ``copycat`` for the
    Fisher-pruned widths trained from scratch, else the design's name."""
    if design == f"staircase-{default}":
        return "staircase"
    return "copycat" if design == "fisher" and part == "scratch" else design


def say(text: str) -> None:
    print(text, flush=True)


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="cifar10:../shared/data")
    ap.add_argument("--model", default="wrn_16_2")
    ap.add_argument("--teacher-epochs", type=int, default=60, help="the teacher's, and the from-scratch students'")
    ap.add_argument("--accept-teacher", action="store_true",
                    help="go on with a teacher that has not stopped improving (smoke runs only)")
    ap.add_argument("--val-split", type=float, default=0.1,
                    help="every run trains without this share of the training images and is judged on it; the test "
                         "set is read once per trained network, for the final table")
    ap.add_argument("--split-seed", type=int, default=0, help="which training images are the validation split")
    ap.add_argument("--stop-after", choices=("teacher", "designs", "validation"), default=None,
                    help="run the stages up to this one only")
    ap.add_argument("--recipe-epochs", type=int, nargs="+", default=[10],
                    help="fine-tuning epochs validation chooses from (on 2 CPU cores a 10-epoch fine-tuning takes "
                         "about 4 minutes: more does not fit the experiment's 10 CPU-hours)")
    ap.add_argument("--recipe-lrs", type=float, nargs="+", default=[0.01, 0.03],
                    help="fine-tuning learning rates validation chooses from")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.35, 0.5, 0.7],
                    help="shares of the teacher's latency")
    ap.add_argument("--scratch-targets", type=float, nargs="*", default=[0.5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                    help="rows from the teacher: the default student, uniform, l1-round and fisher")
    ap.add_argument("--allocation-seeds", type=int, nargs="+", default=[0, 1],
                    help="rows from the teacher of the allocations validation did not choose (two seeds: five "
                         "would add about two hours to the experiment's 10 CPU-hours)")
    ap.add_argument("--scratch-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parts", nargs="+", choices=("teacher", "scratch"), default=["teacher", "scratch"],
                    help="train only these parts' rows this time (the page shows every row there is)")
    ap.add_argument("--prune-share", type=float, default=0.3, help="the saliency run prunes to this share")
    ap.add_argument("--passes", type=int, default=11, help="interleaved passes timing each target's networks")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-device", default="auto")
    ap.add_argument("--budget-minutes", type=float, default=None, help="stop starting runs after this long")
    ap.add_argument("--render", action="store_true", help="only render RESULTS.md from results_cifar.json")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "reproduce_cifar")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    return ap.parse_args()


class OutOfBudget(Exception):
    """The run's --budget-minutes is spent: rerun to continue."""


def main() -> int:
    args = arguments()
    rows_path = args.docs / "results_cifar.json"
    doc = json.loads(rows_path.read_text()) if rows_path.exists() else {}
    if args.render:
        _write(doc, args.docs)
        return 0
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    def budget() -> None:
        if args.budget_minutes and time.perf_counter() - started > 60 * args.budget_minutes:
            raise OutOfBudget

    pipe = Pipeline(args.runs, args.model, args.data, threads=args.threads, train_device=args.train_device,
                    val_split=args.val_split, split_seed=args.split_seed, log=lambda m: say(f"      {m}"))
    split = {"val_split": args.val_split, "split_seed": args.split_seed}
    if doc.get("teacher", {}).get("split") != split or doc["teacher"].get("epochs") != args.teacher_epochs:
        doc = {}  # another teacher or another split: in git's history only
    kept = args.docs / "results_cifar"
    _carry(kept, args.runs, KEPT)  # what an earlier session kept: the same teacher, profile and saliency
    try:
        return _stages(args, pipe, doc, kept, budget)
    except OutOfBudget:
        say("budget reached: rerun to continue")
        return 0
    finally:
        _carry(args.runs, kept, KEPT)


def _stages(args, pipe: Pipeline, doc: dict, kept: Path, budget) -> int:
    say(f"[1/6] the teacher, {args.teacher_epochs} epochs (deterministic: a later session retrains the same one)")
    teacher = pipe.teacher(args.teacher_epochs, lr=0.1, batch_size=128, deterministic=True)
    curve = teacher_curve(args.runs / "teacher" / "metrics.jsonl")
    doc["teacher"] = {"model": args.model, "data": args.data, "epochs": args.teacher_epochs, "curve": curve,
                      "plateau": plateau(curve), "split": {"val_split": args.val_split, "split_seed": args.split_seed},
                      "recipe": "SGD 0.9, lr 0.1 x0.2 at 30/60/80%, wd 5e-4, batch 128, pad-4 crops and flips"}
    doc.setdefault("rows", [])
    _write(doc, args.docs)
    stop = doc["teacher"]["plateau"]
    say(f"      validation top-1 {curve[-1]['val_top1']:.2f}% after {len(curve)} epochs; {stop['reason']}")
    if not stop["plateaued"] and not args.accept_teacher:
        say(f"      rerun with --teacher-epochs {2 * args.teacher_epochs}: the students need a teacher that has "
            "stopped improving")
        return 1
    if args.stop_after == "teacher":
        return 0
    say(f"[2/6] profiling this CPU for {args.model} (onnxruntime, the profiler's defaults), then the Fisher saliency")
    prof = pipe.profile(progress=False).profile
    widths_file = pipe.prune(args.prune_share)
    _carry(args.runs, kept, KEPT)
    targets = sorted(set(args.targets) | set(args.scratch_targets) | {RECIPE_TARGET})
    say(f"[3/6] designs at {', '.join(f'{t:.0%}' for t in targets)} of the teacher (kept in {kept})")
    specs = {t: _designs(pipe, prof, t, kept) for t in targets}
    say(f"[4/6] latency: each target's networks timed together, {args.passes} interleaved passes")
    doc["latency"] = {key: record for key, record in doc.get("latency", {}).items() if float(key) in specs}
    for target in targets:
        if not _measured(doc["latency"].get(str(target)), specs[target]):
            doc["latency"][str(target)] = measure_target(pipe, specs[target], target, args.passes)
            _write(doc, args.docs)
    rows = current_rows(doc["rows"], specs, doc["latency"])
    if len(rows) < len(doc["rows"]):
        say(f"      {len(doc['rows']) - len(rows)} rows trained designs made or measured again since: dropped")
    doc["rows"] = rows
    _write(doc, args.docs)
    if args.stop_after == "designs":
        return 0
    say("[5/6] validation: the fine-tuning recipe, then the default allocation (the test set is not read)")
    doc["validation"] = validate(pipe, specs, widths_file, args, doc.get("validation", {}), budget,
                                 lambda v: _write({**doc, "validation": v}, args.docs))
    choice = doc["validation"]
    default = choice["allocation"]["chosen"]
    if default != DEFAULT_ALLOCATION:
        say(f"      validation chose the {default} allocation; the tool's default is {DEFAULT_ALLOCATION}: set "
            "DEFAULT_ALLOCATION in staircase/design/allocations.py to match")
    doc["settings"] = _settings(args, prof, teacher, choice)
    _write(doc, args.docs)
    if args.stop_after == "validation":
        return 0
    say("[6/6] rows: one training run each, evaluated once on the test set")
    if "teacher_test" not in doc:
        doc["teacher_test"] = _judged(args.runs / "teacher", args, "test")
    plan = _plan(args, choice)
    for seed in sorted(set(args.seeds) | set(args.allocation_seeds) | set(args.scratch_seeds)):
        for part, targets, designs, epochs, lr, seeds in plan:
            if part not in args.parts or seed not in seeds:
                continue
            for target in targets:
                for design in designs:
                    key = (design, part, target, seed, epochs)
                    if any((r["design"], r["init"], r["target"], r["seed"], r["epochs"]) == key for r in doc["rows"]):
                        continue
                    budget()
                    row = _train_row(pipe, specs[target][design], widths_file, design, part, target, seed, epochs, lr,
                                     args, doc["latency"][str(target)], default)
                    doc["rows"].append(row)
                    _write(doc, args.docs)
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
    window = max(3, round(len(curve) / 10))
    if len(curve) < 2 * window:
        return {"plateaued": False, "rise": None, "ci95": None, "window": window,
                "reason": f"fewer than {2 * window} epochs: too short to tell"}
    last = [r["val_top1"] for r in curve[-window:]]
    before = [r["val_top1"] for r in curve[-2 * window:-window]]
    change = welch_difference(last, before)
    rise, low, high = change.mean, change.low, change.high
    flat = low <= 0
    return {"plateaued": flat, "rise": rise, "ci95": [low, high], "window": window,
            "reason": f"the mean validation top-1 of the last {window} epochs is {rise:+.2f} points against the "
                      f"{window} before, 95% interval [{low:+.2f}, {high:+.2f}] "
                      f"({'no detectable rise: stopped rising' if flat else 'still rising'})"}


def _carry(source: Path, dest: Path, names) -> None:
    """Copy each of ``names`` from ``source`` to ``dest`` where ``dest`` lacks it or has an
    older one."""
    for name in names:
        src, dst = source / name, dest / name
        if src.exists() and (not dst.exists() or src.stat().st_mtime > dst.stat().st_mtime):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _designs(pipe: Pipeline, prof, target: float, keep: Path) -> dict[str, StudentSpec]:
    """Each design's spec at ``target``: designed once and kept in ``keep`` (committed with
    the results, so the rows of later sessions train the same networks)."""
    folder = keep / f"t{round(target * 100)}"
    kept = {m: StudentSpec.load(folder / f"{m}.json") for m in DESIGNS if (folder / f"{m}.json").exists()}
    missing = sorted({DESIGNS[m][0] for m in DESIGNS if m not in kept})  # allocations to design again
    if not missing:
        say(f"      reusing the designs in {folder}")
        return kept
    designs = {}
    for allocation in missing:
        name = f"{pipe.model}-t{round(target * 100)}-{allocation}"
        settings = design_job.DesignSettings(
            model=pipe.model, profile=str(prof.path), out=str(pipe.out / "students" / f"{name}.json"),
            widths=str(pipe.widths_path()), target_share=target, baselines=allocation == "fisher",
            allocation=allocation)
        found = design_job.design(settings, teacher=pipe.trained_teacher(), log=pipe.log).designs
        designs.update({(allocation, d.spec.name[len(name):]): d.spec for d in found})
    specs = {**kept, **{m: designs[how] for m, how in DESIGNS.items() if m not in kept}}
    for method in DESIGNS:
        if method not in kept:
            specs[method].save(folder / f"{method}.json")
            say(f"      {target:.0%} {method:24s} {specs[method].params:>8,} params (designed now)")
    return specs


def widths_tag(spec: StudentSpec) -> str:
    """Six hex digits naming a design's widths: a design made again trains and measures anew."""
    return hashlib.sha1(json.dumps(spec.widths, sort_keys=True).encode()).hexdigest()[:6]


def measure_target(pipe: Pipeline, specs: dict[str, StudentSpec], target: float, passes: int) -> dict:
    """One measurement run: every design of ``target`` timed beside the teacher in the same
    ``passes`` (ONNX Runtime, batch 1), each pass in a new order; each design's ratio to the
    teacher with its 95% interval."""
    from staircase.design.measured import measure_together
    from staircase.profile.backends import get_backend

    teacher = pipe.trained_teacher()
    backend = get_backend("onnxruntime", threads=pipe.threads)
    found = measure_together(backend, teacher.model, {d: spec.build() for d, spec in specs.items()},
                             teacher.architecture.input_size, passes=passes, seed=round(target * 100))
    run = f"t{round(target * 100)}-{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%SZ}"
    record = {"run": run, "passes": passes, "backend": f"onnxruntime {backend.version()}, {pipe.threads} threads",
              "networks": {d: {"widths": widths_tag(specs[d]), **found[d].to_dict()} for d in specs}}
    for d, r in record["networks"].items():
        lo, hi = r["ci95"]
        say(f"      {target:.0%} {d:24s} {r['ratio']:.3f} of the teacher [{lo:.3f}, {hi:.3f}]")
    return record


def _measured(record: dict | None, specs: dict[str, StudentSpec]) -> bool:
    """Whether ``record`` timed exactly these designs."""
    return bool(record) and {d: r["widths"] for d, r in record["networks"].items()} == \
        {d: widths_tag(s) for d, s in specs.items()}


def current_rows(rows: list[dict], specs: dict[float, dict[str, StudentSpec]], latency: dict) -> list[dict]:
    """The rows that trained the designs now kept, each with its design's latency from the
    target's current measurement run; a design made again (its spec file deleted) leaves its
    old rows behind, in git's history only."""
    kept = []
    for r in rows:
        spec = specs.get(r["target"], {}).get(r["design"])
        if spec is None or r["widths"] != spec.widths:
            continue
        kept.append({**r, **_latency_of(latency[str(r["target"])], r["design"])})
    return kept


def _latency_of(record: dict, design: str) -> dict:
    timed = record["networks"][design]
    return {"ratio": timed["ratio"], "ratio_ci95": timed["ci95"], "ratio_passes": timed["passes"],
            "measurement": record["run"]}


def _fine_tune(pipe: Pipeline, spec: StudentSpec, widths_file, design: str, part: str, target: float, seed: int,
               epochs: int, lr: float):
    """Train one network for one seed (from the teacher's channels or from scratch, KD + AT
    from the teacher); its summary and run folder. A finished run is reused, a killed one
    resumed."""
    tag = widths_tag(spec)
    folder = f"t{round(target * 100)}-{part}-{design}-{tag}-e{epochs}-lr{lr:g}-s{seed}"
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
    summary = pipe.train_student(spec_copy, epochs, attention=True, init=init, seed=seed, lr=lr, batch_size=128,
                                 folder=folder, kd_alpha=KD_ALPHA)
    return summary, pipe.out / "train" / folder


KD_ALPHA = 0.9  # the distillation weight (T = 4) of every student's loss, beside attention transfer (beta 1e3)


def _judged(run: Path, args, split: str) -> dict:
    """A finished run's last checkpoint on the validation split or the test set: top-1, the
    image count, and whether it got each image right (packed)."""
    held_out = {"val_split": args.val_split, "split_seed": args.split_seed} if split == "validation" else {}
    found = evaluate_checkpoint(run / "last.pt", args.data, per_image=True, **held_out)
    return {"top1": found["top1"], "images": found["images"], "correct": pack_correct(found["correct"])}


def validate(pipe: Pipeline, specs, widths_file, args, previous: dict, budget, save) -> dict:
    """The choices made on the validation split: the recipe (``choose_recipe``) from
    ``--recipe-epochs`` x ``--recipe-lrs`` on the Fisher student at 50%, then the default
    allocation (``choose_allocation``) from each allocation's student at every target with
    that recipe; one seed each. Runs already judged are reused (``previous``)."""
    found = {"recipe": {"design": RECIPE_DESIGN, "target": RECIPE_TARGET, "seed": VALIDATION_SEED,
                        "candidates": []},
             "allocation": {"seed": VALIDATION_SEED, "targets": args.targets, "candidates": []}}
    done = {(c["epochs"], c["lr"]): c for c in previous.get("recipe", {}).get("candidates", [])}
    for epochs in args.recipe_epochs:
        for lr in args.recipe_lrs:
            if (epochs, lr) not in done:
                budget()
                summary, run = _fine_tune(pipe, specs[RECIPE_TARGET][RECIPE_DESIGN], widths_file, RECIPE_DESIGN,
                                          "teacher", RECIPE_TARGET, VALIDATION_SEED, epochs, lr)
                done[(epochs, lr)] = {"epochs": epochs, "lr": lr, "train_minutes": summary.seconds_this_session / 60,
                                      **_judged(run, args, "validation")}
                say(f"      recipe {epochs} epochs, lr {lr:g}: validation top-1 {done[(epochs, lr)]['top1']:.2f}%")
                save(found | {"recipe": {**found["recipe"], "candidates": list(done.values())}})
            found["recipe"]["candidates"].append(done[(epochs, lr)])
    found["recipe"].update(choose_recipe(found["recipe"]["candidates"]))
    recipe = found["recipe"]["chosen"]
    done = {(c["allocation"], c["target"], c["epochs"], c["lr"]): c
            for c in previous.get("allocation", {}).get("candidates", [])}
    for target in args.targets:
        for allocation in ALLOCATIONS:
            key = (allocation, target, recipe["epochs"], recipe["lr"])
            if key not in done:
                budget()
                design = f"staircase-{allocation}"
                summary, run = _fine_tune(pipe, specs[target][design], widths_file, design, "teacher", target,
                                          VALIDATION_SEED, recipe["epochs"], recipe["lr"])
                done[key] = {"allocation": allocation, "target": target, "epochs": recipe["epochs"],
                             "lr": recipe["lr"], **_judged(run, args, "validation")}
                say(f"      {target:.0%} {design}: validation top-1 {done[key]['top1']:.2f}%")
                save(found | {"allocation": {**found["allocation"], "candidates": list(done.values())}})
            found["allocation"]["candidates"].append(done[key])
    found["allocation"].update(choose_allocation(found["allocation"]["candidates"]))
    save(found)
    say(f"      recipe: {found['recipe']['reason']}")
    say(f"      allocation: {found['allocation']['reason']}")
    return found


RECIPE_RULE = ("the fewest epochs whose validation top-1 is not detectably below the best candidate's (paired "
               "bootstrap over the validation images, 95%), and among those the highest")
ALLOCATION_RULE = ("the highest validation top-1 pooled over the targets (each target's validation images counted "
                   "once per target)")


def choose_recipe(candidates: list[dict]) -> dict:
    """``RECIPE_RULE`` over ``candidates`` (``epochs``, ``lr``, ``top1``, ``images``,
    ``correct``): the chosen one and why."""
    from staircase.stats import bootstrap_difference

    best = max(candidates, key=lambda c: c["top1"])
    close = [c for c in candidates
             if c is best or bootstrap_difference([_correct(best)], [_correct(c)]).low <= 0]
    fewest = min(c["epochs"] for c in close)
    chosen = max((c for c in close if c["epochs"] == fewest), key=lambda c: c["top1"])
    others = []
    for c in candidates:
        if c is not chosen:
            d = bootstrap_difference([_correct(c)], [_correct(chosen)])
            others.append(f"{c['epochs']} epochs at lr {c['lr']:g}: {d.mean:+.2f} points [{d.low:+.2f}, {d.high:+.2f}]"
                          f", {d.outcome}")
    reason = (f"{chosen['epochs']} epochs at lr {chosen['lr']:g} ({chosen['top1']:.2f}% on validation)"
              + (f"; against it, {'; '.join(others)}" if others else ""))
    return {"chosen": {"epochs": chosen["epochs"], "lr": chosen["lr"]}, "rule": RECIPE_RULE, "reason": reason}


def choose_allocation(candidates: list[dict]) -> dict:
    """``ALLOCATION_RULE`` over ``candidates`` (``allocation``, ``target``, ``correct`` ...):
    the chosen allocation, its difference from each other one (paired bootstrap over the
    pooled validation images), and why."""
    import numpy as np

    from staircase.stats import bootstrap_difference

    pooled = {}
    for a in dict.fromkeys(c["allocation"] for c in candidates):
        runs = sorted((c for c in candidates if c["allocation"] == a), key=lambda c: c["target"])
        pooled[a] = np.concatenate([_correct(c) for c in runs])
    chosen = max(pooled, key=lambda a: (pooled[a].mean(), a == DEFAULT_ALLOCATION))
    comparisons = []
    for a in pooled:
        if a != chosen:
            d = bootstrap_difference([pooled[chosen]], [pooled[a]])
            comparisons.append({"rival": a, "difference": d.mean, "ci95": [d.low, d.high], "verdict": d.outcome})
    margins = "; ".join(f"{c['difference']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] against {c['rival']}"
                        for c in comparisons)
    clear = all(c["verdict"] == "won" for c in comparisons)
    reason = (f"{chosen}: {100 * pooled[chosen].mean():.2f}% pooled validation top-1; {margins} "
              f"({'ahead of every other detectably' if clear else 'not detectably ahead of all: the highest mean'})")
    return {"chosen": chosen, "rule": ALLOCATION_RULE, "comparisons": comparisons, "reason": reason}


def _correct(c: dict):
    return unpack_correct(c["correct"], c["images"])


def _train_row(pipe: Pipeline, spec: StudentSpec, widths_file, design: str, part: str, target: float, seed: int,
               epochs: int, lr: float, args, latency: dict, default: str) -> dict:
    """Train one network for one seed and test it (the only time a run meets the test set);
    its row."""
    summary, run = _fine_tune(pipe, spec, widths_file, design, part, target, seed, epochs, lr)
    tested = _judged(run, args, "test")
    method = method_of(design, part, default)
    row = {"method": method, "design": design, "init": part, "target": target, "seed": seed, "epochs": epochs,
           "lr": lr, "train_minutes": summary.seconds_this_session / 60, "params": spec.params,
           "val_top1": summary.final_top1, **tested, **_latency_of(latency, design), "network": spec.name,
           "widths": spec.widths}
    say(f"      {target:.0%} from {part:7s} {method:24s} seed {seed}: top-1 {row['top1']:.2f}% at {row['ratio']:.3f} "
        f"of the teacher, {row['train_minutes']:.1f} min")
    return row


def _plan(args, choice: dict) -> list[tuple]:
    """The rows to train, as (init, targets, designs, epochs, lr, seeds): the default student and
    the three baselines, the other allocations, and from scratch."""
    default, recipe = choice["allocation"]["chosen"], choice["recipe"]["chosen"]
    others = [d for d in DESIGNS if d.startswith("staircase-") and d != f"staircase-{default}"]
    return [("teacher", args.targets, [d for d in DESIGNS if d not in others], recipe["epochs"], recipe["lr"],
             args.seeds),
            ("teacher", args.targets, others, recipe["epochs"], recipe["lr"], args.allocation_seeds),
            ("scratch", args.scratch_targets, [f"staircase-{default}" if d == "default" else d for d in FROM_SCRATCH],
             args.teacher_epochs, 0.1, args.scratch_seeds)]


def _settings(args, prof, teacher, choice: dict) -> dict:
    recipe = choice["recipe"]["chosen"]
    loss = f"CE x{1 - KD_ALPHA:g} + KD x{KD_ALPHA:g} (T 4) + AT (beta 1e3)"
    return {"data": args.data, "teacher": args.model, "teacher_epochs": args.teacher_epochs,
            "teacher_top1": teacher.final_top1, "teacher_params": teacher.params,
            "teacher_profile_ms": prof.network(next(iter(prof.networks))).full.median_ms,
            "validation split": f"{args.val_split:.0%} of the training images, split seed {args.split_seed}",
            "targets": args.targets, "scratch_targets": args.scratch_targets,
            "default_allocation": choice["allocation"]["chosen"],
            "finetune": f"{recipe['epochs']} epochs, lr {recipe['lr']:g} x0.2 at 30/60/80%, batch 128, {loss}",
            "scratch": f"{args.teacher_epochs} epochs, lr 0.1 x0.2 at 30/60/80%, batch 128, {loss}",
            **planned(_plan(args, choice), choice["allocation"]["chosen"]),
            "inherit": "each slot keeps the teacher's most Fisher-salient channels (the pruning run's saliency)",
            "backend": f"onnxruntime {prof.fingerprint.get('backend_version')}, {prof.fingerprint.get('threads')} "
                       "threads, batch 1, f32", "cpu": prof.fingerprint.get("cpu"),
            "python": platform.python_version(), "torch": torch.__version__}


def planned(plan: list[tuple], default: str) -> dict:
    """The settings that say what ``plan`` (``_plan``) trains: its seeds per part and its rows."""
    return {"seeds": "; ".join(f"from {init}: {', '.join(method_of(d, init, default) for d in designs)}, "
                               f"{_seed_text(seeds)}"
                               for init, _, designs, _, _, seeds in plan),
            "planned_rows": sum(len(targets) * len(designs) * len(seeds) for _, targets, designs, _, _, seeds in plan)}


def _seed_text(seeds: list[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["init"], r["target"], r["method"]), []).append(r)
    return groups


def _summary(runs: list[dict], default: list[dict] | None) -> dict:
    top1 = [r["top1"] for r in runs]
    return {"n": len(runs), "mean": statistics.mean(top1), "std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
            "val": statistics.mean(r["val_top1"] for r in runs), "ratio": runs[0]["ratio"],
            "ci95": runs[0]["ratio_ci95"], "params": runs[0]["params"],
            "minutes": sum(r["train_minutes"] for r in runs) / len(runs),
            "vs_default": _against(runs, default) if default else None}


def _against(theirs: list[dict], mine: list[dict]) -> RatioInterval | None:
    """``theirs``'s time over ``mine``'s, pass by pass (``measured.time_over``): its median
    and 95% interval; None when the two were not timed in one measurement run."""
    runs = {r["measurement"] for r in theirs + mine}
    if len(runs) != 1:
        return None
    return time_over(theirs[0]["ratio_passes"], mine[0]["ratio_passes"])


def pack_correct(correct: list[bool]) -> str:
    """Per-image correctness as hex (8 images a byte), as a row keeps it."""
    import numpy as np

    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_correct(text: str, images: int):
    import numpy as np

    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:images].astype(bool)


def verdicts(rows: list[dict]) -> list[dict]:
    """The default student against each rival, per start and target: the difference of
    top-1 with its 95% interval (``BOOTSTRAP_TEST``), "won" / "lost" only where the interval
    excludes 0, and only with ``MIN_SEEDS`` runs a side. A rival more than 3% slower than the
    default student in the same measurement run (``measured.no_slower``) is not at its latency
    and is not compared; neither are networks timed in different runs, nor rows without
    per-image results."""
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
            latency = _against(theirs, mine)
            if latency is None:
                runs = sorted({r["measurement"] for r in mine + theirs})
                v["verdict"] = f"not compared: timed in different measurement runs ({', '.join(runs)})"
            elif not no_slower(latency.ratio):
                v["verdict"] = (f"not compared: the rival took {latency.ratio:.3f}x the default student's time "
                                f"[{latency.low:.3f}, {latency.high:.3f}] in the same passes, more than "
                                f"{MATCH_WITHIN:.0%} slower")
            else:
                v.update(judged(mine, theirs))
            found.append(v)
    return found


def judged(mine: list[dict], theirs: list[dict]) -> dict:
    """``mine``'s top-1 minus ``theirs``'s from their rows' per-image results: the difference
    with its 95% interval (``BOOTSTRAP_TEST``) and what it allows, "not judged yet" with fewer
    than ``MIN_SEEDS`` runs a side (the interval would count the images only), "not compared"
    for rows without per-image results."""
    from staircase.stats import bootstrap_difference

    if not all("correct" in r for r in mine + theirs):
        return {"verdict": "not compared: rows without per-image results"}
    images = mine[0]["images"]
    d = bootstrap_difference([unpack_correct(r["correct"], images) for r in mine],
                             [unpack_correct(r["correct"], images) for r in theirs])
    verdict = d.outcome if min(len(mine), len(theirs)) >= MIN_SEEDS else \
        f"not judged yet: fewer than {MIN_SEEDS} seeds on a side"
    return {"difference": d.mean, "ci95": [d.low, d.high], "test": BOOTSTRAP_TEST, "images": images,
            "detectable_from": d.detectable_from, "verdict": verdict}


def starts(rows: list[dict]) -> list[dict]:
    """Each design trained both ways at one target: from the teacher's channels (the short
    fine-tuning) minus from scratch (the teacher's epochs), by the same paired bootstrap as
    the verdicts (``judged``), with each side's epochs and minutes per run: what
    ``--inherit`` buys."""
    by: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        by.setdefault((r["target"], r["design"]), {}).setdefault(r["init"], []).append(r)
    found = []
    for (target, design), sides in sorted(by.items()):
        inherited, scratch = sides.get("teacher"), sides.get("scratch")
        if not inherited or not scratch:
            continue
        s = {"target": target, "design": design, "methods": [inherited[0]["method"], scratch[0]["method"]],
             "seeds": [len(inherited), len(scratch)],
             "epochs": [inherited[0]["epochs"], scratch[0]["epochs"]],
             "minutes": [statistics.mean(r["train_minutes"] for r in side) for side in (inherited, scratch)],
             "difference": None, "ci95": None, "test": None}
        s.update(judged(inherited, scratch))
        found.append(s)
    return found


def start_lines(found: list[dict]) -> list[str]:
    """One line per design trained both ways, as the page prints it."""
    lines = []
    for s in found:
        (e_in, e_sc), (m_in, m_sc) = s["epochs"], s["minutes"]
        head = (f"- {s['target']:.0%}, {s['methods'][0]} from the teacher ({e_in} epochs, {m_in:.1f} min a run) "
                f"against {s['methods'][1]} from scratch ({e_sc} epochs, {m_sc:.1f} min): ")
        lines.append(head + judged_text(s))
    return lines


def verdict_lines(found: list[dict]) -> list[str]:
    """One line per verdict, as the page prints it."""
    lines = []
    for v in found:
        head = f"- from {v['init']}, {v['target']:.0%} of the teacher, staircase against {v['rival']}: "
        lines.append(head + judged_text(v, detectable=True))
    return lines


def judged_text(j: dict, detectable: bool = False) -> str:
    """A ``judged`` difference as the page prints it after its line's head: the difference, its
    interval, the verdict and the runs behind it (with ``detectable``, the smallest difference
    the design detects)."""
    if j["difference"] is None:
        return j["verdict"]
    lo, hi = j["ci95"]
    smallest = f"; this design detects differences from about {j['detectable_from']:.1f} points" if detectable else ""
    return (f"{j['difference']:+.2f} points, 95% interval [{lo:+.2f}, {hi:+.2f}]: {j['verdict']} "
            f"(seeds {j['seeds'][0]} and {j['seeds'][1]}, {j['images']} test images{smallest})")


def _write(doc: dict, docs: Path) -> None:
    """results_cifar.json and RESULTS.md (with its plot) from the rows and the teacher's run."""
    found, both_ways = verdicts(doc.get("rows", [])), starts(doc.get("rows", []))
    atomic_write_json(docs / "results_cifar.json", {**doc, "verdicts": found, "starts": both_ways})
    atomic_write_text(docs / "RESULTS.md", render(doc, docs, found, both_ways))


def render(doc: dict, docs: Path, found: list[dict] | None = None, both_ways: list[dict] | None = None) -> str:
    """RESULTS.md for ``doc`` (results_cifar.json; ``found`` and ``both_ways``: its verdicts
    and ``starts`` where already computed); the plot is written beside it."""
    rows, settings, teacher = doc.get("rows", []), doc.get("settings"), doc.get("teacher")
    parts = ["# Which student to use: CIFAR-10 on this CPU", "",
             "Written by `scripts/reproduce_cifar.py` from `results_cifar.json`; the teacher, profile, saliency "
             "and designs it used are in `results_cifar/`.", ""]
    if teacher:
        parts += _teacher_section(teacher)
    if doc.get("latency"):
        parts += _latency_section(doc["latency"], doc.get("validation", {}).get("allocation", {}).get("chosen"))
    if doc.get("validation"):
        parts += _validation_section(doc["validation"])
    if rows and settings:
        parts += _rows_section(rows, settings, verdicts(rows) if found is None else found,
                               starts(rows) if both_ways is None else both_ways, docs, doc.get("teacher_test"))
    else:
        parts += ["No student has been tested yet.", ""]
    return "\n".join(parts)


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


def _latency_section(latency: dict, default: str | None) -> list[str]:
    table = []
    for key, record in sorted(latency.items(), key=lambda kv: float(kv[0])):
        nets = record["networks"]
        for design, r in sorted(nets.items(), key=lambda kv: kv[1]["ratio"]):
            lo, hi = r["ci95"]
            row = [f"{float(key):.0%}", design, f"{r['ratio']:.3f} [{lo:.3f}, {hi:.3f}]"]
            if default:
                q = time_over(r["passes"], nets[f"staircase-{default}"]["passes"])
                row += [q.text(), "yes" if no_slower(q.ratio) else "NO"]
            table.append(row + [record["run"]])
    passes = sorted({record["passes"] for record in latency.values()})
    backends = sorted({record["backend"] for record in latency.values()})
    against = ([f"x staircase-{default} [95%]", "at its latency"] if default else [])
    return ["## Latency", "",
            f"Each target's designs timed beside the teacher in one measurement run ({'; '.join(backends)}, batch 1), "
            f"{'/'.join(map(str, passes))} passes, each pass in a new random order. Ratio: the median of the "
            "passes' ratios to the teacher, with its distribution-free 95% interval (order statistics). The "
            "target is the share each design was made for, judged by the designer at the profile's speed; how far "
            "the ratio here lies from it is the machine's state during the run; the comparisons use the quotients "
            "against the default student, pass by pass."
            + (f" Against the default student: each pass's ratio over staircase-{default}'s in the same pass, their "
               f"median and interval; a rival is at the default's latency when that median is no more than "
               f"{1 + MATCH_WITHIN:.2f}, and is compared with nothing otherwise." if default else ""), "",
            "```", format_table(["target", "design", "ratio to the teacher [95%]", *against, "measurement run"],
                                table), "```", ""]


def _validation_section(validation: dict) -> list[str]:
    parts = ["## Choices made on the validation split", ""]
    recipe = validation.get("recipe", {})
    if recipe.get("candidates"):
        parts += [f"Fine-tuning recipe, on {recipe['design']} at {recipe['target']:.0%}, seed {recipe['seed']}:", "",
                  "```", format_table(["epochs", "lr", "validation top-1 %"],
                                      [[c["epochs"], f"{c['lr']:g}", f"{c['top1']:.2f}"] for c in recipe["candidates"]]),
                  "```", ""]
        if "chosen" in recipe:
            parts += [f"Rule: {recipe['rule']}. Chosen: {recipe['reason']}.", ""]
    allocation = validation.get("allocation", {})
    if allocation.get("candidates"):
        names = list(dict.fromkeys(c["allocation"] for c in allocation["candidates"]))
        targets = sorted({c["target"] for c in allocation["candidates"]})
        top1 = {(c["allocation"], c["target"]): c["top1"] for c in allocation["candidates"]}
        parts += [f"Default allocation, each allocation's student fine-tuned with that recipe, seed "
                  f"{allocation['seed']}, validation top-1 %:", "",
                  "```", format_table(["allocation", *(f"{t:.0%}" for t in targets)],
                                      [[a, *(f"{top1[(a, t)]:.2f}" if (a, t) in top1 else "-" for t in targets)]
                                       for a in names]), "```", ""]
        if "chosen" in allocation:
            parts += [f"Rule: {allocation['rule']}. Chosen: {allocation['reason']}.", ""]
    return parts


def rows_made(rows: list[dict], settings: dict) -> str:
    planned = settings.get("planned_rows")
    if planned is None:
        return f"Rows: {len(rows)}."
    return f"Rows: {len(rows)} of the {planned} planned ({settings['seeds']})."


def _rows_section(rows: list[dict], settings: dict, found: list[dict], both_ways: list[dict], docs: Path,
                  teacher: dict | None) -> list[str]:
    by = _groups(rows)
    groups = {k: _summary(v, by.get((k[0], k[1], "staircase"))) for k, v in by.items()}
    table = format_table(
        ["from", "target", "method", "seeds", "ratio", "x staircase", "params", "val top-1 %",
         "test top-1 % (mean +- std)", "min/run"],
        [[k[0], f"{k[1]:.0%}", k[2], s["n"], f"{s['ratio']:.3f}", _quotient(s["vs_default"]), s["params"],
          f"{s['val']:.2f}", f"{s['mean']:.2f} +- {s['std']:.2f}", f"{s['minutes']:.1f}"]
         for k, s in sorted(groups.items())])
    plot = _plot(groups, settings, docs / "results_cifar.png")
    lines = "\n".join(f"| {k} | {v} |" for k, v in settings.items())
    teacher_line = f" The teacher: {teacher['top1']:.2f}% on the same {teacher['images']} test images." if teacher else ""
    return [f"""## The students

`staircase` is the default student (the {settings['default_allocation']} allocation, chosen on
the validation split); `staircase-<allocation>` the others; `fisher` the Fisher-pruned widths
unsnapped (`copycat` when trained from scratch). "ratio" and "x staircase" (the time over the
default student's): the design's measurement above; "(slower)": not at the default's latency,
compared with nothing. "min/run": wall-clock minutes of training. {rows_made(rows, settings)}{teacher_line}

```
{table}
```

{chr(10).join(verdict_lines(found)) or "Not enough rows yet for a verdict."}

From the teacher or from scratch: each design trained both ways, top-1 from the teacher's
channels minus top-1 from scratch (the same paired bootstrap):

{chr(10).join(start_lines(both_ways)) or "No design trained both ways yet."}

![top-1 vs latency]({plot.name})

## Settings

| setting | value |
|---|---|
{lines}
"""]


def _quotient(q: RatioInterval | None) -> str:
    if q is None:
        return "-"
    return f"{q.ratio:.3f}" + ("" if no_slower(q.ratio) else " (slower)")


def _plot(groups: dict[tuple, dict], settings: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (part, method) in enumerate(sorted({(k[0], k[2]) for k in groups})):
        points = sorted((s["ratio"], s["mean"], s["std"]) for k, s in groups.items() if (k[0], k[2]) == (part, method))
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], capsize=3,
                    fmt="o-" if part == "teacher" else "s--", color=f"C{i % 10}", label=f"{method} (from {part})")
    ax.set_xlabel("latency measured beside the teacher (ratio; onnxruntime, batch 1)")
    ax.set_ylabel("test top-1 (%), mean +- std over seeds")
    ax.set_title(f"{settings['teacher']} on {settings['data'].split(':')[0]}: teacher "
                 f"{settings['teacher_top1']:.1f}% on validation", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
