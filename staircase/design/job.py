"""The design job: one validated entry point from settings to student specs on disk.

``design(settings)`` is what ``staircase design``, the pipeline (``staircase demo``, the
CIFAR experiment) and ``staircase compare`` call. Every check lives here: the output path,
the target, a profile that found too few steps, a profile measured on another device or
with another runtime version (when the designs are measured), widths written for another
model, two teachers named at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StaircaseError
from ..modelref import ResolvedModel
from ..profile.timing import TIMINGS
from ..settings import check_positive, option
from ..train.data import HeldOutSettings
from .allocations import ALLOCATIONS, DEFAULT_ALLOCATION, NO_SALIENCY_ALLOCATION
from .designer import Designer
from .measured import BASELINES, BesideTeacher, Designed, Measure, MeasureTogether, design_with_baselines

__all__ = ["DesignResult", "DesignSettings", "design"]


@dataclass
class DesignSettings(HeldOutSettings):
    model: str = option(positional=True, metavar="MODEL",
                        help="zoo name, package.module:factory, or a student spec file")
    profile: str = option(help="the device profile (it must cover MODEL)")
    out: str = option(help="student spec to write (baselines go beside it)")
    num_classes: int | None = option(None, help="classifier outputs (default: the model's own)")
    input_shape: str | None = option(None, metavar="C,H,W",
                                     help="input size for models that do not declare one (default: the model's own)")
    widths: str | None = option(None, help="widths file (from `staircase prune`) to snap")
    snap: str = option("nearest", choices=("nearest", "up", "down", "fill"),
                       help="where a width goes: nearest optimal width (the paper), down, up (the top of its step, "
                            "slot by slot), or fill (more channels for no more predicted time, judged for the whole "
                            "network)")
    target_ms: float | None = option(None, help="design for this latency: optimal widths keeping the most saliency")
    target_share: float | None = option(None, help="design for this share of the teacher's latency in the profile "
                                                   "(e.g. 0.7)")
    baselines: bool | tuple[str, ...] = option(False, help="also write the unsnapped, L1-pruned and uniform students "
                                                          "at the same latency")
    allocation: str | None = option(None, choices=ALLOCATIONS,
                                    help="how a target's latency is shared among slots: the most Fisher saliency "
                                         "(needs --widths from `staircase prune`), L1 saliency or parameters on the "
                                         "optimal widths, or the teacher's proportions snapped up to the steps "
                                         f"(default for a target: {DEFAULT_ALLOCATION} with --widths, chosen on "
                                         "the CIFAR experiment's validation split in docs/RESULTS.md, else "
                                         f"{NO_SALIENCY_ALLOCATION}; "
                                         "without a target, the saliency snapping ranks slots by: fisher with a "
                                         "widths file, else params)")
    min_width: int | None = option(None, help="no slot narrower than this (default: the network's step in the "
                                              "profile; 1 allows one-channel bottlenecks)")
    checkpoint: str | None = option(None, help="teacher weights for the L1 ranking")
    inherit: str | None = option(None, metavar="TEACHER_CKPT",
                                 help="every student starts from this trained teacher's weights: each slot keeps its "
                                      "most important channels (written beside each spec, S.json -> S.pt)")
    data: str | None = option(None, help="with --inherit: measure each student's BatchNorm statistics again on this "
                                         "data's training images")
    measure: bool = option(True, no_flag="--no-measure", help="predict only; do not time the students")
    timing: str = option("standard", choices=tuple(TIMINGS),
                         help="how long each paired measurement beside the teacher takes")
    allow_other_device: bool = option(False, help="use a profile measured on another device or backend")
    allow_few_steps: bool = option(False, help="design on a profile that found steps in half its slots or fewer")

    def check(self) -> None:
        check_positive(target_ms=self.target_ms, target_share=self.target_share)
        if self.target_ms is not None and self.target_share is not None:
            raise StaircaseError("--target-ms and --target-share both set the target; give one")
        if Path(self.out).suffix != ".json":
            raise StaircaseError(f"--out {self.out} must name a .json student spec")
        if self.data and not self.inherit:
            raise StaircaseError("--data measures the inherited students' BatchNorm statistics: give --inherit too")
        if self.inherit and self.checkpoint and self.checkpoint != self.inherit:
            raise StaircaseError("--checkpoint and --inherit name two teachers; give one (--inherit's weights also "
                                 "rank the L1 baseline)")
        if self.baselines is not True and self.baselines is not False:
            unknown = sorted(set(self.baselines) - set(BASELINES))
            if unknown:
                raise StaircaseError(f"unknown baselines {unknown}; choose from {', '.join(BASELINES)}")


@dataclass
class DesignResult:
    """The designs (the staircase student first, then its baselines), where each was
    written, and the teacher's time in the profile they were judged against."""

    designs: list[Designed]
    paths: list[Path]
    teacher_ms: float
    target_ms: float | None
    designer: Designer = field(repr=False)

    @property
    def student(self) -> Designed:
        return self.designs[0]

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready row per design."""
        return [{"student": d.spec.name, "params": d.spec.params, "macs": d.spec.macs,
                 "predicted_ms": d.predicted_ms, "measured_ms": d.measured_ms, "measured_iqr_ms": d.measured_iqr_ms,
                 "at_profile_speed_ms": d.at_profile_ms, "retained_saliency": d.retained,
                 "method": d.spec.provenance.method, "spec": str(p), "met_target": d.met,
                 "over_student": d.spec.provenance.notes.get("over_student"),
                 "matched": d.spec.provenance.notes.get("matched")}
                for d, p in zip(self.designs, self.paths, strict=True)]


def design(settings: DesignSettings, teacher: ResolvedModel | None = None, measure: Measure | None = None,
           log: Callable[[str], None] = print, warn: Callable[[str], None] | None = None,
           together: MeasureTogether | None = None) -> DesignResult:
    """The students ``settings`` ask for, checked, designed, measured and written.

    ``teacher``: the network already loaded (with its weights), instead of resolving
    ``settings.model`` and loading ``settings.checkpoint``; ``measure``: how a student is
    timed, and ``together``: how the student and its baselines are timed in the same passes
    at the end (default for both: beside the teacher on the profile's backend, unless
    ``settings.measure`` is off); ``warn``: where warnings go (default: ``log``)."""
    from ..files import check_writable
    from ..modelref import parse_input_shape, resolve_model
    from ..profile.backends import backend_of
    from ..profile.store import Profile
    from ..profile.timing import TIMINGS
    from ..train.checkpoint import load_weights
    from ..widths import WidthsFile

    s, warn = settings, warn or log
    s.check()
    out = check_writable(s.out)
    prof = Profile.load(s.profile)
    weights = s.checkpoint or s.inherit
    if teacher is None:
        teacher = resolve_model(s.model, s.num_classes, parse_input_shape(s.input_shape))
        if weights:
            load_weights(teacher.model, weights, teacher.architecture.name)
    if teacher.spec is not None:
        raise StaircaseError(f"{s.model} is a student spec; design from its teacher ({teacher.spec.teacher.name})")
    designer = Designer(prof, teacher, min_width=s.min_width)
    few = designer.latency.few_steps()
    if few and not s.allow_few_steps:
        raise StaircaseError(f"{few} (or pass --allow-few-steps to design on it anyway)")
    if few:
        warn(f"{few}; designing on it as asked")
    target_ms = s.target_ms
    if s.target_share is not None:
        target_ms = round(s.target_share * designer.teacher_ms, 6)
        log(f"target: {s.target_share:g} x the teacher's {designer.teacher_ms:.4f} ms in the profile "
            f"= {target_ms:.4f} ms")
    if measure is None and s.measure:
        backend = backend_of(prof)
        prof.check_fingerprint(backend.fingerprint(), s.allow_other_device, warn=warn)
        measure = BesideTeacher(backend, teacher.model, teacher.architecture.input_size, designer.teacher_ms,
                                protocol=TIMINGS[s.timing].network)
        together = together or measure.together
    widths_file = WidthsFile.load(s.widths) if s.widths else None
    designs = design_with_baselines(designer, out.stem, widths_file, s.snap, target_ms, s.baselines, measure, log,
                                    allocation=s.allocation, together=together)
    paths = [out.with_name(d.spec.name + ".json") for d in designs]
    for d, path in reversed(list(zip(designs, paths, strict=True))):  # the student last: its file says it is done
        if s.inherit:
            from .inherit import inherited_student, save_student

            save_student(d.spec, inherited_student(teacher.model, d.spec, s.inherit, widths_file, s.data,
                                                        (s.val_split, s.split_seed)), path)
        else:
            d.spec.save(path)
    return DesignResult(designs, paths, designer.teacher_ms, target_ms, designer)
