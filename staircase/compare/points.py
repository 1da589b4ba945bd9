"""How each kind of point of a comparison is made, and how every point is measured.

- ``teacher``: the network as given, exported.
- ``channel`` (one point per latency target): the staircase student the designer picks for
  that share of the network's latency, measured beside it, starting from the network's
  weights (each slot keeps its most important channels) and fine-tuned.
- ``channel-unsnapped``: the pruned widths without the staircase (the widths file's
  removal order, else L1 filter ranking), cut to the same measured latency, inherited and
  fine-tuned alike.
- ``weight`` (one point per sparsity): global magnitude pruning, fine-tuned with the mask
  held, exported with its zeros (both runtimes run dense kernels over them).
- ``int8`` (one point per quantiser setting): post-training quantisation of the network.
- ``channel+int8``: each fine-tuned channel point quantised with the default setting.
- ``bf16`` / ``f16``: the network and each channel point run at that precision, where the
  device computes in it.

Every fine-tuning run has the same recipe: ``epochs`` at ``lr`` (x0.2 at 30/60/80%),
cross-entropy plus attention transfer from the unmodified network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..complexity import count_params
from ..errors import StaircaseError
from ..quantize import INT8_SETTINGS
from .point import Point

__all__ = ["Artifact", "PointMaker", "PointSkipped"]


class PointSkipped(StaircaseError):
    """A point that cannot be made on this device (e.g. a latency target below what the
    profile's steps reach): the comparison says why and goes on."""


@dataclass
class Artifact:
    """A point before it is measured: its deployable file, the precision the runtime runs it
    at, and what made it."""

    path: Path
    precision: str = "f32"
    info: dict[str, Any] = field(default_factory=dict)

Plan = Iterator[tuple[str, Callable[[], Artifact]]]


def _pct(share: float) -> str:
    return f"{round(share * 100)}%"


class PointMaker:
    """Plans each method's points and makes and measures them, reusing what is on disk."""

    def __init__(self, settings, model, arch, data, log: Callable[[str], None]):
        """``settings``: the comparison's :class:`~staircase.compare.comparison.CompareSettings`;
        ``model``/``arch``: the trained network and its architecture; ``data``: its data."""
        from ..profile.backends import get_backend
        from ..profile.timing import TIMINGS

        self.s, self.model, self.arch, self.data, self.log = settings, model, arch, data, log
        self.out = Path(settings.out)
        self.protocol = TIMINGS[settings.timing].network  # every whole network's paired measurement
        self.backend = get_backend(self.s.backend, threads=self.s.threads)
        self._designer = None
        self._widths_file = None
        self._teacher_run: dict[int, Callable] = {}
        self._calibration = None

    # -- what each method makes ----------------------------------------------------------------

    def plan(self, method: str) -> Plan:
        """(setting, build) for each point of ``method``, in order."""
        s = self.s
        if method == "teacher":
            yield "f32", lambda: Artifact(self.teacher_file(), info={"params": count_params(self.model)})
        elif method == "channel":
            for t in s.targets:
                yield _pct(t), lambda t=t: self._channel(t, unsnapped=False)
        elif method == "channel-unsnapped":
            for t in s.targets:
                yield _pct(t), lambda t=t: self._channel(t, unsnapped=True)
        elif method == "weight":
            for sp in s.sparsities:
                yield _pct(sp), lambda sp=sp: self._weight(sp)
        elif method == "int8":
            for setting in s.int8_settings or INT8_SETTINGS[s.backend]:
                yield setting, lambda setting=setting: self._int8(self.onnx_of("teacher", self.model), "int8-" + setting,
                                                                  setting, {"params": count_params(self.model)})
        elif method == "channel+int8":
            for t in s.targets:
                yield _pct(t), lambda t=t: self._channel_int8(t)
        elif method in ("bf16", "f16"):
            yield "teacher", lambda: Artifact(self.teacher_file(), method, {"params": count_params(self.model)})
            for t in s.targets:
                yield f"channel {_pct(t)}", lambda t=t: self._at_precision(self._channel(t, unsnapped=False), method)

    @staticmethod
    def _at_precision(artifact: Artifact, precision: str) -> Artifact:
        return Artifact(artifact.path, precision, artifact.info)

    # -- files ---------------------------------------------------------------------------------

    def teacher_file(self) -> Path:
        return self.deployable("teacher", self.model)

    def onnx_of(self, name: str, model) -> Path:
        """``files/<name>.onnx``: the float network as ONNX (exported once, checked against torch)."""
        from ..train.export import export_onnx

        path = self.out / "files" / f"{name}.onnx"
        if not path.exists():
            result = export_onnx(model, self.arch.input_size, path)
            if not result.check.within_tolerance:
                raise StaircaseError(f"the ONNX export of {name} differs from torch by {result.check.max_abs_diff:.3g}")
        return path

    def deployable(self, name: str, model, spec=None) -> Path:
        """The float network as this backend deploys it: ONNX, OpenVINO IR, or a checkpoint
        of its weights alone (torch; with its student ``spec``)."""
        from ..train.checkpoint import save_checkpoint
        from ..train.export import export_openvino

        if self.s.backend == "onnxruntime":
            return self.onnx_of(name, model)
        if self.s.backend == "openvino":
            path = self.out / "files" / f"{name}.xml"
            if not path.exists():
                export_openvino(model, self.arch.input_size, path)
            return path
        path = self.out / "files" / f"{name}.pt"
        if not path.exists():
            save_checkpoint(path, {"model": model.state_dict(), "architecture": self.arch.to_dict(),
                                   "spec": spec.to_dict() if spec is not None else None})
        return path

    # -- channel pruning -----------------------------------------------------------------------

    def lowest_share(self) -> float:
        """The smallest share of the network's latency a channel-pruned student reaches on
        the profile's steps (predicted)."""
        from ..design.allocations import allocation

        designer = self.designer()
        return allocation(self.s.allocation).smallest_ms(designer) / designer.teacher_ms

    def profile_path(self) -> Path:
        """The device profile: the one given, else one made in ``out`` (resumably)."""
        if self.s.profile:
            from ..profile.store import Profile

            backend = Profile.load(self.s.profile).fingerprint.get("backend")
            if backend != self.backend.name:
                raise StaircaseError(f"--profile {self.s.profile} was measured with {backend}, the comparison runs "
                                     f"on {self.backend.name}; give a profile of {self.backend.name}, or none "
                                     "(one is made)")
            return Path(self.s.profile)
        from ..profile.sweep import profile_network

        path, arch = self.out / "profile.json", self.arch
        if self._designer is None:  # once a run: a finished profile is reused, a killed one resumed
            self.log(f"profiling {arch.name} on {self.backend.name} into {path} (grid {self.s.grid})")
            profile_network(arch.name, self.backend, path, input_size=tuple(arch.input_size),
                            num_classes=arch.kwargs.get("num_classes"), grid=self.s.grid, rounds=2,
                            timing=self.s.timing, progress=False, log=self.log)
        return path

    def designer(self):
        """The designer on the device profile."""
        if self._designer is None:
            from ..design.designer import Designer
            from ..modelref import ResolvedModel
            from ..profile.store import Profile

            prof = Profile.load(self.profile_path())
            self._designer = Designer(prof, ResolvedModel(copy.deepcopy(self.model), self.arch))
        return self._designer

    @property
    def widths_file(self):
        """The pruning run's widths file, when one was given."""
        if self._widths_file is None and self.s.widths:
            from ..widths import WidthsFile

            self._widths_file = WidthsFile.load(self.s.widths)
        return self._widths_file

    def _designs(self, target: float):
        """(the staircase student's spec, the unsnapped widths' spec) at ``target``: designed
        and measured once, kept in ``students/``."""
        from ..design.job import DesignSettings, design
        from ..modelref import ResolvedModel
        from ..spec import StudentSpec

        folder = self.out / "students"
        name = f"channel-{round(target * 100)}"
        baseline = "unsnapped" if self.s.widths else "l1"  # the pruned widths unsnapped, else L1 pruning's
        paths = folder / f"{name}.json", folder / f"{name}-{baseline}.json"
        if all(p.exists() for p in paths):
            return tuple(StudentSpec.load(p) for p in paths)
        lowest = self.lowest_share()
        if target < lowest:
            raise PointSkipped(f"{target:.0%} of the network's latency is below what this profile's steps reach "
                               f"({lowest:.0%} predicted for the narrowest student); ask for at least that")
        settings = DesignSettings(model=self.arch.name, profile=str(self.profile_path()), out=str(paths[0]),
                                  widths=self.s.widths, target_share=target, baselines=(baseline,),
                                  allocation=self.s.allocation, timing=self.s.timing)
        found = design(settings, teacher=ResolvedModel(copy.deepcopy(self.model), self.arch), log=self.log)
        return found.student.spec, found.designs[1].spec

    def _trained(self, name: str, spec_path: Path | None, init: str, sparsity: float = 0.0):
        """The network fine-tuned from ``init`` (or ``init`` itself with no epochs); its
        model and the training minutes."""
        from ..train.checkpoint import model_from_checkpoint
        from ..train.trainer import TrainConfig, train_or_reuse

        s, arch = self.s, self.arch
        if s.epochs == 0:
            model = model_from_checkpoint(init)[0] if spec_path is not None else copy.deepcopy(self.model)
            if sparsity:
                from ..train.sparsity import WeightMasks

                WeightMasks(model, sparsity)
            return model, 0.0
        config = TrainConfig(
            model=str(spec_path) if spec_path is not None else arch.name, data=s.data,
            out=str(self.out / "train" / name), role="student", teacher=s.teacher, at_beta=1e3, init=init,
            sparsity=sparsity, epochs=s.epochs, lr=s.lr, batch_size=s.batch_size, train_images=s.train_images,
            num_classes=None if spec_path is not None else arch.kwargs.get("num_classes"),
            input_shape=None if spec_path is not None else list(arch.input_size), threads=s.threads,
            seed=s.seed, progress=False,
            workers=0)  # this process holds the runtimes, whose threads a forked loader process would break
        summary = train_or_reuse(config, log=lambda m: self.log(f"  {m}"))
        model = model_from_checkpoint(Path(config.out) / "last.pt")[0]
        return model, summary.seconds_this_session / 60

    def _channel_model(self, target: float, unsnapped: bool):
        """(spec, fine-tuned network, training minutes) of the channel point at ``target``:
        designed, inherited from the network's weights and fine-tuned, each reused when done."""
        from ..design.inherit import inherited_student, save_student
        from ..spec import StudentSpec

        spec = self._designs(target)[1 if unsnapped else 0]
        spec_path = self.out / "students" / f"{spec.name}-inherited.json"
        if not spec_path.with_suffix(".pt").exists():
            inherited = StudentSpec.from_dict(spec.to_dict(), str(spec_path))
            save_student(inherited, inherited_student(self.model, inherited, self.s.teacher, self.widths_file),
                         spec_path)
        model, minutes = self._trained(spec.name, spec_path, str(spec_path.with_suffix(".pt")))
        return spec, model, minutes

    def _channel(self, target: float, unsnapped: bool) -> Artifact:
        spec, model, minutes = self._channel_model(target, unsnapped)
        notes = spec.provenance.notes
        info = {"params": count_params(model), "train_minutes": minutes, "target": target,
                "designed_ratio": notes.get("ratio_to_teacher"), "widths": dict(spec.widths),
                "design": spec.provenance.method}
        return Artifact(self.deployable(spec.name, model, spec), info=info)

    def _channel_int8(self, target: float) -> Artifact:
        spec, model, _ = self._channel_model(target, unsnapped=False)
        default = (self.s.int8_settings or INT8_SETTINGS[self.s.backend])[0]
        return self._int8(self.onnx_of(spec.name, model), f"{spec.name}-int8", default,
                          {"params": count_params(model), "target": target, "int8_setting": default})

    # -- weight pruning ------------------------------------------------------------------------

    def _weight(self, sparsity: float) -> Artifact:
        from ..train.sparsity import zero_share
        from .runtime import file_zero_share

        name = f"weight-{round(sparsity * 100)}"
        model, minutes = self._trained(name, None, self.s.teacher, sparsity)
        zeros = zero_share(model)
        if zeros < sparsity - 1e-3:
            raise StaircaseError(f"{name}: only {zeros:.1%} of the weights are zero after fine-tuning, not "
                                 f"{sparsity:.0%}; the mask was not held")
        path = self.deployable(name, model)
        return Artifact(path, info={"params": count_params(model), "zero_share": zeros, "train_minutes": minutes,
                                    "file_zero_share": file_zero_share(path)})

    # -- quantisation --------------------------------------------------------------------------

    def calibration(self):
        """The calibration batches: training images drawn with the run's seed, unaugmented."""
        if self._calibration is None:
            from ..quantize import calibration_batches

            self._calibration = calibration_batches(self.data.train, self.s.calibration_images, seed=self.s.seed)
        return self._calibration

    def _int8(self, float_onnx: Path, name: str, setting: str, info: dict[str, Any]) -> Artifact:
        from ..quantize import quantize_onnxruntime, quantize_openvino

        if self.s.backend == "onnxruntime":
            path = self.out / "files" / f"{name}.onnx"
            how = quantize_onnxruntime(float_onnx, path, self.calibration(), setting)
        else:
            path = self.out / "files" / f"{name}.xml"
            how = quantize_openvino(float_onnx, path, self.calibration(), setting)
        return Artifact(path, "int8", {**info, "quantization": how})

    # -- measuring -----------------------------------------------------------------------------

    def _reference(self, threads: int):
        """The unmodified network prepared to be timed beside (one per thread count)."""
        if threads not in self._teacher_run:
            self._teacher_run[threads] = self._prepare(self.teacher_file(), self._backend(threads, "f32"))
        return self._teacher_run[threads]

    def _backend(self, threads: int, precision: str):
        from ..profile.backends import get_backend

        # an int8 file carries its precision; the runtime is told f32 for what stays float
        return get_backend(self.s.backend, threads=threads, precision="f32" if precision == "int8" else precision)

    def _prepare(self, path: Path, backend):
        if backend.name == "torch":
            from ..train.checkpoint import model_from_checkpoint

            return backend.prepare_model(model_from_checkpoint(path)[0], tuple(self.arch.input_size), paired=True)
        return backend.prepare_file(str(path), paired=True)

    def measure(self, method: str, setting: str, artifact: Artifact) -> Point:
        """The point's figures: top-1 as the runtime computes it, the latency ratio beside the
        network, size on disk, peak memory."""
        from ..profile.timing import time_relative
        from .runtime import compressed_bytes, evaluate_file, file_bytes, file_runner, peak_memory

        threads = self.backend.threads
        runner = file_runner(self.s.backend, artifact.path, artifact.precision, threads)
        accuracy = evaluate_file(runner, self.data.test)
        backend = self._backend(threads, artifact.precision)
        rel = time_relative(backend, self._prepare(artifact.path, backend), self._reference(threads), pairs=3,
                            protocol=self.protocol)  # a first figure; the closing measurement replaces it
        memory = peak_memory(self.s.backend, artifact.path, self.arch.input_size, artifact.precision, threads)
        point = Point(method, setting, accuracy["top1"], rel.ratio, rel.run_ms, rel.reference_ms,
                      file_bytes(artifact.path), compressed_bytes(artifact.path), memory["peak_memory_bytes"],
                      memory["peak_rss_bytes"], artifact.precision, threads, accuracy["images"],
                      str(artifact.path.relative_to(self.out)), info=dict(artifact.info))
        if self.s.single_thread and threads != 1:
            one = self._backend(1, artifact.precision)
            rel1 = time_relative(one, self._prepare(artifact.path, one), self._reference(1), pairs=3,
                                 protocol=self.protocol)
            point.ratio_1_thread, point.ms_1_thread = rel1.ratio, rel1.run_ms
        return point

    def one_pair(self, point: Point) -> Callable[[], float]:
        """One paired measurement of ``point``'s file beside the network at its thread count
        (the closing measurement's unit): called, its ratio."""
        from ..profile.timing import time_relative

        backend = self._backend(point.threads, point.precision)
        run, reference = self._prepare(self.out / point.file, backend), self._reference(point.threads)
        return lambda: time_relative(backend, run, reference, pairs=1, protocol=self.protocol).ratio
