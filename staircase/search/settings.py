"""What a schedule search is asked to do (``staircase search``'s flags, as one object)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..profile.backends import BACKENDS
from ..profile.timing import TIMINGS
from ..settings import option
from ..train.data import DATA_HELP
from .schedule import Schedule

__all__ = ["DEFAULT_BOUNDS", "SearchSettings"]

DEFAULT_BOUNDS = (0.0, 0.9)


@dataclass(kw_only=True)
class SearchSettings:
    schedule: str = option(positional=True, metavar="SCHEDULE",
                           help="a Distiller-style YAML schedule, or a shipped one's name (resnet56_cifar10)")
    checkpoint: str = option(help="the trained, unpruned network (`staircase train`)")
    data: str = option(help=DATA_HELP)
    out: str = option("runs/search", help="folder for the study, trials and front")
    trials: int = option(20, help="finished trials the study should hold")
    backend: str = option("onnxruntime", choices=tuple(BACKENDS),
                          help="where latency is measured")
    backend_device: str | None = option(None, help="the backend's device (e.g. CPU, GPU for OpenVINO)")
    threads: int | None = option(None, help="CPU threads (shared out among --workers)")
    timing: str = option("standard", choices=tuple(TIMINGS),
                         help="how long each latency measurement takes")
    epochs: int | None = option(None, help="retraining epochs (default: the schedule's)")
    lr: float | None = option(None, help="retraining learning rate (default: the schedule's)")
    batch_size: int | None = option(None, help="retraining batch size (default: the schedule's)")
    train_images: int | None = option(None, help="retrain on this many images only")
    train_device: str = option("auto", help="where trials retrain: auto, cpu, cuda")
    storage: str | None = option(None, help="Optuna storage URL (default: sqlite in --out)")
    study_name: str = option("staircase-search", help="the study's name in the storage")
    workers: int = option(1, help="trials at once, each in its own process")
    ray_address: str | None = option(None, flag="--ray", metavar="ADDRESS",
                                     help="run trials as Ray tasks on this cluster (auto, ray://host:10001, or local)")
    profile: str | None = option(None, help="snap each trial's widths to this profile's optimal widths")
    snap: str = option("up", choices=("nearest", "up", "down"), help="which optimal width a trial's width goes to")
    early_stop: bool = option(True, no_flag="--no-early-stop", help="retrain every trial for all its epochs")
    margin: float = option(1.0, help="stop a trial when a faster finished trial led by this many top-1 points at the "
                                     "same epoch")
    min_epochs: int = 1  # epochs every trial trains before it may be stopped
    seed: int = option(0, help="seed")
    progress: bool = False

    def retrain(self, schedule: Schedule) -> dict[str, Any]:
        r = {"epochs": 10, "lr": 0.01, "batch_size": 128, "schedule": "cosine", "momentum": 0.9,
             "weight_decay": 5e-4, **schedule.retrain}
        for key in ("epochs", "lr", "batch_size"):
            if getattr(self, key) is not None:
                r[key] = getattr(self, key)
        return r
