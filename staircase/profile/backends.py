"""Latency backends: prepare an op or a whole network for one input shape on a device, then time it.

One small interface, three implementations (torch eager, ONNX Runtime, OpenVINO); every
backend passes the same contract tests (``tests/test_backends.py``). Threads and precision
are always set explicitly and recorded in the fingerprint.
"""

from __future__ import annotations

import os
import platform
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import StaircaseError, require
from ..settings import option
from .ops import OpSpec
from .timing import Measurement, TimingProtocol, measure

__all__ = ["Backend", "TorchBackend", "OnnxRuntimeBackend", "OpenVinoBackend", "BACKENDS", "BackendSettings", "backend_of",
           "get_backend", "cpu_model"]

_PRECISIONS = {"fp32": "f32", "f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "fp16": "f16", "f16": "f16",
               "int8": "int8", "i8": "int8"}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Backend(ABC):
    """Runs single ops and whole networks at batch ``batch`` on ``device`` with ``threads`` threads."""

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("f32",)

    def __init__(self, device: str = "cpu", threads: int | None = None, batch: int = 1, precision: str = "f32"):
        if threads is not None and int(threads) < 1:
            raise StaircaseError(f"--threads {threads} must be at least 1 (leave it out to use every core)")
        self.threads = int(threads or os.cpu_count() or 1)
        self.batch = int(batch)
        if self.batch < 1:
            raise StaircaseError(f"--batch {batch} must be at least 1")
        key = _PRECISIONS.get(precision.lower())
        if key not in self.precisions:
            others = [n for n, b in BACKENDS.items() if key in b.precisions]
            raise StaircaseError(f"backend {self.name} runs precision {'/'.join(self.precisions)}, not {precision!r}"
                                 + (f"; {key} runs on --backend {' or '.join(others)}" if others else ""))
        self.precision = key
        devices = self.available_devices()
        if device not in devices:
            raise StaircaseError(f"backend {self.name} has no device {device!r}; available here: {', '.join(devices)}")
        self.device = device

    @classmethod
    @abstractmethod
    def available_devices(cls) -> list[str]: ...

    @abstractmethod
    def prepare_op(self, op: OpSpec, width: int) -> Callable[[], object]:
        """A call that runs ``op`` at ``width`` once and returns its output, everything built."""

    @abstractmethod
    def prepare_model(self, model: nn.Module, input_size: tuple[int, ...], paired: bool = False
                      ) -> Callable[[], object]:
        """A call that runs the whole network once on one batch and returns its first output.

        ``paired``: it will be timed block by block beside another paired network
        (``timing.time_relative``), as ops are beside their full width. Where a runtime's
        threads spin between calls (ONNX Runtime), they are told to stop when a call
        returns, or the idle session's threads fight the running one's for the cores.
        Unpaired, the network runs as deployed."""

    def prepare_file(self, path: str, paired: bool = False) -> Callable[[], object]:
        """A call that runs an exported network file (``.onnx``; ``.xml`` IR for OpenVINO)
        once, at this backend's batch where the file leaves the batch open."""
        raise StaircaseError(f"the {self.name} backend runs torch networks, not files like {path}; "
                             "time an exported file with --backend onnxruntime or --backend openvino")

    def version(self) -> str:
        return torch.__version__

    def sync(self) -> None:  # noqa: B027 - a no-op unless the device queues work
        """Wait for queued work (CUDA); CPU backends return at once."""

    def time(self, run: Callable[[], object], protocol: TimingProtocol,
             reference: Callable[[], object] | None = None) -> Measurement:
        """Time ``run``; with a ``reference`` run, also their ratio block by block (drift cancels)."""
        return measure(run, protocol, self.sync, reference=reference)

    def fingerprint(self) -> dict[str, Any]:
        """What a latency depends on besides the op: compared before a profile is reused."""
        return {
            "backend": self.name,
            "backend_version": self.version(),
            "device": self.device,
            "device_name": self.device_name(),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "threads": self.threads,
            "precision": self.precision,
            "batch": self.batch,
            "dtype": "float32",
            "torch": torch.__version__,
            "machine": platform.machine(),
        }

    def device_name(self) -> str:
        return cpu_model()

    def _input(self, shape) -> np.ndarray:
        return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


