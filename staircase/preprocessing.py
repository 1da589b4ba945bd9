"""How a network wants its images: the channel mean and standard deviation it was trained
with, and, for image files, its evaluation crop and resize filter. timm models declare it
(``pretrained_cfg``): the architecture records it when the model is built, so checkpoints,
imports and the students' specs carry it, and every command that reads data for the
network normalises the way its weights expect. Networks that declare nothing take the
dataset's own statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .errors import SpecError

__all__ = ["Preprocessing"]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class Preprocessing:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 0.875  # evaluation: resize to size / crop_pct, then the centre crop
    interpolation: str = "bilinear"
    timm: bool = False  # image files go through timm's own transforms (timm.data.create_transform)

    @classmethod
    def of_model(cls, model: nn.Module) -> Preprocessing | None:
        """What a timm model's ``pretrained_cfg`` declares, else None."""
        cfg = getattr(model, "pretrained_cfg", None)
        if not isinstance(cfg, dict) or not cfg.get("mean") or not cfg.get("std"):
            return None
        interpolation = cfg.get("interpolation") if cfg.get("interpolation") in _INTERPOLATIONS else "bilinear"
        return cls(tuple(float(x) for x in cfg["mean"]), tuple(float(x) for x in cfg["std"]),
                   float(cfg.get("crop_pct") or 0.875), interpolation, timm=True)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "crop_pct": self.crop_pct,
                "interpolation": self.interpolation, "timm": self.timm}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Preprocessing:
        try:
            mean, std = tuple(float(x) for x in d["mean"]), tuple(float(x) for x in d["std"])
            crop, interpolation = float(d.get("crop_pct", 0.875)), str(d.get("interpolation", "bilinear"))
        except (TypeError, KeyError, ValueError):
            raise SpecError(f"{where}: 'preprocessing' must hold lists 'mean' and 'std' (and a number 'crop_pct')") \
                from None
        if not mean or len(mean) != len(std) or min(std) <= 0 or not 0 < crop <= 1 \
                or interpolation not in _INTERPOLATIONS:
            raise SpecError(f"{where}: 'preprocessing' {d!r} is not usable: mean and std of one length, std > 0, "
                            f"0 < crop_pct <= 1, interpolation one of {', '.join(_INTERPOLATIONS)}")
        return cls(mean, std, crop, interpolation, bool(d.get("timm", False)))
