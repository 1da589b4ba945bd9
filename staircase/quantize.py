"""Post-training INT8 quantisation of an exported network, calibrated on training images.

- ONNX Runtime: static quantisation to QDQ (``onnxruntime.quantization.quantize_static``):
  weights int8 per output channel, activations uint8 per tensor, MinMax calibration, after
  ONNX Runtime's own pre-processing (shape inference, BatchNorm folded into convolutions).
  On an x86 CPU without VNNI the u8 x s8 kernels can saturate their 16-bit intermediate
  sums, so there the weights use 7 bits (``reduce_range``), as ONNX Runtime advises.
- OpenVINO: NNCF's post-training quantisation of the IR (``nncf.quantize``, the performance
  preset: symmetric weights and activations, fast bias correction).

Which precisions a backend offers on this device is :func:`precisions_here`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import StaircaseError, require
from .files import atomic_write

__all__ = ["INT8_BACKENDS", "INT8_SETTINGS", "NNCF_SETTINGS", "ORT_SETTINGS", "calibration_batches", "cpu_flags", "precisions_here", "quantize_onnxruntime",
           "quantize_onnx_bytes", "quantize_openvino", "random_batches", "vnni"]

INT8_BACKENDS = ("onnxruntime", "openvino")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is not there)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def vnni() -> bool:
    """Whether the CPU has 8-bit dot-product instructions (VNNI or AMX)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def precisions_here(backend: str, device: str = "cpu") -> list[str]:
    """The precisions ``backend`` runs fast on this device, beyond f32: ``int8`` (ONNX
    Runtime and OpenVINO quantise), ``bf16``/``f16`` where the device computes in them
    (OpenVINO says so in its capabilities; torch on a CPU with bf16 instructions or a GPU).
    ONNX Runtime's CPU provider has no f16 convolutions worth timing, so it offers none."""
    if backend == "onnxruntime":
        return ["int8"]
    if backend == "openvino":
        ov = require("openvino", "the openvino backend", "openvino")
        caps = set(ov.Core().get_property(device.upper() if device.lower() == "cpu" else device,
                                          "OPTIMIZATION_CAPABILITIES"))
        return ["int8"] + [p for p, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap in caps]
    if backend == "torch":
        if device.startswith("cuda"):
            return ["f16", "bf16"]
        return ["bf16"] if cpu_flags() & {"avx512_bf16", "amx_bf16"} else []
    raise StaircaseError(f"unknown backend {backend!r}")


def calibration_batches(dataset, images: int, batch: int = 32, seed: int = 0) -> list[np.ndarray]:
    """``images`` images of ``dataset`` (a seeded draw, without augmentation), as float32
    batches of one size (the largest divisor of ``images`` up to ``batch``: ONNX Runtime's
    histogram calibrators stack the batches): what the quantiser's ranges are measured on."""
    import torch

    if images < 1:
        raise StaircaseError(f"--calibration-images {images} must be at least 1")
    images = min(images, len(dataset))
    batch = max(d for d in range(1, min(batch, images) + 1) if images % d == 0)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:images]
    plain = dataset.subset(order, augment=False) if hasattr(dataset, "subset") else [dataset[int(i)] for i in order]
    xs = np.stack([np.asarray(plain[i][0], dtype=np.float32) for i in range(len(plain))])
    return [xs[i:i + batch] for i in range(0, len(xs), batch)]


def random_batches(input_size: Sequence[int], count: int = 4, batch: int = 1) -> list[np.ndarray]:
    """Standard-normal batches: calibration for a network that is only timed (its ranges do
    not change which kernels run)."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal((batch, *input_size), dtype=np.float32) for _ in range(count)]


def _check_batches(batches: list[np.ndarray], input_shape: Sequence, what: str) -> None:
    """One clear line when the calibration images do not fit the network's input."""
    want = [d if isinstance(d, int) and d > 0 else None for d in input_shape][1:]
    got = list(batches[0].shape[1:]) if batches else []
    if not batches or len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got, strict=True)):
        raise StaircaseError(f"the calibration images are {'x'.join(map(str, got)) or 'missing'} but {what} takes "
                             f"{'x'.join(str(w or '?') for w in want)} inputs; calibrate on the data the network "
                             "was trained on")


@contextlib.contextmanager
def _quiet():
    """The quantisers print progress and log a warning per unquantised tensor: hidden, so a
    comparison's log says what was done rather than how."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


class _Reader:
    """ONNX Runtime's calibration data reader over a list of batches."""

    def __init__(self, name: str, batches: list[np.ndarray]):
        self.name, self.batches = name, batches
        self.rewind()

    def rewind(self) -> None:
        self._it: Iterator[np.ndarray] = iter(self.batches)

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {self.name: x}


ORT_SETTINGS = ("minmax", "per-tensor", "entropy", "first-last-float")
NNCF_SETTINGS = ("performance", "mixed", "full-bias-correction", "first-last-float")
# the quantiser's choices an "int8" point of a comparison tries (the first is the default):
# how much accuracy each costs, and whether any runs faster
INT8_SETTINGS = {"onnxruntime": ORT_SETTINGS, "openvino": NNCF_SETTINGS}


