"""The three jobs as resumable stages in one run folder: profile -> teacher -> prune ->
design -> train -> export.

Each stage writes its output under ``out`` and returns it; run again, a stage whose output
is there is reused (and says so), a killed one resumes (profiles and training runs keep
their journals and checkpoints). ``staircase demo`` and ``scripts/reproduce_cifar.py`` are
both built from these stages.

    out/profile.json              the device profile          (profile)
    out/teacher/                  the trained teacher         (teacher)
    out/<method>-widths.json      a pruning run's widths file (prune)
    out/students/<name>.json      student specs               (design)
    out/train/<name>/             each student's training run (train_student)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .modelref import ResolvedModel, resolve_model
from .profile.steps import DEFAULT_GRID
from .spec import StudentSpec

if TYPE_CHECKING:
    from .train.export import Exported
    from .train.trainer import TrainResult

__all__ = ["Pipeline"]


@dataclass
class Pipeline:
    out: Path
    model: str = "wrn_16_2"
    data: str = "digits"
    threads: int | None = None
    train_device: str = "auto"
    train_images: int | None = None
    val_split: float = 0.0  # every run trains on the rest and is judged on this held-out share
    split_seed: int = 0
    log: Callable[[str], None] = print
    _teacher: ResolvedModel | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.out = Path(self.out)

    @property
    def teacher_checkpoint(self) -> Path:
        return self.out / "teacher" / "last.pt"

    def profile(self, backend: str = "onnxruntime", grid: int = DEFAULT_GRID, timing: str = "standard",
                progress: bool = True, rounds: int = 1):
        """The teacher's slots profiled on ``backend`` (a :class:`~staircase.profile.sweep.SweepResult`),
        each point measured in ``rounds`` interleaved rounds."""
        from .profile.backends import get_backend
        from .profile.sweep import profile_network

        path = self.out / "profile.json"
        if path.exists():
            self.log(f"reusing {path}")
        return profile_network(self.model, get_backend(backend, threads=self.threads), path, grid=grid, rounds=rounds,
                               timing=timing, progress=progress, log=self.log)

    def teacher(self, epochs: int, lr: float = 0.1, batch_size: int = 128, deterministic: bool = False
                ) -> TrainResult:
        """The teacher trained from scratch on the data (its training summary); ``deterministic``
        trains the same weights again on the same kind of machine."""
        return self._train(self.model, self.out / "teacher", epochs, role="teacher", lr=lr, batch_size=batch_size,
                           deterministic=deterministic)

    def trained_teacher(self) -> ResolvedModel:
        """The teacher network with the weights the ``teacher`` stage trained."""
        from .train.checkpoint import load_weights

        if self._teacher is None:
            resolved = resolve_model(self.model)
            load_weights(resolved.model, self.teacher_checkpoint, self.model)
            self._teacher = resolved
        return self._teacher

    def prune(self, share: float, method: str = "fisher", batch_size: int = 64, seed: int = 0):
        """A copy of the trained teacher pruned to ``share`` of its inner channels (Fisher
        pruning fine-tunes as it goes); its :class:`~staircase.widths.WidthsFile`."""
        import torch

        from .design.prune import Target, run_prune
        from .slots import SlotGraph
        from .widths import WidthsFile

        path = self.widths_path(method)
        if path.exists():
            self.log(f"reusing {path}")
            return WidthsFile.load(path)
        teacher = self.trained_teacher()
        pruned = ResolvedModel(copy.deepcopy(teacher.model), teacher.architecture)  # pruning shrinks its model
        inner = sum(s.width for s in SlotGraph(pruned.model, teacher.architecture.input_size).selected())
        torch.manual_seed(seed)
        written = run_prune(pruned, method, Target(channels=round(share * inner)), path, data=self.data,
                            batch_size=batch_size, threads=self.threads, log=self.log,
                            held_out=(self.val_split, self.split_seed))
        self.log(f"{method} pruning: {len(written.removed)} channels removed in {written.run['steps']} steps "
                 f"({written.run['seconds']:.0f} s) -> {path}")
        return written

    def widths_path(self, method: str = "fisher") -> Path:
        """Where the ``prune`` stage writes its widths file."""
        return self.out / f"{method}-widths.json"

    def design(self, target_ms: float, widths: str | Path | None = None, name: str | None = None,
               baselines: bool | Collection[str] = True, allow_few_steps: bool = False) -> list:
        """The staircase student for ``target_ms`` (judged at the profile's speed) on
        ``profile.json``, and the ``baselines`` measured to its latency (True: all of
        ``BASELINES``; the unsnapped one needs ``widths``, a widths file); each spec in
        ``students/``. Reused when the student's spec is there. ``allow_few_steps``: design
        (with a warning) on a profile that found steps in half its slots or fewer."""
        from .design.job import DesignSettings, design
        from .design.measured import BASELINES, Designed

        name = name or f"{self.model}-staircase"
        folder = self.out / "students"
        main = folder / f"{name}.json"
        which = tuple(b for b in BASELINES if (baselines is True or b in (baselines or ()))
                      and (b != "unsnapped" or widths is not None))
        if main.exists():
            self.log(f"reusing the specs in {folder}")
            return [Designed.from_spec(StudentSpec.load(folder / f"{name}{s}.json"))
                    for s in ["", *(f"-{b}" for b in which)]]
        settings = DesignSettings(model=self.model, profile=str(self.out / "profile.json"), out=str(main),
                                  widths=str(widths) if widths else None, target_ms=target_ms, baselines=which,
                                  allow_few_steps=allow_few_steps)
        result = design(settings, teacher=self.trained_teacher(), log=self.log)
        for d, path in zip(result.designs, result.paths, strict=True):
            self.log(f"wrote {path}: {d.spec.provenance.method}, measured {d.measured_ms:.3f} ms "
                     f"({d.judged_ms:.3f} at the profile's speed)")
        return result.designs

    def inherit(self, spec: StudentSpec, widths_file=None) -> Path:
        """``students/<name>.pt``: the student with the trained teacher's weights for the
        channels it keeps (Fisher-ranked where ``widths_file`` maps saliency to channels,
        else L1); its spec records which."""
        from .design.inherit import inherited_student, save_student

        path = self.out / "students" / f"{spec.name}.json"
        weights = path.with_suffix(".pt")
        if weights.exists():
            return weights
        model = inherited_student(self.trained_teacher().model, spec, str(self.teacher_checkpoint), widths_file)
        return save_student(spec, model, path)[1]

    def train_student(self, spec: StudentSpec, epochs: int, attention: bool = True, init: str | None = None,
                      seed: int = 0, lr: float = 0.05, batch_size: int = 64, folder: str | None = None,
                      kd_alpha: float = 0.0) -> TrainResult:
        """Train a student spec from ``students/`` (with attention transfer from the teacher
        when ``attention``, and distillation of its outputs at weight ``kd_alpha``; from
        ``init``'s weights when given) into ``train/<name>``."""
        spec_path = self.out / "students" / f"{spec.name}.json"
        if not spec_path.exists():
            spec.save(spec_path)
        return self._train(str(spec_path), self.out / "train" / (folder or spec.name), epochs, lr=lr,
                           batch_size=batch_size, teacher=str(self.teacher_checkpoint) if attention else None,
                           init=init, seed=seed, kd_alpha=kd_alpha)

    def export(self, run: Path) -> Exported:
        """A training run's best checkpoint exported to ONNX beside it, checked against torch."""
        from .train.checkpoint import model_from_checkpoint
        from .train.export import export_onnx

        model, arch, _ = model_from_checkpoint(Path(run) / "best.pt")
        return export_onnx(model, arch.input_size, Path(run) / "best.onnx")

    def _train(self, model: str, out: Path, epochs: int, role: str = "student", lr: float = 0.05,
               batch_size: int = 64, teacher: str | None = None, init: str | None = None, seed: int = 0,
               deterministic: bool = False, kd_alpha: float = 0.0) -> TrainResult:
        from .train.trainer import TrainConfig, train_or_reuse

        config = TrainConfig(model=model, data=self.data, out=str(out), role=role, teacher=teacher, init=init, epochs=epochs, batch_size=batch_size, lr=lr,
                             train_images=self.train_images, threads=self.threads, device=self.train_device,
                             seed=seed, deterministic=deterministic, progress=False, val_split=self.val_split,
                             split_seed=self.split_seed, kd_alpha=kd_alpha)
        return train_or_reuse(config, log=self.log)
