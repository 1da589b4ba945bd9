"""Exporting a trained network for deployment: ONNX (checked against torch with ONNX
Runtime) and OpenVINO IR (converted with the openvino package, checked the same way on its
CPU plugin at f32)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import StaircaseError, require
from ..files import atomic_write

__all__ = ["F16_TOLERANCE", "F32_TOLERANCE", "FORMATS", "Exported", "OutputCheck", "export_onnx", "export_openvino",
           "output_verdict"]

FORMATS = ("onnx", "openvino")


@dataclass(frozen=True)
class OutputCheck:
    """The export run by its runtime against torch on one random batch: the largest
    difference, the output's scale, and whether the difference is within the tolerance
    (a share of that scale, given here in output units)."""

    checked_with: str
    max_abs_diff: float
    output_scale: float
    tolerance: float
    within_tolerance: bool


@dataclass(frozen=True)
class Exported:
    format: str
    path: str
    size_bytes: int  # the file (ONNX) or the weights (OpenVINO's .bin)
    weights: str | None = None  # OpenVINO: the .bin beside the .xml
    f16_weights: bool = False
    check: OutputCheck | None = None  # None when not checked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reference(model: nn.Module, input_size, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(seed))
    was = model.training
    model.eval()
    with torch.no_grad():
        y = model(x)
    model.train(was)
    return x.numpy(), y.numpy()


def export_onnx(model: nn.Module, input_size, path: str | Path, check: bool = True, batch: int = 2) -> Exported:
    """Write ``model`` as ONNX (opset 17, dynamic batch, input ``x``, output ``y``) to ``path``.
    With ``check``, run it in ONNX Runtime on a random batch and report the largest absolute
    difference from torch's outputs."""
    from ..profile.onnx_graph import export_model

    data = export_model(model, tuple(input_size), batch, dynamic_batch=True)
    path = atomic_write(path, lambda f: f.write(data))
    verdict = None
    if check:
        ort = require("onnxruntime", "checking the ONNX export", "onnx")
        x, y = _reference(model, input_size, batch)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": x})[0]
        verdict = output_verdict(got, y, F32_TOLERANCE, f"onnxruntime {ort.__version__}")
    return Exported("onnx", str(path), len(data), check=verdict)


def export_openvino(model: nn.Module, input_size, path: str | Path, check: bool = True, batch: int = 2,
                    half: bool = False) -> Exported:
    """Write OpenVINO IR (``path`` = the .xml; the weights go beside it as .bin). The model is
    converted from its ONNX export; ``half`` compresses the weights to f16. With ``check``, the
    IR runs on OpenVINO's CPU plugin at f32 inference precision against torch's outputs."""
    from ..profile.onnx_graph import export_model

    ov = require("openvino", "exporting to OpenVINO", "openvino")
    path = Path(path)
    if path.suffix != ".xml":
        raise StaircaseError(f"OpenVINO IR is an .xml file (with a .bin beside it); got --out {path}")
    import tempfile

    onnx_bytes = export_model(model, tuple(input_size), batch, dynamic_batch=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        onnx_path.write_bytes(onnx_bytes)
        converted = ov.convert_model(str(onnx_path))
        # write into a temporary folder, then move both files: never a half-written pair
        staged = Path(tmp) / path.name
        ov.save_model(converted, str(staged), compress_to_fp16=half)
        path.parent.mkdir(parents=True, exist_ok=True)
        bin_path = path.with_suffix(".bin")
        atomic_write(bin_path, lambda f: f.write(staged.with_suffix(".bin").read_bytes()))
        atomic_write(path, lambda f: f.write(staged.read_bytes()))
    verdict = None
    if check:
        x, y = _reference(model, input_size, batch)
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        got = compiled({0: x})[compiled.output(0)]
        verdict = output_verdict(got, y, F16_TOLERANCE if half else F32_TOLERANCE, f"openvino {ov.__version__} CPU f32")
    return Exported("openvino", str(path), bin_path.stat().st_size, str(bin_path), half, verdict)


# The largest |export - torch| accepted, as a share of the largest |output|: f32 kernels
# that fuse or reorder sums differ from torch by ~1e-6 of the output's scale; f16 weights
# keep about three significant digits.
F32_TOLERANCE = 1e-4
F16_TOLERANCE = 1e-2


def output_verdict(got: np.ndarray, want: np.ndarray, tolerance: float, checked_with: str = "") -> OutputCheck:
    """The check's figures: the largest difference, the output's scale, and whether the
    difference is within ``tolerance`` of that scale."""
    diff, scale = float(np.abs(got - want).max()), max(float(np.abs(want).max()), 1.0)
    return OutputCheck(checked_with, diff, scale, tolerance * scale, diff <= tolerance * scale)
