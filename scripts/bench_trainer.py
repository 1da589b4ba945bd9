"""Benchmark of the attention-transfer trainer (issue 5): throughput, resume, quality.

Every figure is measured by this script and written to docs/bench_trainer.json and
docs/BENCH_TRAINER.md. Usage:

    python scripts/bench_trainer.py --threads 2 [--parts 1 2 3] [--data cifar10:../shared/data]

1. Throughput on this CPU (synthetic batches of 128, no data loading): a wrn_16_1 training
   step alone, a wrn_16_2 forward alone (eval, no grad), and the attention-transfer step
   (both, plus the AT loss). Interleaved repeats; medians and the spread (min-max).
   Goal: AT step <= 1.2 x (student step + teacher forward).
2. Resume: a deterministic 3-epoch run on digits, killed (SIGKILL) during epoch 2 and
   resumed, against the same run uninterrupted: the final weights are compared.
3. Quality on the CIFAR-10 subset: a wrn_16_2 teacher, then wrn_16_1 students alone, with
   AT, with KD, with AT+KD, for several seeds; mean +- std of test top-1. Every run has its
   own directory under --runs and is reused (or resumed) when this script runs again.
4. Inherited students before any fine-tuning: the demo's WRN-16-2 teacher on digits and
   torchvision's mobilenet_v2 (a model from no zoo: inverted bottlenecks, depthwise stages)
   at 32 px, each narrowed uniformly to 0.9, 0.75 and 0.5 of its widths, keeping channels by
   L1, L1 times the BatchNorm scale (l1-bn) or one-pass Fisher (`staircase rank`); test
   top-1 with the teacher's BatchNorm statistics and with them measured again.
5. Image folders: a folder of CIFAR-10 images as PNG; peak resident memory (the process
   tree) and time of `staircase evaluate` at 224 px over 150 and 1,500 images, with 0 and 2
   loader processes; images/s of the loader alone at 64 px (2 processes) beside a resnet18
   training step at 64 px.
6. `staircase rank` on resnet18 at 224 px, 8 batches of 32 (Fisher): its seconds.
7. One-pass ranking (`staircase rank`) against iterative Fisher pruning (`staircase prune`)
   on the demo's WRN-16-2 and torchvision's resnet18 at 64 px (digits): the time of each, the
   Jaccard overlap of the channels each keeps at 70% and 50%, and top-1 of students that
   inherit them, before and after the same fine-tuning (paired seeds, 95% interval).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from staircase.files import atomic_write_json, atomic_write_text
from staircase.models import create_model
from staircase.table import format_table
from staircase.train.attention import FeatureTaps
from staircase.train.losses import at_loss
from staircase.train.trainer import TrainConfig, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]

STUDENT, TEACHER = "wrn_16_1", "wrn_16_2"


def throughput(batch: int = 128, repeats: int = 7, steps: int = 3) -> dict:
    """Images/s of the three kinds of step, interleaved so drift hits all alike."""
    torch.manual_seed(0)
    student, teacher = create_model(STUDENT), create_model(TEACHER).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    s_taps, t_taps = FeatureTaps(student, student.attention_points), FeatureTaps(teacher, teacher.attention_points)

    def student_step():
        opt.zero_grad()
        F.cross_entropy(student(x), y).backward()
        s_taps.outputs = {}
        opt.step()

    def teacher_forward():
        with torch.no_grad():
            teacher(x)
        t_taps.outputs = {}

    def at_step():
        opt.zero_grad()
        logits = student(x)
        with torch.no_grad():
            teacher(x)
        (F.cross_entropy(logits, y) + 1e3 * at_loss(s_taps.features(), t_taps.features())).backward()
        opt.step()

    kinds = {"student step": student_step, "teacher forward": teacher_forward, "AT step": at_step}
    for fn in kinds.values():  # warm-up
        fn()
    times = {k: [] for k in kinds}
    for r in range(repeats):
        for k in (list(kinds) if r % 2 == 0 else list(reversed(list(kinds)))):
            t0 = time.perf_counter()
            for _ in range(steps):
                kinds[k]()
            times[k].append((time.perf_counter() - t0) / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = [a / (s + t) for a, s, t in zip(times["AT step"], times["student step"], times["teacher forward"],
                                              strict=True)]
    return {"batch": batch, "repeats": repeats,
            "images_per_s": {k: batch / v for k, v in med.items()},
            "spread_images_per_s": {k: [batch / max(v), batch / min(v)] for k, v in times.items()},
            "ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)]}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "staircase", *args]


def resume_check(tmp: Path, threads: int) -> dict:
    """Kill a deterministic run during epoch 2 of 3, resume it, compare with an uninterrupted one."""
    common = ["train", "teacher", STUDENT, "--data", "digits", "--epochs", "3", "--train-images", "768",
              "--batch-size", "64", "--deterministic", "--threads", str(threads), "--no-progress", "--seed", "3"]
    whole, killed = tmp / "uninterrupted", tmp / "killed"
    for d in (whole, killed):
        subprocess.run(["rm", "-rf", str(d)], check=True)
    t0 = time.perf_counter()
    subprocess.run(_cli(*common, "--out", str(whole)), check=True, cwd=ROOT, capture_output=True)
    proc = subprocess.Popen(_cli(*common, "--out", str(killed)), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        if proc.poll() is not None:
            raise RuntimeError("the run ended before epoch 1 was written")
        time.sleep(0.05)
    epoch_s = json.loads(metrics.read_text().splitlines()[0])["epoch_s"]
    time.sleep(epoch_s / 2)  # halfway through epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epochs_at_kill = metrics.read_text().count("\n")
    subprocess.run(_cli(*common, "--out", str(killed), "--resume"), check=True, cwd=ROOT, capture_output=True)
    a = torch.load(whole / "last.pt", weights_only=True)["model"]
    b = torch.load(killed / "last.pt", weights_only=True)["model"]
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    return {"epochs_finished_at_kill": epochs_at_kill, "max_abs_weight_diff": diff, "identical": diff == 0.0,
            "seconds": time.perf_counter() - t0}


def quality(data: str, runs: Path, seeds: list[int], teacher_epochs: int, student_epochs: int, threads: int) -> dict:
    def quiet(_message: str) -> None:  # finished runs under --runs are reused, unfinished ones resumed
        pass

    base = dict(data=data, threads=threads, progress=False, batch_size=128)
    teacher_dir = runs / f"teacher-{TEACHER}-e{teacher_epochs}"
    teacher = train_or_reuse(TrainConfig(model=TEACHER, out=str(teacher_dir), epochs=teacher_epochs, seed=0, **base),
                             log=quiet)
    print(f"[3] teacher {TEACHER}: top-1 {teacher.final_top1:.2f}%")
    variants = {"alone": {}, "AT": {"at_beta": 1e3}, "KD": {"kd_alpha": 0.9}, "AT+KD": {"at_beta": 1e3, "kd_alpha": 0.9}}
    results = {}
    for name, extra in variants.items():
        tops = []
        for seed in seeds:
            out = runs / f"student-{STUDENT}-{name.replace('+', '_')}-e{student_epochs}-s{seed}"
            kw = dict(extra, teacher=str(teacher_dir / "last.pt")) if extra else {}
            s = train_or_reuse(TrainConfig(model=STUDENT, out=str(out), role="student", epochs=student_epochs,
                                           seed=seed, allow_other_teacher=True, **kw, **base), log=quiet)
            tops.append(s.final_top1)
            print(f"[3] {name} seed {seed}: top-1 {s.final_top1:.2f}%")
        results[name] = {"top1": tops, "mean": statistics.mean(tops),
                         "std": statistics.stdev(tops) if len(tops) > 1 else 0.0}
    return {"data": _relative(data), "teacher": TEACHER, "student": STUDENT, "teacher_epochs": teacher_epochs,
            "student_epochs": student_epochs, "teacher_top1": teacher.final_top1, "seeds": seeds,
            "variants": results, "kd": {"alpha": 0.9, "T": 4.0}, "at_beta": 1e3}


INHERIT_TEACHERS = {  # label -> the teacher's training run on digits
    "wrn_16_2 (the demo's teacher)": dict(model="wrn_16_2", epochs=6, lr=0.05, batch_size=64),
    "torchvision mobilenet_v2 at 32 px": dict(model="torchvision.models:mobilenet_v2", epochs=15, lr=0.05,
                                              batch_size=64, input_shape=[3, 32, 32]),
}
SCALES = (0.9, 0.75, 0.5)


def inherited(runs: Path, threads: int) -> dict:
    """Top-1 of uniformly narrowed students that inherit the teacher's channels, before any
    fine-tuning: with the teacher's BatchNorm statistics, and with them measured again."""
    import copy

    from staircase.design.baselines import l1_scores, uniform_widths
    from staircase.design.inherit import inherit, normed_l1_scores
    from staircase.design.rank import rank_channels
    from staircase.modelref import ResolvedModel
    from staircase.slots import SlotGraph
    from staircase.train.batchnorm import reestimate_batchnorm
    from staircase.train.checkpoint import model_from_checkpoint
    from staircase.train.data import load_data
    from staircase.train.evaluate import evaluate

    found = {}
    for label, recipe in INHERIT_TEACHERS.items():
        out = runs / f"inherit-{recipe['model'].replace(':', '-')}"
        train_or_reuse(TrainConfig(data="digits", out=str(out), threads=threads, progress=False, **recipe),
                       log=lambda m: None)
        model, arch, _ = model_from_checkpoint(out / "last.pt")
        data = load_data("digits", arch.input_size, augment=False)
        graph = SlotGraph(copy.deepcopy(model), arch.input_size)
        slots = graph.selected()
        names = [s.name for s in slots]
        loader = torch.utils.data.DataLoader(data.train, batch_size=32, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))
        batches = [b for b, _ in zip(loader, range(8), strict=False)]
        fisher = rank_channels(ResolvedModel(copy.deepcopy(model), arch), "fisher", names, batches)
        rankings = {"l1": l1_scores(graph, names), "l1-bn": normed_l1_scores(graph, names), "fisher": fisher}
        teacher_top1 = evaluate(model, data.test)["top1"]
        rows = []
        for scale in SCALES:
            widths = uniform_widths(slots, scale)
            for ranking, scores in rankings.items():
                student, _ = inherit(model, widths, scores, arch.input_size)
                kept = evaluate(student, data.test)["top1"]
                reestimate_batchnorm(student, data.train)
                again = evaluate(student, data.test)["top1"]
                rows.append({"scale": scale, "ranking": ranking, "teacher_bn_top1": kept, "reestimated_top1": again})
                print(f"[4] {label} x{scale} {ranking}: {kept:.1f}% -> {again:.1f}% (teacher {teacher_top1:.1f}%)")
        found[label] = {"teacher_top1": teacher_top1, "rows": rows, **recipe}
    return found