class TorchBackend(Backend):
    """PyTorch eager mode: CPU with an explicit thread count, or CUDA (timed with synchronisation)."""

    name = "torch"
    precisions = ("f32", "f16", "bf16")

    def __init__(self, device: str = "cpu", threads: int | None = None, batch: int = 1, precision: str = "f32",
                 cudnn_benchmark: bool = False):
        super().__init__(device, threads, batch, precision)
        torch.set_num_threads(self.threads)
        self.cudnn_benchmark = bool(cudnn_benchmark)
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        self._dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[self.precision]

    @classmethod
    def available_devices(cls) -> list[str]:
        return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())] + (["cuda"] if torch.cuda.is_available() else [])

    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.startswith("cuda") else cpu_model()

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)

    def fingerprint(self) -> dict[str, Any]:
        fp = super().fingerprint()
        if self.device.startswith("cuda"):
            fp["cudnn_benchmark"] = self.cudnn_benchmark
            fp["cuda"] = torch.version.cuda
        return fp

    def _runner(self, module: nn.Module, shape) -> Callable[[], object]:
        module = module.to(self.device, self._dtype).eval()
        x = torch.from_numpy(self._input(shape)).to(self.device, self._dtype)

        def run():
            with torch.inference_mode():
                return module(x)

        return run

    def prepare_op(self, op: OpSpec, width: int) -> Callable[[], object]:
        cin, cout, groups = op.shape_at(width)
        if op.kind == "linear":
            return self._runner(nn.Linear(cin, cout), (self.batch, cin))
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, op.kernel, op.stride, op.padding, groups=groups, bias=False)]
        if op.norm_act:
            layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        return self._runner(nn.Sequential(*layers), (self.batch, cin, *op.hw))

    def prepare_model(self, model: nn.Module, input_size: tuple[int, ...], paired: bool = False
                      ) -> Callable[[], object]:
        import copy  # paired or not alike: both networks share this process's thread pool

        return self._runner(copy.deepcopy(model), (self.batch, *input_size))


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime: CPU execution provider with explicit intra-op threads; CUDA where installed.

    At ``int8`` every op and network is quantised to QDQ first (``quantize.quantize_onnx_bytes``)
    and runs on ONNX Runtime's INT8 kernels; an exported file runs as it is."""

    name = "onnxruntime"
    precisions = ("f32", "int8")

    @classmethod
    def available_devices(cls) -> list[str]:
        ort = require("onnxruntime", "the onnxruntime backend", "onnx")
        providers = ort.get_available_providers()
        return ["cpu"] + (["cuda"] if "CUDAExecutionProvider" in providers else [])

    def version(self) -> str:
        return require("onnxruntime", "the onnxruntime backend", "onnx").__version__

    SPIN = ("deployed", "within_run", "off")

    def _session(self, model_bytes: bytes, shape, spin: str = "deployed") -> Callable[[], object]:
        """``spin``: the threads spin between ops and between calls (ONNX Runtime's default,
        as deployed), only within a call (they stop when it returns, so a session timed in
        turn with another does not fight it for the cores), or never."""
        ort = require("onnxruntime", "the onnxruntime backend", "onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        if spin == "within_run":
            opts.add_session_config_entry("session.force_spinning_stop", "1")
        elif spin == "off":
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        elif spin != "deployed":
            raise ValueError(f"spin must be one of {self.SPIN}, not {spin!r}")
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        providers = ["CUDAExecutionProvider"] if self.device == "cuda" else ["CPUExecutionProvider"]
        session = ort.InferenceSession(model_bytes, opts, providers=providers)
        feed = {session.get_inputs()[0].name: self._input(shape)}
        return lambda: session.run(None, feed)[0]

    def prepare_file(self, path: str, paired: bool = False) -> Callable[[], object]:
        if not str(path).endswith(".onnx"):
            raise StaircaseError(f"{path}: ONNX Runtime runs .onnx files; an OpenVINO IR needs --backend openvino")
        ort = require("onnxruntime", "the onnxruntime backend", "onnx")
        try:
            with open(path, "rb") as f:
                data = f.read()
            dims = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).get_inputs()[0].shape
        except OSError as exc:
            raise StaircaseError(f"cannot read {path}: {exc.strerror}") from None
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own kinds for a bad file
            raise StaircaseError(f"{path} is not a model ONNX Runtime can load ({str(exc).splitlines()[0][:160]})") \
                from None
        shape = tuple(d if isinstance(d, int) and d > 0 else self.batch for d in dims)
        return self._session(data, shape, spin="within_run" if paired else "deployed")

    def prepare_op(self, op: OpSpec, width: int) -> Callable[[], object]:
        from .onnx_graph import op_model

        model, shape = op_model(op, width, self.batch)
        data = _at_precision(model.SerializeToString(), shape, self.precision)
        # An op is timed block by block against its full width (another session). Threads
        # that spin after a run would fight the other session's threads for the cores:
        # with spinning the ratio of the two scattered 0.73 (IQR/median) on 2 cores, without
        # it 0.03. Spinning saves a constant wake-up per call, which the whole network
        # (timed with it) keeps and the width differences do not see.
        return self._session(data, shape, spin="off")

    def prepare_model(self, model: nn.Module, input_size: tuple[int, ...], paired: bool = False
                      ) -> Callable[[], object]:
        from .onnx_graph import export_model

        # Paired, the threads still spin within a call, as a deployed session runs each call.
        # bench_profiler.py part 3 checks the paired ratio against an in-turn one with
        # spinning threads ("deployed / paired"): 0.97-1.05 in the median over 30 students,
        # with spinning turned off altogether or within a call alike, on 2 cores; the in-turn
        # ruler's own scatter (12-22% per student) does not tell the two settings apart
        shape = (self.batch, *input_size)
        data = _at_precision(export_model(model, input_size, self.batch), shape, self.precision)
        return self._session(data, shape, spin="within_run" if paired else "deployed")


