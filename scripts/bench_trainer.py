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
            print(f"[3] {name} seed {seed}: top-1 {s['final_top1']:.2f}%")
        results[name] = {"top1": tops, "mean": statistics.mean(tops),
                         "std": statistics.stdev(tops) if len(tops) > 1 else 0.0}
    return {"data": data, "teacher": TEACHER, "student": STUDENT, "teacher_epochs": teacher_epochs,
            "student_epochs": student_epochs, "teacher_top1": teacher.final_top1, "seeds": seeds,
            "variants": results, "kd": {"alpha": 0.9, "T": 4.0}, "at_beta": 1e3}


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
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=f"cifar10:{ROOT.parent / 'shared' / 'data'}")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench_trainer"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--student-epochs", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "docs"))
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
    atomic_write_json(path, results)
    atomic_write_text(out / "BENCH_TRAINER.md", render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