def _tree_rss(pid: int) -> int:
    """Proportional resident bytes (PSS: a page shared by n processes counts 1/n in each) of a
    process and its descendants (Linux /proc): forked loader processes share the parent's
    pages, which summed RSS would count once per process."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:"))) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def peak_tree_rss(cmd: list[str], cwd: Path) -> tuple[int, float]:
    """(peak resident bytes of the command's process tree, sampled every 20 ms; seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.02)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-300:]}")
    return peak, time.perf_counter() - t0


def _png_folder(root: Path, cifar: Path, per_split: dict[str, int]) -> Path:
    """CIFAR-10 training images written as PNG class folders (``per_split``: images per split)."""
    import pickle

    import numpy as np
    from PIL import Image

    if (root / "done").exists():
        return root
    batches = []
    for k in range(1, 6):
        with open(cifar / "cifar-10-batches-py" / f"data_batch_{k}", "rb") as f:
            batches.append(pickle.load(f, encoding="bytes"))
    images = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])
    images = images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels, start = [y for b in batches for y in b[b"labels"]], 0
    for split, count in per_split.items():
        for i in range(start, start + count):
            folder = root / split / f"c{labels[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(folder / f"{i}.png")
        start += count
    (root / "done").write_text("")
    return root


def _import_resnet18(out: Path, shape: str) -> Path:
    """A resnet18 (10 classes, random weights) as a checkpoint of `staircase import`."""
    from staircase._compat import import_vision_package

    if not out.exists():
        torch.manual_seed(0)
        weights = out.with_suffix(".pth")
        torch.save(import_vision_package("torchvision.models").resnet18(num_classes=10).state_dict(), weights)
        subprocess.run(_cli("import", "torchvision.models:resnet18", "--num-classes", "10", "--input-shape", shape,
                            "--weights", str(weights), "--out", str(out)), check=True, cwd=ROOT, capture_output=True)
    return out


