"""``staircase compare``: channel pruning, weight pruning and quantisation of one trained
network, each measured on the device as it will run.

Every point is a deployable file (ONNX, OpenVINO IR, or a checkpoint for torch) with four
figures: top-1 on the test set (run by the runtime itself, so a quantised network is judged
as it computes), its latency measured block by block beside the unmodified network (the
ratio, as the designer measures students), its size on disk, and the memory running it
adds to a process (a fresh one per point). When every point is made, all of them are timed
beside the network again in the same passes, each pass in a new order: the ratios a table
sets side by side come from one measurement run, each with its 95% interval.

    OUT/compare.json        {"settings", "points": [{method, setting, top1, ratio, ratio_ci95,
                            ratio_passes, measurement, size_bytes, peak_memory_bytes, ...}]},
                            rewritten after every point
    OUT/compare.md          the table; OUT/compare-latency.png and compare-size.png: the curves
    OUT/teacher/            the network as given, exported
    OUT/profile.json        the device profile the channel-pruned students are designed with
                            (unless --profile gives one)
    OUT/students/           their specs and inherited weights
    OUT/train/<point>/      each fine-tuning run (resumed when killed)
    OUT/files/<point>.*     each point's deployable file

A rerun reuses every finished point, design and training run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..complexity import count_outputs
from ..design.allocations import ALLOCATIONS, DEFAULT_ALLOCATION, NO_SALIENCY_ALLOCATION, allocation, default_allocation
from ..errors import StaircaseError
from ..files import atomic_write_json
from ..profile.backends import BACKENDS
from ..profile.timing import TIMINGS
from ..quantize import INT8_BACKENDS, INT8_SETTINGS, precisions_here
from ..settings import option
from ..train.data import DATA_KINDS
from ..train.sparsity import check_sparsity
from .point import Point
from .points import PointMaker, PointSkipped
from .report import write_report

__all__ = ["CompareSettings", "Comparison", "METHODS"]

METHODS = ("teacher", "channel", "channel-unsnapped", "weight", "int8", "channel+int8", "bf16", "f16")

# settings every point of one comparison shares: a rerun into the same folder must keep them
SAME_POINTS = ("teacher", "data", "backend", "profile", "widths", "allocation", "epochs", "lr", "batch_size", "train_images",
               "calibration_images", "threads", "grid", "timing", "seed")


@dataclass(kw_only=True)
class CompareSettings:
    teacher: str = option(positional=True, metavar="TEACHER_CKPT",
                          help="the trained network (`staircase train teacher`)")
    data: str = option(help=f"what it was trained on: {', '.join(DATA_KINDS)}")
    out: str = option(help="results folder (rerun to continue)")
    backend: str = option("onnxruntime", choices=tuple(BACKENDS),
                          help="the runtime every point is measured on")
    profile: str | None = option(None, help="device profile for the channel-pruned students (default: made in --out)")
    widths: str | None = option(None, help="a `staircase prune` widths file: the students keep the teacher's most "
                                           "Fisher-salient channels, and its widths unsnapped are a point of their own")
    allocation: str | None = option(None, choices=tuple(ALLOCATIONS),
                                    help="how the channel-pruned students share their latency (see `staircase design "
                                         f"--help`; default: {DEFAULT_ALLOCATION} with --widths, else "
                                         f"{NO_SALIENCY_ALLOCATION})")
    methods: list[str] | None = option(None, metavar="M",
                                       help=f"of {', '.join(METHODS)} (default: all the backend runs here)")
    targets: list[float] = option(default_factory=lambda: [0.35, 0.5, 0.7, 0.85], metavar="SHARE",
                                  help="channel pruning: latency targets as shares of the network's")
    sparsities: list[float] = option(default_factory=lambda: [0.5, 0.75, 0.9, 0.95], metavar="S",
                                     help="weight pruning: shares of zeros")
    int8_settings: list[str] | None = option(None, metavar="NAME",
                                             help="quantiser settings to try (default: all the backend's; the first "
                                                  "is used for channel+int8)")
    epochs: int = option(3, help="fine-tuning per point")
    lr: float = option(0.01, help="fine-tuning learning rate")
    batch_size: int = option(128, help="fine-tuning batch size")
    train_images: int | None = option(None, help="fine-tune on this many images only")
    calibration_images: int = option(300, help="training images the INT8 ranges are measured on")
    threads: int | None = option(None, help="threads (default: all cores)")
    single_thread: bool = option(False, help="also measure every point at one thread")
    grid: int = option(4, help="profiling grid when no --profile is given")
    timing: str = option("standard", choices=tuple(TIMINGS),
                         help="how carefully the profile (when none is given), the designs and every point are timed")
    seed: int = option(0, help="seed")

    def check(self) -> list[str]:
        """The methods to run; one clear error for any setting that cannot work."""
        if self.backend not in BACKENDS:
            raise StaircaseError(f"--backend {self.backend!r} must be onnxruntime, openvino or torch")
        here = precisions_here(self.backend)
        offered = ["teacher", "channel", "channel-unsnapped", "weight"]
        if "int8" in here:
            offered += ["int8", "channel+int8"]
        offered += [p for p in ("bf16", "f16") if p in here]
        methods = list(self.methods) if self.methods else offered
        for m in methods:
            if m not in METHODS:
                raise StaircaseError(f"--methods: {m!r} is not one of {', '.join(METHODS)}")
            if "int8" in m and self.backend not in INT8_BACKENDS:
                raise StaircaseError(f"--methods {m}: the {self.backend} backend has no INT8 path here; compare "
                                     f"quantisation with --backend {' or --backend '.join(INT8_BACKENDS)}")
            if m in ("bf16", "f16") and m not in here:
                raise StaircaseError(f"--methods {m}: {self.backend} does not compute in {m} on this device "
                                     f"(it offers {', '.join(here) or 'f32 only'}); leave {m} out")
        for s in self.sparsities:
            check_sparsity(s, "--sparsities")
        for t in self.targets:
            if not 0 < t < 1:
                raise StaircaseError(f"--targets {t}: each target is a share of the network's latency, in (0, 1)")
        known = INT8_SETTINGS.get(self.backend, ())
        for s in self.int8_settings or ():
            if s not in known:
                raise StaircaseError(f"--int8-settings {s!r} is not one of {', '.join(known)} on {self.backend}")
        from ..profile.timing import TIMINGS

        if self.timing not in TIMINGS:
            raise StaircaseError(f"--timing {self.timing!r} must be one of {', '.join(TIMINGS)}")
        if self.allocation is not None:
            allocation(self.allocation)  # refuses an unknown one
        if self.epochs < 0 or self.calibration_images < 1:
            raise StaircaseError("--epochs must be at least 0 and --calibration-images at least 1")
        return ["teacher", *[m for m in METHODS if m in methods and m != "teacher"]]


class Comparison:
    """Builds and measures the points ``settings`` asks for, one at a time, into ``compare.json``."""

    def __init__(self, settings: CompareSettings, log: Callable[[str], None] = print):
        from ..train.checkpoint import model_from_checkpoint
        from ..train.data import load_data

        self.methods = settings.check()
        if settings.allocation is None:  # recorded in compare.json as the allocation used
            from ..widths import WidthsFile

            settings = replace(settings, allocation=default_allocation(
                WidthsFile.load(settings.widths) if settings.widths else None))
        self.settings, self.log = settings, log
        self.out = Path(settings.out)
        self.model, self.arch, spec = model_from_checkpoint(settings.teacher)
        if spec is not None:
            raise StaircaseError(f"{settings.teacher} holds a student ({spec.name}); compare compresses a network "
                                 "trained with `staircase train teacher`: give that checkpoint")
        self.data = load_data(settings.data, self.arch.input_size, augment=False,
                              preprocessing=self.arch.preprocessing)
        outputs = count_outputs(self.model, self.arch.input_size)
        if outputs != self.data.num_classes:
            raise StaircaseError(f"--data {settings.data} has {self.data.num_classes} classes but {settings.teacher} "
                                 f"has {outputs} outputs; compare on the data the network was trained on")
        self.path = self.out / "compare.json"
        self.points: list[Point] = self._read_points()
        self.skipped: dict[tuple[str, str], str] = {}  # (method, setting) -> why it could not be made
        self.maker = PointMaker(settings, self.model, self.arch, self.data, log)

    def _read_points(self) -> list[Point]:
        if not self.path.exists():
            return []
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            raise StaircaseError(f"{self.path} cannot be read; delete it to measure every point again") from None
        theirs, mine = doc.get("settings", {}), asdict(self.settings)
        differ = [k for k in SAME_POINTS if k in theirs and theirs[k] != mine[k]]
        if differ:
            changes = "; ".join(f"{k}: {theirs[k]!r} there, {mine[k]!r} here" for k in differ[:4])
            raise StaircaseError(f"{self.path} holds points made with other settings ({changes}); rerun with the "
                                 "same ones to continue it (targets, sparsities, methods and INT8 settings may "
                                 "change), or choose another --out")
        return [Point.from_dict(p) for p in doc.get("points", [])]

    def lowest_target(self) -> float:
        """The smallest latency target (a share of the network's) a channel-pruned student
        reaches on this device's steps; the profile is made first when there is none."""
        return self.maker.lowest_share()

    def _skipped_list(self) -> list[dict[str, str]]:
        return [{"method": m, "setting": s, "why": why} for (m, s), why in self.skipped.items()]

    def _save(self) -> None:
        atomic_write_json(self.path, {"settings": asdict(self.settings), "points": [p.to_dict() for p in self.points],
                                      "skipped": self._skipped_list()})

    # -- the run ------------------------------------------------------------------------------

    def run(self, on_point: Callable[[Point], None] | None = None) -> list[Point]:
        """Every point of every method (finished ones reused); the points. ``on_point(point)``
        is called after each new point is saved."""
        maker = self.maker
        for method in self.methods:
            for setting, build in maker.plan(method):
                if any(p.method == method and p.setting == setting for p in self.points):
                    continue
                started = time.perf_counter()
                self.log(f"{method} {setting}: building")
                try:
                    artifact = build()
                except PointSkipped as why:
                    self.skipped[(method, setting)] = str(why)
                    self.log(f"{method} {setting}: skipped: {why}")
                    self._save()
                    continue
                self.skipped.pop((method, setting), None)
                point = maker.measure(method, setting, artifact)
                point.minutes = (time.perf_counter() - started) / 60
                self.points.append(point)
                self._save()
                write_report(self.out, self.points, asdict(self.settings), self._skipped_list())
                self.log(f"{method} {setting}: top-1 {point.top1:.2f}%, {point.ratio:.3f} of the teacher's "
                         f"latency, {point.size_bytes / 1e6:.2f} MB, +{point.peak_memory_bytes / 1e6:.1f} MB "
                         "to run")
                if on_point is not None:
                    on_point(point)
        self._time_together()
        self._save()
        if self.points:
            write_report(self.out, self.points, asdict(self.settings), self._skipped_list())
        return self.points

    def _time_together(self) -> None:
        """Every point timed beside the network again in the same passes (``TOGETHER_PASSES``,
        each in a new random order), so that their ratios come from one measurement run and
        can be set against each other; skipped when they already do."""
        from ..design.measured import TOGETHER_PASSES, interleaved

        runs = {p.measurement for p in self.points}
        if not self.points or (len(runs) == 1 and None not in runs):
            return
        name = f"{self.settings.backend}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        self.log(f"timing all {len(self.points)} points together ({name}): {TOGETHER_PASSES} passes, each in a "
                 "new order")
        found = interleaved({(p.method, p.setting): self.maker.one_pair(p) for p in self.points}, TOGETHER_PASSES,
                            seed=self.settings.seed)
        for p in self.points:
            measured = found[(p.method, p.setting)]
            p.ratio, p.ratio_ci95, p.ratio_passes, p.measurement = (measured.ratio, [measured.low, measured.high],
                                                                    measured.passes, name)
