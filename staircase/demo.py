"""`staircase demo`: the three jobs end to end on the built-in default, for a newcomer's first run.

1. profile this CPU (ONNX Runtime) for a small teacher and show its staircase;
2. train the teacher briefly on the built-in digits;
3. Fisher-prune it (fast schedule) and design the staircase student (the default
   allocation) for a latency target below the teacher's, with ``DEMO_BASELINES`` at its
   measured latency;
4. train every network of the table the same way: from the teacher's weights (each slot
   keeps its most Fisher-salient channels), with attention transfer, for the same epochs;
5. print one table (params, MACs, measured latency with spread, whether each baseline was
   matched to the student's latency, top-1) and which network won, write the plots
   (the staircase with the chosen widths marked, top-1 vs measured latency) and export the
   staircase student to ONNX, checked against torch.

Everything lands in one results folder; a rerun reuses what is there (profile, checkpoints,
widths, specs) and says so, ``fresh`` starts over.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import StaircaseError
from .profile.steps import DEFAULT_GRID
from .settings import option
from .table import format_table

__all__ = ["DEMO_BASELINES", "DemoSettings", "compared", "run_demo"]


# the pruning route's widths unsnapped, what a user does without a profiler (L1 rounded to
# the network's step) and uniform scaling, each at the student's measured latency
DEMO_BASELINES = ("unsnapped", "l1-round", "uniform")


@dataclass(kw_only=True)
class DemoSettings:
    """What the demo does; the defaults fit 10 minutes on 2 CPU cores, the install included."""

    model: str = option("wrn_16_2", help="teacher")
    out: str = option("runs/demo", help="results folder")
    fresh: bool = option(False, help="start over instead of reusing earlier results")
    grid: int = DEFAULT_GRID
    timing: str = "standard"
    rounds: int = 1  # the profile's lattice rounds; its uncertain points are measured again
    teacher_epochs: int = option(6, help="the teacher's training epochs")
    student_epochs: int = option(3, help="each student's fine-tuning epochs")
    finetune_lr: float = 0.01  # students start from the teacher's weights
    target: float = option(0.6, help="latency target as a share of the teacher's")
    prune_share: float = 0.85  # of the inner channels the Fisher pruning keeps (it only ranks them)
    train_images: int | None = None  # all of digits' 1,437 training images
    threads: int | None = option(None, help="CPU threads (default: all)")

    def check(self) -> None:
        if not 0 < self.target < 1:
            raise StaircaseError(f"--target {self.target} must be a share of the teacher's latency, in (0, 1)")


def _say(step: str, text: str) -> None:
    print(f"[{step}] {text}", flush=True)


def _note(text: str) -> None:
    print(f"      {text}", flush=True)


def run_demo(settings: DemoSettings | None = None) -> int:
    import torch

    from .design.measured import RatioInterval
    from .files import check_writable
    from .pipeline import Pipeline
    from .train.evaluate import evaluate_checkpoint

    s = settings or DemoSettings()
    s.check()
    out = check_writable(s.out, folder=True)
    start = time.perf_counter()
    if s.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if s.threads:
        torch.set_num_threads(s.threads)
    pipe = Pipeline(out, s.model, "digits", threads=s.threads, train_images=s.train_images, log=_note)

    _say("1/5", f"profiling this CPU for {s.model} (onnxruntime, every {s.grid}th width, then the uncertain ones)")
    result = pipe.profile(grid=s.grid, timing=s.timing, rounds=s.rounds)
    prof, net = result.profile, result.network
    first = next(iter(prof.network(net).slots))
    _note(f"e.g. {first}: optimal widths {prof.slot_curve(net, first).optimal()}")

    _say("2/5", f"training the teacher {s.model} on digits ({s.teacher_epochs} epochs)")
    teacher = pipe.teacher(s.teacher_epochs, lr=0.05, batch_size=64)

    _say("3/5", f"Fisher-pruning the teacher to {s.prune_share:.0%} of its channels, then designing for "
                f"{s.target:.0%} of its latency")
    designed, teacher_ms, widths_file = _design(s, pipe, prof)

    _say("4/5", f"training every student the same way: from the teacher's weights (each slot keeps its most "
                f"Fisher-salient channels), with attention transfer, {s.student_epochs} epochs")
    trained = {}
    for d in designed:
        _note(f"{d.spec.name}: {d.spec.provenance.method}")
        init = pipe.inherit(d.spec, widths_file)
        trained[d.spec.name] = pipe.train_student(d.spec, s.student_epochs, attention=True, init=str(init),
                                                  lr=s.finetune_lr)

    _say("5/5", "results")
    in_profile_ms = prof.network(net).full.median_ms
    rows = [[f"{s.model} (teacher)", teacher.params, _teacher_macs(s.model),
             f"{teacher_ms[0]:.3f} +- {teacher_ms[1]:.3f}", f"{in_profile_ms:.3f}", "-", "-",
             f"{teacher.final_top1:.1f}"]]
    points = [("teacher", in_profile_ms, teacher.final_top1)]
    for d in designed:
        top1 = trained[d.spec.name].final_top1
        matched = d.spec.provenance.notes.get("matched")
        over = d.spec.provenance.notes.get("over_student")
        rows.append([d.spec.name, d.spec.params, d.spec.macs, f"{d.measured_ms:.3f} +- {d.measured_iqr_ms:.3f}",
                     f"{d.judged_ms:.3f}", "-" if over is None else RatioInterval.from_dict(over).text(),
                     {True: "yes", False: "NO"}.get(matched, "-"), f"{top1:.1f}"])
        points.append((d.spec.name, d.judged_ms, top1))
    table = format_table(["network", "params", "MACs", "measured ms (IQR)", "at profile speed", "x student [95%]",
                          "matched (3%)", "top-1 %"], rows)
    print(table)
    _note("at profile speed: each student timed beside the teacher, scaled by the teacher's time in the profile "
          "(the machine's drift cancels); x student: a baseline's time over the staircase student's, the two timed "
          "together pass by pass; matched: within 3% of 1")
    verdict = compared(designed, {d.spec.name: evaluate_checkpoint(pipe.out / "train" / d.spec.name / "last.pt",
                                                                   pipe.data, per_image=True)["correct"]
                                  for d in designed})
    _note(verdict)
    table += f"\n\n{verdict}"
    plots = _plots(out, prof, net, designed[0].spec.widths, points, s)
    exported = pipe.export(out / "train" / designed[0].spec.name)
    _note(f"exported the staircase student to {exported.path} (onnxruntime vs torch: max |difference| "
          f"{exported.check.max_abs_diff:.1e})")
    (out / "results.md").write_text(f"# staircase demo\n\n```\n{table}\n```\n")
    _note(f"plots: {', '.join(str(p) for p in plots)}")
    _note(f"done in {time.perf_counter() - start:.0f} s; everything is in {out} (rerun to reuse, --fresh to redo)")
    return 0


def compared(designed, correct: dict[str, list[bool]]) -> str:
    """The staircase student (``designed[0]``) against each network that runs no slower
    (``measured.no_slower``: its time over the student's, timed together, at most 3% above 1),
    from each one's per-image test results: the difference in top-1 with its 95% interval
    over the test images (one seed each); "won" or "lost" only where the interval excludes 0,
    "tie" for equal top-1."""
    from .design.measured import no_slower
    from .stats import bootstrap_difference

    main = designed[0]

    def over_student(d) -> float:
        over = d.spec.provenance.notes.get("over_student")
        # designs not timed together (predicted only): their judged latencies' quotient
        return over["ratio"] if over is not None else d.judged_ms / main.judged_ms

    mine = [correct[main.spec.name]]
    said, slower = [], []
    for d in designed[1:]:
        if not no_slower(over_student(d)):
            slower.append(d.spec.name)
            continue
        diff = bootstrap_difference(mine, [correct[d.spec.name]])
        said.append(f"{d.spec.name}: {diff.mean:+.1f} points [{diff.low:+.1f}, {diff.high:+.1f}], {diff.outcome}")
    images = len(mine[0])
    head = (f"the staircase student against each network at no more latency (one seed each, {images} test images, "
            "95% interval over the images): ")
    return head + ("; ".join(said) or "none") + (
        f"; not compared, measured more than 3% slower than the student: {', '.join(slower)}" if slower else "")


def _design(s: DemoSettings, pipe, prof):
    from .design.allocations import allocation, default_allocation
    from .design.designer import Designer
    from .profile.backends import backend_of
    from .profile.timing import measure_network

    widths_file = pipe.prune(s.prune_share, batch_size=32)
    teacher = pipe.trained_teacher()
    size = teacher.architecture.input_size
    teacher_m = measure_network(backend_of(prof), teacher.model.eval(), size)
    designer = Designer(prof, teacher)
    target = round(s.target * designer.teacher_ms, 4)  # targets are judged at the profile's speed
    _note(f"teacher {designer.teacher_ms:.3f} ms in the profile ({teacher_m.median_ms:.3f} ms now) -> target "
          f"{target:.3f} ms")
    lowest = allocation(default_allocation(widths_file)).smallest_ms(designer) * 1.02
    if target < lowest:  # a tiny network whose steps end above the target: the nearest reachable instead
        target = round(lowest, 4)
        _note(f"that is below what this profile's steps reach; designing for {target:.3f} ms instead")
    # the demo goes on where a busy machine left the profile few steps, and says so
    designed = pipe.design(target, pipe.widths_path(), baselines=DEMO_BASELINES, allow_few_steps=True)
    return designed, (teacher_m.median_ms, teacher_m.iqr_ms), widths_file


def _teacher_macs(model: str) -> int:
    from .complexity import count_macs
    from .modelref import resolve_model

    r = resolve_model(model)
    return count_macs(r.model, r.architecture.input_size)


def _plots(out: Path, prof, net: str, chosen: dict[str, int], points, s: DemoSettings) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .profile.plots import plot_profile

    written = [plot_profile(prof, net, out / "plots", chosen=chosen, per_slot=False)[-1]]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, ms, top1 in points:
        ax.scatter(ms, top1, s=30)
        ax.annotate(name.replace(f"{s.model}-", ""), (ms, top1), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("measured latency at the profile's speed (ms, onnxruntime, this CPU)")
    ax.set_ylabel("test top-1 (%), digits")
    ax.set_title(f"{s.model}: accuracy vs latency ({s.student_epochs} student epochs)", fontsize=9)
    fig.tight_layout()
    path = out / "plots" / "accuracy_vs_latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return written + [path]
