"""Training students: data, attention points, losses (AT, KD), the trainer, checkpoints,
evaluation and export.

Public names are loaded when first used (torch and the data libraries are heavy)."""

from __future__ import annotations

from importlib import import_module

_PUBLIC = {
    "DataBundle": "data", "load_data": "data",
    "at_loss": "losses", "attention_map": "losses", "kd_loss": "losses",
    "TrainConfig": "trainer", "TrainResult": "trainer", "train": "trainer", "train_or_reuse": "trainer",
    "ImportSettings": "weights", "import_weights": "weights",
    "load_weights": "checkpoint", "model_from_checkpoint": "checkpoint",
    "Exported": "export", "export_onnx": "export", "export_openvino": "export",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