def image_folders(runs: Path, cifar: Path, threads: int, repeats: int = 3) -> dict:
    """Peak memory and time of `evaluate` over 150 and 1,500 images at 224 px (the median of
    ``repeats`` interleaved runs: one run's peak moves by about 100 MB with the allocator);
    loader vs step images/s."""
    from staircase.train.data import load_data

    ckpt = _import_resnet18(runs / "resnet18-224.pt", "3,224,224")
    folders = {count: _png_folder(runs / f"folder-{count}", cifar, {"train": 200, "val": count})
               for count in (150, 1500)}
    found: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for repeat in range(repeats):  # interleaved: a drifting machine weighs on every setting alike
        for count, folder in folders.items():
            for workers in (0, 2):
                peak, seconds = peak_tree_rss(_cli("evaluate", str(ckpt), "--data", f"folder:{folder}", "--threads",
                                                   str(threads), "--workers", str(workers), "--batch-size", "50"),
                                              ROOT)
                found.setdefault((count, workers), []).append((peak / 1e6, seconds))
                print(f"[5] repeat {repeat + 1}: evaluate over {count} images at 224 px, {workers} loader processes: "
                      f"peak {peak / 1e6:.0f} MB, {seconds:.1f} s")
    rows = [{"images": count, "workers": workers, "peak_rss_mb": statistics.median(p for p, _ in runs_),
             "peaks_mb": [p for p, _ in runs_], "seconds": statistics.median(t for _, t in runs_)}
            for (count, workers), runs_ in found.items()]
    folder = _png_folder(runs / "folder-train-1500", cifar, {"train": 1500})
    data = load_data(f"folder:{folder}", (3, 64, 64))
    loader = torch.utils.data.DataLoader(data.train, batch_size=64, shuffle=True, num_workers=2, drop_last=True)
    t0, seen = time.perf_counter(), 0
    for x, _ in loader:
        seen += len(x)
    loader_rate = seen / (time.perf_counter() - t0)
    from staircase._compat import import_vision_package

    model = import_vision_package("torchvision.models").resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(64, 3, 64, 64), torch.randint(0, 10, (64,))
    times = []
    for _ in range(6):
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    step_rate = 64 / statistics.median(times[1:])
    print(f"[5] loader alone {loader_rate:.0f} images/s at 64 px (2 processes); resnet18 step {step_rate:.0f} images/s")
    return {"evaluate": rows, "loader_images_per_s": loader_rate, "step_images_per_s": step_rate,
            "loader_images": seen}


