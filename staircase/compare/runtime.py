"""A deployable network file run as its runtime runs it: accuracy on a dataset, size on
disk, and the memory it takes to run.

Files: ``.onnx`` (ONNX Runtime, or OpenVINO reading ONNX), ``.xml`` with its ``.bin``
(OpenVINO IR), or a staircase checkpoint ``.pt`` (torch). The peak memory is measured in a
fresh process (``python -m staircase.compare.runtime``): the resident memory that loading
the file and running it adds to a process that has already imported the runtime, i.e. the
weights, the runtime's packed copies of them and its activation buffers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import StaircaseError, require

__all__ = ["compressed_bytes", "evaluate_file", "file_bytes", "file_runner", "file_zero_share", "peak_memory"]


def file_runner(backend: str, path: str | Path, precision: str = "f32", threads: int | None = None
                ) -> Callable[[np.ndarray], np.ndarray]:
    """A call from a float32 batch to the network's outputs, run by ``backend``."""
    path = str(path)
    threads = int(threads or os.cpu_count() or 1)
    if backend == "onnxruntime":
        ort = require("onnxruntime", "the onnxruntime backend", "onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    if backend == "openvino":
        ov = require("openvino", "the openvino backend", "openvino")
        config = {"INFERENCE_PRECISION_HINT": "f32" if precision == "int8" else precision,
                  "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads)}
        compiled = ov.Core().compile_model(path, "CPU", config)
        return lambda x: compiled({0: x})[compiled.output(0)]
    if backend == "torch":
        import torch

        from ..train.checkpoint import model_from_checkpoint

        torch.set_num_threads(threads)
        dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[precision]
        model = model_from_checkpoint(path)[0].eval().to(dtype)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x).to(dtype)).float().numpy()

        return run
    raise StaircaseError(f"unknown backend {backend!r}; use onnxruntime, openvino or torch")


def evaluate_file(run: Callable[[np.ndarray], np.ndarray], dataset, batch: int = 64) -> dict[str, float]:
    """Top-1 (%) and the images counted, of ``run`` over ``dataset`` (images and labels)."""
    correct = seen = 0
    for start in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        x = np.stack([np.asarray(img, dtype=np.float32) for img, _ in items])
        labels = np.array([int(label) for _, label in items])
        correct += int((np.asarray(run(x)).argmax(axis=1) == labels).sum())
        seen += len(items)
    return {"top1": 100.0 * correct / seen if seen else float("nan"), "images": seen}


def _parts(path: str | Path) -> list[Path]:
    path = Path(path)
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def file_bytes(path: str | Path) -> int:
    """The network's size on disk (an IR's .xml and .bin together)."""
    return sum(p.stat().st_size for p in _parts(path))


def compressed_bytes(path: str | Path) -> int:
    """Its size gzip-compressed: where zeros (weight pruning) save storage though not time."""
    return sum(len(gzip.compress(p.read_bytes(), compresslevel=6)) for p in _parts(path))


def peak_memory(backend: str, path: str | Path, input_size, precision: str = "f32", threads: int | None = None,
                runs: int = 20) -> dict[str, int]:
    """``{"peak_memory_bytes", "peak_rss_bytes"}``: what loading and running the file adds
    to the resident memory of a fresh process with the runtime imported, and that process's
    whole peak."""
    cmd = [sys.executable, "-m", "staircase.compare.runtime", backend, str(path), "--input-size",
           ",".join(map(str, input_size)), "--precision", precision, "--threads", str(threads or 0),
           "--runs", str(runs)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise StaircaseError(f"measuring the memory of {path} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def file_zero_share(path: Path) -> float | None:
    """The share of zeros among an ONNX file's weight tensors of rank > 1 (the pruned ones):
    what the runtime is given."""
    if path.suffix != ".onnx":
        return None
    import onnx
    from onnx import numpy_helper

    arrays = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer if len(t.dims) > 1]
    total = sum(a.size for a in arrays)
    return float(sum(int((a == 0).sum()) for a in arrays) / total) if total else None


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_kb() -> int:
    import resource

    return _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure_here(args: argparse.Namespace) -> dict[str, int]:
    """Runs in the fresh process: import the runtime, reset the peak, load, run, read the peak."""
    {"onnxruntime": lambda: require("onnxruntime", "", "onnx"), "openvino": lambda: require("openvino", "", "openvino"),
     "torch": lambda: __import__("torch")}[args.backend]()
    x = np.random.default_rng(0).standard_normal((1, *map(int, args.input_size.split(","))), dtype=np.float32)
    base = _status_kb("VmRSS") or _peak_kb()
    try:  # Linux: reset the peak to the current resident size, so imports do not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    run = file_runner(args.backend, args.path, args.precision, args.threads or None)
    for _ in range(args.runs):
        run(x)
    peak = _peak_kb()
    return {"peak_memory_bytes": max(peak - base, 0) * 1024, "peak_rss_bytes": peak * 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="peak memory of running one network file (used by staircase compare)")
    ap.add_argument("backend")
    ap.add_argument("path")
    ap.add_argument("--input-size", required=True)
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--runs", type=int, default=20)
    print(json.dumps(_measure_here(ap.parse_args(argv))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