class OpenVinoBackend(Backend):
    """OpenVINO on any device the installed runtime offers (CPU, GPU, NPU; MYRIAD on 2021.x).

    The inference precision is always set (this runtime defaults to bf16 on CPUs with AMX)
    and recorded, as are the threads and the latency performance hint. At ``int8`` ops and
    networks are quantised to QDQ (read as FakeQuantize: OpenVINO's INT8 path) and the
    layers left in float run at f32.
    """

    name = "openvino"
    precisions = ("f32", "bf16", "f16", "int8")

    @classmethod
    def available_devices(cls) -> list[str]:
        ov = require("openvino", "the openvino backend", "openvino")
        return ov.Core().available_devices

    def version(self) -> str:
        return require("openvino", "the openvino backend", "openvino").__version__

    def device_name(self) -> str:
        ov = require("openvino", "the openvino backend", "openvino")
        try:
            return str(ov.Core().get_property(self.device, "FULL_DEVICE_NAME"))
        except Exception:  # noqa: BLE001 - a device without the property
            return self.device

    def _compile(self, onnx_bytes: bytes, shape) -> Callable[[], object]:
        ov = require("openvino", "the openvino backend", "openvino")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.onnx")
            with open(path, "wb") as f:
                f.write(onnx_bytes)
            return self._compiled(ov.Core().read_model(path), shape)

    def prepare_file(self, path: str, paired: bool = False) -> Callable[[], object]:
        ov = require("openvino", "the openvino backend", "openvino")
        try:
            model = ov.Core().read_model(str(path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for missing and bad files alike
            raise StaircaseError(f"{path} is not a model OpenVINO can read ({str(exc).splitlines()[0][:160]})") \
                from None
        dims = model.inputs[0].get_partial_shape()
        shape = tuple(d.get_length() if d.is_static else self.batch for d in dims)
        return self._compiled(model, shape)

    def _compiled(self, model, shape) -> Callable[[], object]:
        ov = require("openvino", "the openvino backend", "openvino")
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32" if self.precision == "int8" else self.precision,
                  "PERFORMANCE_HINT": "LATENCY"}
        if self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        compiled = core.compile_model(model, self.device, config)
        request = compiled.create_infer_request()
        x = self._input(shape)

        def run():
            request.infer({0: x})
            return request.get_output_tensor(0).data

        run.compiled = compiled  # for inspection: the precision and threads it really runs with
        return run

    def prepare_op(self, op: OpSpec, width: int) -> Callable[[], object]:
        from .onnx_graph import op_model

        model, shape = op_model(op, width, self.batch)
        return self._compile(_at_precision(model.SerializeToString(), shape, self.precision), shape)

    def prepare_model(self, model: nn.Module, input_size: tuple[int, ...], paired: bool = False
                      ) -> Callable[[], object]:
        from .onnx_graph import export_model

        # paired or not alike, as its ops are timed beside their full width
        shape = (self.batch, *input_size)
        return self._compile(_at_precision(export_model(model, input_size, self.batch), shape, self.precision), shape)


def _at_precision(data: bytes, shape, precision: str) -> bytes:
    """An ONNX graph (an op or a whole network, input ``shape`` with its batch) as this
    precision runs it: quantised to QDQ at int8, as it is otherwise."""
    if precision != "int8":
        return data
    from ..quantize import quantize_onnx_bytes

    return quantize_onnx_bytes(data, shape[1:], batch=shape[0])


BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (TorchBackend, OnnxRuntimeBackend, OpenVinoBackend)}


@dataclass(kw_only=True)
class BackendSettings:
    """Where a job times networks (the settings of jobs that run a backend extend this)."""

    backend: str = option("onnxruntime", choices=tuple(BACKENDS), help="the runtime networks are timed on")
    backend_device: str | None = option(None, help="the backend's device (default: cpu; CPU for openvino)")
    threads: int | None = option(None, help="threads (default: all cores)")
    batch: int = option(1, help="batch size")
    precision: str = option("f32", choices=("f32", "bf16", "f16", "int8"),
                            help="precision, where the backend runs it (int8: onnxruntime and openvino, ops "
                                 "quantised to QDQ)")

    def make_backend(self) -> Backend:
        return get_backend(self.backend, self.backend_device, self.threads, self.batch, self.precision)


def get_backend(name: str, device: str | None = None, threads: int | None = None, batch: int = 1,
                precision: str = "f32") -> Backend:
    """A backend by name; unknown names and devices list what is available."""
    if name not in BACKENDS:
        raise StaircaseError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    cls = BACKENDS[name]
    if device is None:
        device = "CPU" if name == "openvino" else "cpu"
    return cls(device=device, threads=threads, batch=batch, precision=precision)


def backend_of(profile) -> Backend:
    """The backend a profile (a :class:`~staircase.profile.store.Profile`) was measured with, set up the same way."""
    fp = profile.fingerprint
    return get_backend(fp["backend"], fp.get("device"), threads=fp.get("threads"), batch=fp.get("batch", 1),
                       precision=fp.get("precision", "f32"))