def quantize_onnxruntime(onnx_path: str | Path, out: str | Path, batches: list[np.ndarray],
                         setting: str = "minmax", reduce_range: bool | None = None) -> dict:
    """``onnx_path`` quantised to INT8 QDQ at ``out`` (written atomically); what was done.

    ``setting``: ``minmax`` (weights per channel, MinMax ranges), ``per-tensor`` (one scale
    per weight tensor), ``entropy`` (ranges that minimise the KL divergence of each
    activation's histogram), ``first-last-float`` (minmax, the first convolution and the
    classifier left in float)."""
    ort = require("onnxruntime", "INT8 quantisation with ONNX Runtime", "onnx")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if setting not in ORT_SETTINGS:
        raise StaircaseError(f"INT8 setting {setting!r} is not one of {', '.join(ORT_SETTINGS)} for onnxruntime")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    _check_batches(batches, inp.shape, str(onnx_path))
    reduce_range = not vnni() if reduce_range is None else reduce_range
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        exclude = _first_and_last(prepared) if setting == "first-last-float" else []
        with _quiet():
            quantize_static(str(prepared), str(quantized), _Reader(inp.name, batches), quant_format=QuantFormat.QDQ,
                            per_channel=setting != "per-tensor", reduce_range=reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Entropy if setting == "entropy"
                            else CalibrationMethod.MinMax, nodes_to_exclude=exclude)
        atomic_write(out, lambda f: f.write(quantized.read_bytes()))
    return {"quantizer": f"onnxruntime {ort.__version__} quantize_static", "format": "QDQ",
            "weights": f"int8 per {'tensor' if setting == 'per-tensor' else 'channel'}"
                       + (" (7-bit range: no VNNI)" if reduce_range else ""),
            "activations": "uint8 per tensor", "calibration": "Entropy" if setting == "entropy" else "MinMax",
            "float_nodes": exclude, "calibration_images": int(sum(len(b) for b in batches))}


def quantize_onnx_bytes(data: bytes, input_size: Sequence[int], batch: int = 1) -> bytes:
    """An ONNX network (bytes) quantised to INT8 QDQ as ``quantize_onnxruntime``'s default
    does, calibrated on random inputs: for timing, where the ranges do not change which
    kernels run. ONNX Runtime fuses each DQ -> Conv -> Q into an INT8 convolution; OpenVINO
    reads the same graph as FakeQuantize and runs its INT8 kernels."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        quantize_onnxruntime(src, dst, random_batches(input_size, batch=batch))
        return dst.read_bytes()


def _first_and_last(onnx_path: Path) -> list[str]:
    """The names of the graph's first convolution and last Gemm/MatMul (the classifier)."""
    import onnx

    nodes = onnx.load(str(onnx_path)).graph.node
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    heads = [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")]
    return [*convs[:1], *heads[-1:]]


def quantize_openvino(onnx_path: str | Path, out_xml: str | Path, batches: list[np.ndarray],
                      setting: str = "performance") -> dict:
    """``onnx_path`` converted to OpenVINO IR and quantised to INT8 with NNCF, at ``out_xml``
    (and its .bin); what was done.

    ``setting``: NNCF's ``performance`` preset (symmetric weights and activations), its
    ``mixed`` preset (asymmetric activations), ``full-bias-correction`` (performance, with
    the slower, exact bias correction), ``first-last-float`` (performance, the first
    convolution and the classifier left in float)."""
    ov = require("openvino", "INT8 quantisation with OpenVINO", "openvino")
    nncf = require("nncf", "INT8 quantisation with OpenVINO (NNCF)", "openvino")
    if setting not in NNCF_SETTINGS:
        raise StaircaseError(f"INT8 setting {setting!r} is not one of {', '.join(NNCF_SETTINGS)} for openvino")
    out_xml = Path(out_xml)
    if out_xml.suffix != ".xml":
        raise StaircaseError(f"OpenVINO IR is an .xml file (with a .bin beside it); got {out_xml}")
    model = ov.convert_model(str(onnx_path))
    _check_batches(batches, [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()],
                   str(onnx_path))
    options: dict = {}
    if setting == "first-last-float":
        ops = model.get_ordered_ops()
        convs = [op.get_friendly_name() for op in ops if op.get_type_name() == "Convolution"]
        heads = [op.get_friendly_name() for op in ops if op.get_type_name() == "MatMul"]
        options["ignored_scope"] = nncf.IgnoredScope(names=[*convs[:1], *heads[-1:]])
    with _quiet():
        quantized = nncf.quantize(model, nncf.Dataset(batches),
                                  preset=nncf.QuantizationPreset.MIXED if setting == "mixed"
                                  else nncf.QuantizationPreset.PERFORMANCE,
                                  fast_bias_correction=setting != "full-bias-correction",
                                  subset_size=len(batches), **options)  # NNCF counts dataset items
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / out_xml.name
        ov.save_model(quantized, str(staged), compress_to_fp16=False)
        out_xml.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out_xml.with_suffix(".bin"), lambda f: f.write(staged.with_suffix(".bin").read_bytes()))
        atomic_write(out_xml, lambda f: f.write(staged.read_bytes()))
    return {"quantizer": f"nncf {nncf.__version__} quantize ({setting})", "format": "OpenVINO IR",
            "weights": "int8 per channel, symmetric",
            "activations": f"per tensor, {'asymmetric' if setting == 'mixed' else 'symmetric'}",
            "calibration": "NNCF statistics + " + ("full" if setting == "full-bias-correction" else "fast")
                           + " bias correction",
            "float_nodes": [str(n) for n in options["ignored_scope"].names] if options else [],
            "calibration_images": int(sum(len(b) for b in batches))}