def rank_time(runs: Path, cifar: Path, threads: int) -> dict:
    """`staircase rank` on resnet18 at 224 px, 8 batches of 32, Fisher: wall seconds and the job's own."""
    ckpt = _import_resnet18(runs / "resnet18-224.pt", "3,224,224")
    folder = _png_folder(runs / "folder-rank", cifar, {"train": 300, "val": 200})
    t0 = time.perf_counter()
    out = runs / "resnet18-ranked.json"
    subprocess.run(_cli("rank", str(ckpt), "--data", f"folder:{folder}", "--batches", "8", "--batch-size", "32",
                        "--threads", str(threads), "--out", str(out)), check=True, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - t0
    ranked = json.loads(out.read_text())
    print(f"[6] rank resnet18 at 224 px, 8 x 32 images: {wall:.1f} s ({ranked['seconds']:.1f} s ranking)")
    return {"wall_seconds": wall, "ranking_seconds": ranked["seconds"], "batches": 8, "batch_size": 32}


RANK_TEACHERS = {  # label -> the teacher's training run on digits
    "wrn_16_2 (the demo's teacher)": INHERIT_TEACHERS["wrn_16_2 (the demo's teacher)"],
    "torchvision resnet18 at 64 px": dict(model="torchvision.models:resnet18", epochs=6, lr=0.05, batch_size=64,
                                          input_shape=[3, 64, 64]),
}
KEEP_SHARES = (0.7, 0.5)


def _replayed_widths(pruned: dict, full: dict[str, int], keep: float) -> dict[str, int]:
    """The widths of an iterative run at the moment it had kept ``keep`` of the channels."""
    widths, goal = dict(full), round(keep * sum(full.values()))
    for name in pruned["removed"]:
        if sum(widths.values()) <= goal:
            break
        widths[name] -= 1
    return widths


def _jaccard(a: dict[str, list[int]], b: dict[str, list[int]]) -> float:
    """Pooled over slots: channels both keep / channels either keeps."""
    both = sum(len(set(a[n]) & set(b[n])) for n in a)
    return both / sum(len(set(a[n]) | set(b[n])) for n in a)


def rank_vs_iterative(runs: Path, threads: int, seeds: list[int], epochs: int) -> dict:
    """One-pass Fisher ranking (`staircase rank`) against the paper's iterative Fisher pruning
    (`staircase prune`, fast schedule) to half the channels: each one's time, the overlap of the
    channels each keeps at the iterative run's widths when it held 70% and 50% of them, and
    top-1 of students that inherit those channels from the teacher, before and after the same
    fine-tuning."""
    from staircase.design.inherit import channel_scores, inherit, save_student
    from staircase.spec import StudentSpec
    from staircase.stats import paired_difference
    from staircase.train.batchnorm import reestimate_batchnorm
    from staircase.train.checkpoint import model_from_checkpoint
    from staircase.train.data import load_data
    from staircase.train.evaluate import evaluate
    from staircase.widths import WidthsFile

    found = {}
    for label, recipe in RANK_TEACHERS.items():
        stem = recipe["model"].replace(":", "-")
        teacher_dir = runs / f"inherit-{stem}"
        train_or_reuse(TrainConfig(data="digits", out=str(teacher_dir), threads=threads, progress=False, **recipe),
                       log=lambda m: None)
        ckpt = teacher_dir / "last.pt"
        teacher, arch, _ = model_from_checkpoint(ckpt)
        data = load_data("digits", arch.input_size, augment=False)
        shape = ",".join(str(x) for x in arch.input_size)
        ranked, pruned = runs / f"rank-{stem}.json", runs / f"prune-{stem}.json"
        t0 = time.perf_counter()
        subprocess.run(_cli("rank", str(ckpt), "--data", "digits", "--batches", "8", "--batch-size", "32",
                            "--threads", str(threads), "--out", str(ranked)), check=True, cwd=ROOT, capture_output=True)
        rank_wall = time.perf_counter() - t0
        rank_file = WidthsFile.load(ranked)
        full = dict(rank_file.widths)
        if not pruned.exists():  # a killed run resumes from its checkpoint beside the widths file
            t0 = time.perf_counter()
            subprocess.run(_cli("prune", recipe["model"], "--input-shape", shape, "--num-classes", "10",
                                "--checkpoint", str(ckpt),
                                "--data", "digits", "--method", "fisher", "--schedule", "fast",
                                "--target-channels", str(round(0.5 * sum(full.values()))), "--threads", str(threads),
                                "--out", str(pruned)), check=True, cwd=ROOT, capture_output=True)
            print(f"[7] {label}: iterative Fisher pruning took {time.perf_counter() - t0:.0f} s")
        prune_file = WidthsFile.load(pruned)
        names = list(full)
        by_rank, _ = channel_scores(teacher, names, arch.input_size, rank_file)
        by_prune, _ = channel_scores(teacher, names, arch.input_size, prune_file)
        teacher_top1 = evaluate(teacher, data.test)["top1"]
        rows = []
        for keep in KEEP_SHARES:
            widths = _replayed_widths(json.loads(pruned.read_text()), full, keep)
            row = {"keep": keep, "channels": sum(widths.values())}
            kept = {}
            for ranking, scores in (("rank", by_rank), ("iterative", by_prune)):
                student, kept[ranking] = inherit(teacher, widths, scores, arch.input_size)
                reestimate_batchnorm(student, data.train)
                row[f"{ranking}_before"] = evaluate(student, data.test)["top1"]
                spec, _ = StudentSpec.create(arch, widths, name=f"{stem}-{ranking}-{keep}")
                spec_path = runs / "ranking" / f"{stem}-{ranking}-{keep}.json"
                spec_path.parent.mkdir(parents=True, exist_ok=True)
                _, weights = save_student(spec, student, spec_path)
                tops = []
                for seed in seeds:
                    run = train_or_reuse(TrainConfig(model=str(spec_path), role="student", init=str(weights),
                                                     data="digits", epochs=epochs, lr=0.01, batch_size=64, seed=seed,
                                                     out=str(runs / "ranking" / f"{spec_path.stem}-s{seed}"),
                                                     threads=threads, progress=False), log=lambda m: None)
                    tops.append(run.final_top1)
                row[f"{ranking}_after"] = tops
            row["jaccard"] = _jaccard(kept["rank"], kept["iterative"])
            d = paired_difference(row["rank_after"], row["iterative_after"])
            row["difference"] = {"mean": d.mean, "low": d.low, "high": d.high}
            print(f"[7] {label} keeping {keep:.0%}: Jaccard {row['jaccard']:.2f}; before fine-tuning rank "
                  f"{row['rank_before']:.1f}% iterative {row['iterative_before']:.1f}%; after "
                  f"{statistics.mean(row['rank_after']):.1f}% vs {statistics.mean(row['iterative_after']):.1f}%, "
                  f"rank - iterative {d.describe(' pt')}")
            rows.append(row)
        found[label] = {"teacher_top1": teacher_top1, "channels": sum(full.values()), "rank_seconds": rank_wall,
                        "rank_scoring_seconds": rank_file.run["seconds"], "prune_seconds": prune_file.run["seconds"],
                        "prune_steps": prune_file.run["steps"], "finetune_epochs": epochs, "seeds": seeds,
                        "rows": rows, **recipe}
    return found


def _relative(spec: str) -> str:
    """A data spec with this machine's folders written from the repository (``../shared``)."""
    return spec.replace(str(ROOT.parent), "..")


def render(r: dict) -> str:
    lines = ["# Trainer benchmark", "", "Written by `scripts/bench_trainer.py`; every figure below comes from "
             "docs/bench_trainer.json.", "", f"CPU threads: {r['threads']}.", ""]
    if "throughput" in r:
        t = r["throughput"]
        lines += [f"## 1. Throughput (batch {t['batch']}, synthetic 32x32 inputs, {t['repeats']} interleaved repeats)", "",
                  format_table(["step", "images/s (median)", "range"],
                               [[k, round(v, 1), f"{t['spread_images_per_s'][k][0]:.1f}-{t['spread_images_per_s'][k][1]:.1f}"]
                                for k, v in t["images_per_s"].items()]), "",
                  f"AT step time / (student step + teacher forward): median {t['ratio']:.3f} "
                  f"(range {t['ratio_range'][0]:.3f}-{t['ratio_range'][1]:.3f}); goal <= 1.2.", ""]
    if "resume" in r:
        s = r["resume"]
        lines += ["## 2. Resume after SIGKILL", "",
                  f"Deterministic 3-epoch run of {STUDENT} on digits, killed with {s['epochs_finished_at_kill']} "
                  f"epoch(s) finished, resumed: largest absolute weight difference from the uninterrupted run "
                  f"{s['max_abs_weight_diff']:.3g} ({'identical' if s['identical'] else 'NOT identical'}).", ""]
    if "quality" in r:
        q = r["quality"]
        lines += [f"## 3. Quality: {q['student']} students of a {q['teacher']} teacher on {_relative(q['data'])}", "",
                  f"Teacher: {q['teacher_epochs']} epochs, test top-1 {q['teacher_top1']:.2f}%. Students: "
                  f"{q['student_epochs']} epochs each (recipe of the reference otherwise: SGD 0.9, lr 0.1, "
                  f"wd 5e-4, batch 128, lr x0.2 at 30/60/80%), seeds {q['seeds']}; AT beta {q['at_beta']:g}, "
                  f"KD alpha {q['kd']['alpha']}, T {q['kd']['T']}.", "",
                  format_table(["student", "test top-1 mean", "std", "per seed"],
                               [[k, round(v["mean"], 2), round(v["std"], 2), ", ".join(f"{x:.2f}" for x in v["top1"])]
                                for k, v in q["variants"].items()]), "",
                  "Published direction (full CIFAR-10, 200 epochs): 8.77% error alone, 7.93% with AT.", ""]
    lines += _render_new_parts(r)
    return "\n".join(lines)


def _render_new_parts(r: dict) -> list[str]:
    lines = []
    if "inherited" in r:
        lines += ["## 4. Inherited students before fine-tuning (digits)", "",
                  "Each teacher narrowed uniformly; each slot keeps its channels by the ranking; test top-1 with "
                  "the teacher's BatchNorm statistics, then with them measured again over 8 batches of 128 training "
                  "images (no gradient step). Share: of the teacher's top-1.", ""]
        for label, t in r["inherited"].items():
            lines += [f"{label}: teacher {t['teacher_top1']:.1f}% ({t['epochs']} epochs); Fisher ranked over 8 "
                      "batches of 32 training images.", "",
                      format_table(["width", "ranking", "top-1, teacher's BN", "top-1, BN measured again", "share"],
                                   [[x["scale"], x["ranking"], f"{x['teacher_bn_top1']:.1f}",
                                     f"{x['reestimated_top1']:.1f}",
                                     f"{x['reestimated_top1'] / t['teacher_top1']:.0%}"] for x in t["rows"]]), ""]
    if "folders" in r:
        f = r["folders"]
        lines += ["## 5. Image folders", "", "`staircase evaluate` of a resnet18 at 224 px over a folder of CIFAR-10 "
                  "PNGs: peak proportional resident memory (PSS) of the process tree, sampled every 20 ms, and wall time.", "",
                  format_table(["images", "loader processes", "peak MB (median)", "peak MB of each run",
                                "seconds (median)"],
                               [[x["images"], x["workers"], f"{x['peak_rss_mb']:.0f}",
                                 ", ".join(f"{p:.0f}" for p in x.get("peaks_mb", [x["peak_rss_mb"]])),
                                 f"{x['seconds']:.1f}"] for x in f["evaluate"]]), "",
                  _memory_check(f["evaluate"]), "",
                  f"Loader alone at 64 px, 2 processes: {f['loader_images_per_s']:.0f} images/s over "
                  f"{f['loader_images']} images; a resnet18 training step at 64 px (batch 64): "
                  f"{f['step_images_per_s']:.0f} images/s.", ""]
    if "rank" in r:
        k = r["rank"]
        lines += ["## 6. Ranking channels in one pass", "",
                  f"`staircase rank` on resnet18 at 224 px, Fisher over {k['batches']} batches of {k['batch_size']}: "
                  f"{k['wall_seconds']:.1f} s for the command, {k['ranking_seconds']:.1f} s of it ranking.", ""]
    return lines + _render_ranking(r)


def _render_ranking(r: dict) -> list[str]:
    from staircase.stats import Difference

    if "ranking" not in r:
        return []
    lines = ["## 7. One-pass ranking against iterative Fisher pruning (digits)", "",
             "`staircase rank` (Fisher, 8 batches of 32) against `staircase prune --method fisher --schedule fast` to "
             "half the channels. At the widths the iterative run had when it held 70% and 50% of the channels, each "
             "slot keeps the channels the run had kept, or the top ones by the one-pass ranking; Jaccard: channels "
             "both keep / channels either keeps. Students inherit those channels from the teacher (BatchNorm measured "
             "again), then get the same fine-tuning (lr 0.01, batch 64, no teacher); the difference is rank minus "
             "iterative with its 95% interval over the paired seeds.", ""]
    for label, t in r["ranking"].items():
        lines += [f"{label}: teacher {t['teacher_top1']:.1f}%, {t['channels']} channels ranked. Time: rank "
                  f"{t['rank_seconds']:.1f} s for the command ({t['rank_scoring_seconds']:.1f} s scoring); iterative "
                  f"{t['prune_seconds']:.0f} s ({t['prune_steps']} steps). Fine-tuning: {t['finetune_epochs']} epochs, "
                  f"seeds {t['seeds']}.", "",
                  format_table(["kept", "Jaccard", "before: rank", "before: iterative", "after: rank",
                                "after: iterative", "rank - iterative (pt)"],
                               [[f"{x['keep']:.0%} ({x['channels']})", f"{x['jaccard']:.2f}",
                                 f"{x['rank_before']:.1f}", f"{x['iterative_before']:.1f}",
                                 f"{statistics.mean(x['rank_after']):.1f}", f"{statistics.mean(x['iterative_after']):.1f}",
                                 Difference(x["difference"]["mean"], x["difference"]["low"], x["difference"]["high"],
                                            len(x["rank_after"])).describe()] for x in t["rows"]]), ""]
    return lines


def _memory_check(rows: list[dict]) -> str:
    """The check of issue 28: 1,500 images within +100 MB of 150, per loader setting."""
    by = {(x["images"], x["workers"]): x for x in rows}
    parts = []
    for workers in sorted({x["workers"] for x in rows}):
        small, large = by.get((150, workers)), by.get((1500, workers))
        if small and large:
            grow = large["peak_rss_mb"] - small["peak_rss_mb"]
            parts.append(f"{workers} loader processes: {grow:+.0f} MB ({'within' if grow <= 100 else 'over'} +100 MB)")
    return "1,500 images against 150, medians: " + "; ".join(parts) + "."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=f"cifar10:{ROOT.parent / 'shared' / 'data'}")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench_trainer"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--student-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=3, help="part 7's fine-tuning of inherited students")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--cifar", default=str(ROOT.parent / "shared" / "data"),
                        help="where cifar-10-batches-py is (parts 5 and 6 write its images as PNG folders)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    path = out / "bench_trainer.json"
    results = json.loads(path.read_text()) if path.exists() else {}  # parts not run now keep their figures
    results["threads"] = args.threads
    if 1 in args.parts:
        results["throughput"] = throughput()
        t = results["throughput"]
        print(f"[1] images/s: {', '.join(f'{k} {v:.1f}' for k, v in t['images_per_s'].items())}; "
              f"AT / (student + teacher) = {t['ratio']:.3f}")
    if 2 in args.parts:
        results["resume"] = resume_check(Path(args.runs) / "resume", args.threads)
        print(f"[2] resume: max |w - w'| = {results['resume']['max_abs_weight_diff']:.3g}")
    if 3 in args.parts:
        results["quality"] = quality(args.data, Path(args.runs), args.seeds, args.teacher_epochs,
                                     args.student_epochs, args.threads)
    runs = Path(args.runs)
    if 4 in args.parts:
        results["inherited"] = inherited(runs, args.threads)
    if 5 in args.parts:
        results["folders"] = image_folders(runs, Path(args.cifar), args.threads)
    if 6 in args.parts:
        results["rank"] = rank_time(runs, Path(args.cifar), args.threads)
    if 7 in args.parts:
        results["ranking"] = rank_vs_iterative(runs, args.threads, args.seeds, args.finetune_epochs)
    atomic_write_json(path, results)
    atomic_write_text(out / "BENCH_TRAINER.md", render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
