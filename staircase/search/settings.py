"""What a schedule search is asked to do (``staircase search``'s flags, as one object)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schedule import Schedule

__all__ = ["DEFAULT_BOUNDS", "SearchSettings"]

DEFAULT_BOUNDS = (0.0, 0.9)


@dataclass
class SearchSettings:
    schedule: str  # a schedule file, or the name of a shipped one
    checkpoint: str  # the trained, unpruned network (a staircase checkpoint)
    data: str
    out: str = "runs/search"
    trials: int = 20
    backend: str = "onnxruntime"
    backend_device: str | None = None
    threads: int | None = None
    timing: str = "standard"  # a --timing preset for the whole-network measurements
    epochs: int | None = None  # default: the schedule's retrain settings
    lr: float | None = None
    batch_size: int | None = None
    train_images: int | None = None
    train_device: str = "auto"
    storage: str | None = None  # default sqlite:///OUT/study.db
    study_name: str = "staircase-search"
    workers: int = 1
    ray_address: str | None = None
    profile: str | None = None  # snap each trial's widths to this profile's optimal widths
    snap: str = "up"
    early_stop: bool = True
    margin: float = 1.0  # top-1 points behind a faster trial at the same epoch that stop a trial
    min_epochs: int = 1  # epochs every trial trains before it may be stopped
    seed: int = 0
    progress: bool = False

    def retrain(self, schedule: Schedule) -> dict[str, Any]:
        r = {"epochs": 10, "lr": 0.01, "batch_size": 128, "schedule": "cosine", "momentum": 0.9,
             "weight_decay": 5e-4, **schedule.retrain}
        for key in ("epochs", "lr", "batch_size"):
            if getattr(self, key) is not None:
                r[key] = getattr(self, key)
        return r
