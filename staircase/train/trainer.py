"""Training a teacher, or a student with attention transfer and/or knowledge distillation.

One run = one directory::

    RUN/config.json      what was asked (a resume must ask the same)
    RUN/last.pt          after every epoch: weights, optimiser, scheduler, scaler, RNG states
    RUN/best.pt          the epoch with the best test (or validation) top-1
    RUN/metrics.jsonl    one line per epoch: loss terms, top-1/top-5, lr, images/s
    RUN/metrics.csv      the same as a table
    RUN/summary.json     written when the run ends
    RUN/tensorboard/     with ``tensorboard=True``

The loss is ``(1 - kd_alpha) * CE + kd_alpha * KD(T) + at_beta * AT`` (Zagoruyko &
Komodakis; Hinton), the teacher frozen in eval mode. Recipe defaults follow the AT
reference: SGD momentum 0.9, lr 0.1, weight decay 5e-4, batch 128, lr x0.2 at 30/60/80% of
the epochs (or cosine).

Resuming restores every RNG state saved at the end of the last finished epoch; the data
order and the augmentation draw from those generators, so in deterministic mode a run
killed and resumed ends with the same weights as one that was not. Under ``torchrun``
the same command trains with DistributedDataParallel (rank 0 writes the files).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..errors import StaircaseError, require
from ..files import atomic_write_json, atomic_write_text
from ..progress import progress_bar
from ..settings import option
from .attention import FeatureTaps, attention_points, check_pairing
from .batchnorm import REESTIMATE_BATCHES, reestimate_batchnorm
from .checkpoint import load_weights, read_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import DATA_HELP, default_workers
from .evaluate import evaluate, topk_correct
from .losses import at_loss, kd_loss
from .sparsity import WeightMasks, check_sparsity, zero_share

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train", "train_or_reuse", "make_scheduler", "RESUME_FREE"]

# settings that may change between a run and its resume (they do not change the result)
RESUME_FREE = ("workers", "tensorboard", "progress", "eval_batch_size")


class TrainingDiverged(StaircaseError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def _points(text: str) -> list[str]:
    return text.split(",")


def _shape(text: str) -> list[int]:
    from ..modelref import parse_input_shape

    return list(parse_input_shape(text))


_DISTIL, _RECIPE, _HARDWARE = "distillation (student)", "recipe (defaults: the attention-transfer reference)", "hardware"


@dataclass(kw_only=True)
class TrainConfig:
    role: str = option("teacher", positional=True, choices=("teacher", "student"), help="what is trained")
    model: str = option(positional=True, metavar="MODEL_OR_SPEC",
                        help="teacher: zoo name or package.module:factory; student: a student spec (or any model)")
    data: str = option(help=DATA_HELP)
    out: str | None = option(None, help="run directory (default: runs/<role>-<model>)", show_default=False)
    teacher: str | None = option(None, metavar="CKPT", group=_DISTIL, help="the teacher's checkpoint")
    # attention transfer's weight; None: 1e3 with a teacher (the AT reference), else 0
    at_beta: float | None = option(None, group=_DISTIL,
                                   help="attention-transfer weight (default 1e3 with --teacher, as the reference)")
    kd_alpha: float = option(0.0, group=_DISTIL, help="knowledge-distillation weight (0 = off)")
    kd_T: float = option(4.0, flag="--kd-T", group=_DISTIL, help="distillation temperature")
    student_points: list[str] | None = option(None, parse=_points, metavar="A,B,..", group=_DISTIL,
                                              help="attention points by module path")
    teacher_points: list[str] | None = option(None, parse=_points, metavar="A,B,..", group=_DISTIL,
                                              help="the teacher's, paired in order")
    allow_other_teacher: bool = option(False, group=_DISTIL,
                                       help="distil from a teacher other than the one the spec was designed from")
    init: str | None = option(None, metavar="CKPT", group=_DISTIL,
                              help="start from these weights instead of at random (fine-tuning, e.g. a pruned "
                                   "network)")
    bn_reestimate: bool = option(True, no_flag="--keep-bn-statistics", group=_DISTIL,
                                 help="with --init: keep the BatchNorm statistics of the weights as they are "
                                      "(default: measure them again over 8 training batches first, as inherited "
                                      "and pruned weights carry another network's)")
    # unstructured weight pruning: this share of the init weights (smallest magnitudes, ranked
    # globally) set to zero and held at zero while training
    sparsity: float = option(0.0, metavar="S", group=_DISTIL,
                             help="with --init: set this share of the weights (the smallest magnitudes, ranked over "
                                  "every convolution and linear layer) to zero and hold them there")
    epochs: int = option(200, group=_RECIPE, help="epochs")
    batch_size: int = option(128, group=_RECIPE, help="batch size")
    lr: float = option(0.1, group=_RECIPE, help="learning rate")
    momentum: float = option(0.9, group=_RECIPE, help="SGD momentum")
    weight_decay: float = option(5e-4, group=_RECIPE, help="weight decay")
    schedule: str = option("step", choices=("step", "cosine"), group=_RECIPE,
                           help="step: lr x0.2 at 30/60/80%% of the epochs; cosine: cosine annealing to 0")
    milestones: list[float] = field(default_factory=lambda: [0.3, 0.6, 0.8])  # of the epochs, for "step"
    # epochs at lr/10 before the schedule starts (He et al.'s recipe for their deepest CIFAR
    # ResNets, which do not start to learn at lr 0.1 from scratch)
    warmup_epochs: int = option(0, group=_RECIPE, help="epochs at lr/10 before the schedule (deep ResNets from "
                                                       "scratch)")
    gamma: float = 0.2
    train_images: int | None = option(None, group=_RECIPE, help="train on this many images only (the first of a "
                                                                "seeded shuffle)")
    val_split: float = option(0.0, group=_RECIPE, help="hold out this share of train as the test set (a validation "
                                                       "split)")
    split_seed: int = option(0, group=_RECIPE, help="which images are held out (--val-split, and digits' test set): "
                                                    "the same for every run that is compared")
    seed: int = option(0, group=_RECIPE, help="seed of the weights, the batches and the augmentation")
    deterministic: bool = option(False, group=_RECIPE,
                                 help="deterministic algorithms: a killed and resumed run ends with the same weights")
    device: str = option("auto", flag="--train-device", group=_HARDWARE,
                         help="where it trains: auto, cpu, cuda or cuda:N (torchrun: one GPU per process)")
    threads: int | None = option(None, group=_HARDWARE, help="CPU threads (default: torch's)")
    workers: int | None = option(None, group=_HARDWARE,
                                 help="data-loading processes (default: 2 for image folders, decoded as they are "
                                      "read; none for data held in memory)")
    amp: bool | None = option(None, group=_HARDWARE, help="mixed precision (default: on for CUDA)")
    channels_last: bool | None = option(None, group=_HARDWARE,
                                        help="channels-last memory format (default: on for CUDA)")
    tensorboard: bool = option(False, group=_HARDWARE, help="also log to RUN/tensorboard")
    progress: bool = option(True, no_flag="--no-progress", group=_HARDWARE, help="no progress bars")
    num_classes: int | None = option(None, help="classifier outputs (default: the data's)")
    input_shape: list[int] | None = option(None, parse=_shape, metavar="C,H,W",
                                           help="input size for models without one")
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.at_beta is None:
            self.at_beta = 1e3 if self.teacher else 0.0
        if self.out is None:
            stem = Path(self.model).stem if self.model.endswith(".json") else \
                self.model.replace(":", "-").replace(".", "_")
            self.out = f"runs/{self.role}-{stem}"

    @property
    def held_out(self) -> str:
        """What the per-epoch ``test_*`` metrics are measured on: the validation split when one
        is held out, else the test set."""
        return "validation" if self.val_split else "test"

    def check(self) -> None:
        if self.role not in ("teacher", "student"):
            raise StaircaseError(f"role {self.role!r} must be 'teacher' or 'student'")
        if self.role == "teacher" and (self.teacher or self.at_beta or self.kd_alpha):
            raise StaircaseError("a teacher trains on labels alone: --teacher, --at-beta and --kd-alpha are for "
                                 "`staircase train student`")
        if (self.at_beta or self.kd_alpha) and not self.teacher:
            raise StaircaseError("--at-beta / --kd-alpha need a teacher: pass --teacher CKPT")
        for name, value, ok in (("--epochs", self.epochs, self.epochs >= 1),
                                ("--batch-size", self.batch_size, self.batch_size >= 1),
                                ("--lr", self.lr, self.lr > 0),
                                ("--warmup-epochs", self.warmup_epochs, 0 <= self.warmup_epochs < self.epochs),
                                ("--at-beta", self.at_beta, self.at_beta >= 0),
                                ("--kd-alpha", self.kd_alpha, 0 <= self.kd_alpha <= 1),
                                ("--kd-T", self.kd_T, self.kd_T > 0),
                                ("--train-images", self.train_images, self.train_images is None or self.train_images > 0)):
            if not ok:
                raise StaircaseError(f"{name} {value} is out of range")
        if self.sparsity:
            check_sparsity(self.sparsity)
            if not self.init:
                raise StaircaseError("--sparsity prunes the smallest of the weights a run starts from: pass --init "
                                     "CKPT (a trained network to prune and fine-tune)")
        if self.schedule not in ("step", "cosine"):
            raise StaircaseError(f"--schedule {self.schedule!r} must be 'step' or 'cosine'")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainResult:
    """A finished training run (``RUN/summary.json``)."""

    run: str
    model: str
    role: str
    epochs: int
    final_top1: float
    final_top5: float | None
    best_top1: float
    params: int
    seconds_this_session: float
    data: str
    device: str
    threads: int
    world_size: int = 1
    zero_share: float | None = None  # with a sparsity: the share of weights at zero
    stopped_after: int | None = None  # an early-stopped run: its last epoch

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "final_top5"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class _Run:
    """Everything a run holds while it trains."""

    config: TrainConfig
    out: Path
    device: torch.device
    model: nn.Module
    arch: Any
    spec: Any
    teacher: nn.Module | None
    data: Any
    rank: int = 0
    world: int = 1
    points: tuple[list[str], list[str]] | None = None  # (student, teacher) attention points, checked to pair

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def workers(self) -> int:
        return default_workers(self.data.train) if self.config.workers is None else self.config.workers


EpochCallback = Callable[[int, dict[str, Any]], bool]


def train(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print,
          on_epoch: EpochCallback | None = None) -> TrainResult | None:
    """Train as ``config`` says; returns the summary (also written to RUN/summary.json; None
    in the processes of a distributed run other than the first).
    ``on_epoch(epoch, metrics)`` is called after each epoch; returning False stops the run
    there (early stopping: the summary says ``stopped_after``)."""
    config.check()
    rank, world = _init_distributed()
    if on_epoch is not None and world > 1:
        raise StaircaseError("early stopping (on_epoch) runs in one process; it is not supported under torchrun")
    try:
        return _train(config, resume, log if rank == 0 else (lambda _m: None), rank, world, on_epoch)
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


def train_or_reuse(config: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """The summary of ``config``'s run: a finished run in its directory is reused (and said
    so), an unfinished one resumed, otherwise a new one trained."""
    out = Path(config.out)
    summary = out / "summary.json"
    if summary.exists():
        done = TrainResult.from_dict(json.loads(summary.read_text()))
        if done.epochs == config.epochs:
            log(f"reusing {out} (top-1 {done.final_top1:.1f}%)")
            return done
    return train(config, resume=(out / "config.json").exists(), log=log)


def _train(config: TrainConfig, resume: bool, log, rank: int, world: int,
           on_epoch: EpochCallback | None = None) -> TrainResult | None:
    out = Path(config.out)
    device, amp, channels_last = _runtime(config, rank)
    on_cuda = device.type == "cuda"
    run = _build(config, out, device, rank, world, log)  # data, model, teacher, points: checked before any write
    if rank == 0:
        _claim_run_dir(out, config, resume)
    masks = _start_from_init(run, resumed=resume and (out / "last.pt").exists(), log=log)
    model = run.model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if masks is not None:
        masks.hold(optimizer)
    scheduler = make_scheduler(optimizer, config)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start_epoch, best = 0, -math.inf
    if resume and (out / "last.pt").exists():
        start_epoch, best = _restore(out, run, (model, optimizer, scheduler, scaler), log)
    wrapped = model
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if on_cuda else None)

    s_taps = t_taps = None
    if run.points is not None:
        s_taps, t_taps = FeatureTaps(model, run.points[0]), FeatureTaps(run.teacher, run.points[1])
    writer = _tensorboard(out) if (config.tensorboard and run.main) else None
    started = time.perf_counter()
    last_row: dict[str, Any] = {}
    stopped_after = None
    try:
        for epoch in range(start_epoch, config.epochs):
            row = _train_epoch(run, wrapped, optimizer, scaler, epoch, amp, channels_last, s_taps, t_taps, log)
            scheduler.step()
            if run.main:
                row.update({f"test_{k}": v for k, v in evaluate(model, run.data.test, config.eval_batch_size, device,
                                                               run.workers, channels_last).items()})
                row["test_images"] = int(row["test_images"])
                improved = row["test_top1"] > best
                best = max(best, row["test_top1"])
                _save_epoch(out, run, (model, optimizer, scheduler, scaler), epoch + 1, best, row, improved)
                if writer is not None:
                    for k, v in row.items():
                        if isinstance(v, int | float) and k != "epoch":
                            writer.add_scalar(k, v, epoch + 1)
                log(f"epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.4f}, {config.held_out} top-1 "
                    f"{row['test_top1']:.2f}% (best {best:.2f}%), {row['images_per_s']:.0f} img/s")
                last_row = row
                if on_epoch is not None and on_epoch(epoch + 1, row) is False:
                    stopped_after = epoch + 1
                    log(f"stopped after epoch {epoch + 1} of {config.epochs}")
                    break
            if world > 1:
                torch.distributed.barrier()
    finally:
        for taps in (s_taps, t_taps):
            if taps is not None:
                taps.remove()
        if writer is not None:
            writer.close()
    if not run.main:
        return None
    if not last_row:  # resumed a finished run
        last_row = read_checkpoint(out / "last.pt").get("metrics", {})
    summary = TrainResult(run=str(out), model=config.model, role=config.role, epochs=config.epochs,
                          final_top1=last_row.get("test_top1"), final_top5=last_row.get("test_top5"),
                          best_top1=best, params=sum(p.numel() for p in model.parameters()),
                          seconds_this_session=time.perf_counter() - started, data=run.data.name,
                          device=str(device), threads=torch.get_num_threads(), world_size=world,
                          zero_share=zero_share(model) if config.sparsity else None, stopped_after=stopped_after)
    atomic_write_json(out / "summary.json", summary.to_dict())
    return summary


def _start_from_init(run: _Run, resumed: bool, log) -> WeightMasks | None:
    """``--init``'s weights loaded (a resumed run then loads last.pt over them), ``--sparsity``'s
    mask made, and on a fresh start the BatchNorm statistics measured again: inherited or
    pruned weights carry those of another network's activations. The mask, if any."""
    config = run.config
    if config.init:
        load_weights(run.model, config.init, config.model)
        log(f"starting from the weights in {config.init}")
    masks = _weight_masks(run.model, config.sparsity, log) if config.sparsity else None
    if config.init and config.bn_reestimate and not resumed:
        if reestimate_batchnorm(run.model, run.data.train, seed=config.seed):
            log(f"BatchNorm statistics measured again over {REESTIMATE_BATCHES} batches of training images")
    return masks


def _weight_masks(model: nn.Module, sparsity: float, log):
    """The global magnitude mask of the init weights (the same again on a resume, which loads
    the init weights before its checkpoint)."""
    masks = WeightMasks(model, sparsity)
    layers = masks.per_layer()
    densest = min(layers, key=layers.get)
    log(f"weight pruning: {sparsity:.0%} of the convolution and linear weights set to zero and held there "
        f"(per layer {min(layers.values()):.0%}-{max(layers.values()):.0%}; least pruned: {densest})")
    return masks


def _runtime(config: TrainConfig, rank: int) -> tuple[torch.device, bool, bool]:
    """Threads, determinism and seed set; the device, mixed precision and channels-last."""
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    device = _device(config.device, rank)
    on_cuda = device.type == "cuda"
    if on_cuda and not config.deterministic:
        torch.backends.cudnn.benchmark = True
    amp = on_cuda if config.amp is None else config.amp
    channels_last = on_cuda if config.channels_last is None else config.channels_last
    if amp and not on_cuda:
        raise StaircaseError("--amp needs a CUDA device (this run is on the CPU)")
    torch.manual_seed(config.seed)
    return device, amp, channels_last


def _restore(out: Path, run: _Run, trained: tuple, log) -> tuple[int, float]:
    """Load ``last.pt`` into (model, optimizer, scheduler, scaler) and the RNGs; the epochs
    done and the best top-1 so far."""
    model, optimizer, scheduler, scaler = trained
    state = read_checkpoint(out / "last.pt")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    start_epoch, best = int(state["epoch"]), float(state.get("best_top1", -math.inf))
    log(f"resuming {out} after epoch {start_epoch} of {run.config.epochs}")
    if run.main:
        _truncate_metrics(out, start_epoch)
    return start_epoch, best


def _save_epoch(out: Path, run: _Run, trained: tuple, epochs_done: int, best: float, row: dict,
                improved: bool) -> None:
    """``last.pt`` (and ``best.pt`` when it improved) and the epoch's metrics row."""
    model, optimizer, scheduler, scaler = trained
    state = {"epoch": epochs_done, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
             "best_top1": best, "config": asdict(run.config), "architecture": run.arch.to_dict(),
             "spec": run.spec.to_dict() if run.spec is not None else None, "metrics": row}
    save_checkpoint(out / "last.pt", state)
    if improved:
        save_checkpoint(out / "best.pt", state)
    _append_metrics(out, row)


def _train_epoch(run: _Run, model: nn.Module, optimizer, scaler, epoch: int, amp: bool, channels_last: bool,
                 s_taps: FeatureTaps | None, t_taps: FeatureTaps | None, log) -> dict[str, Any]:
    config = run.config
    loader = _loader(run, epoch)
    model.train()
    sums = {"loss": 0.0, "ce": 0.0, "at": 0.0, "kd": 0.0}
    correct = seen = 0
    bar = progress_bar(len(loader), f"epoch {epoch + 1}/{config.epochs}", "batch", config.progress and run.main,
                       leave=False)
    t0 = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(run.device.type, dtype=torch.float16, enabled=amp):
            logits = model(x)
            ce = F.cross_entropy(logits, y)
            loss, at, kd = ce, None, None
            if run.teacher is not None:
                with torch.no_grad():
                    t_logits = run.teacher(x)
                if s_taps is not None:
                    at = at_loss(s_taps.features(), t_taps.features())
                if config.kd_alpha:
                    kd = kd_loss(logits.float(), t_logits.float(), config.kd_T)
                loss = (1 - config.kd_alpha) * ce + (config.kd_alpha * kd if kd is not None else 0.0) \
                    + (config.at_beta * at if at is not None else 0.0)
        value = float(loss.detach())  # one sync per step: the NaN check needs it
        if not math.isfinite(value):
            bar.close()
            kept = f"{run.out / 'last.pt'} keeps epoch {epoch}" if epoch else "no epoch finished, so no checkpoint"
            raise TrainingDiverged(f"the loss became {value} at epoch {epoch + 1}, step {step + 1} "
                                   f"(lr {optimizer.param_groups[0]['lr']:g}); the run stopped and {kept}. "
                                   "Lower --lr, or check the data and --at-beta")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        n = len(y)
        sums["loss"] += value * n
        sums["ce"] += float(ce.detach()) * n
        sums["at"] += float(at.detach()) * n if at is not None else 0.0
        sums["kd"] += float(kd.detach()) * n if kd is not None else 0.0
        correct += topk_correct(logits.detach().float(), y, ks=(1,))[0]
        seen += n
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
    bar.close()
    seconds = time.perf_counter() - t0
    totals = torch.tensor([seen, correct, *sums.values()], dtype=torch.float64, device=run.device)
    if run.world > 1:
        torch.distributed.all_reduce(totals)
    seen_all = max(int(totals[0]), 1)
    row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
           "train_loss": float(totals[2]) / seen_all, "train_ce": float(totals[3]) / seen_all,
           "train_at": float(totals[4]) / seen_all, "train_kd": float(totals[5]) / seen_all,
           "train_top1": 100.0 * float(totals[1]) / seen_all, "images_per_s": seen_all / seconds,
           "epoch_s": seconds}
    return row


def _loader(run: _Run, epoch: int) -> DataLoader:
    config = run.config
    drop_last = len(run.data.train) > config.batch_size  # a last batch of one breaks BatchNorm
    if run.world > 1:
        sampler = torch.utils.data.DistributedSampler(run.data.train, run.world, run.rank, shuffle=True,
                                                      seed=config.seed, drop_last=drop_last)
        sampler.set_epoch(epoch)
        return DataLoader(run.data.train, batch_size=config.batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=run.workers, pin_memory=run.device.type == "cuda")
    # the shuffle and the workers' seeds come from torch's global generator, saved with every checkpoint
    return DataLoader(run.data.train, batch_size=config.batch_size, shuffle=True, drop_last=drop_last,
                      num_workers=run.workers, pin_memory=run.device.type == "cuda",
                      persistent_workers=False)


def _build(config: TrainConfig, out: Path, device: torch.device, rank: int, world: int, log) -> _Run:
    """Resolve the model, its data and its teacher, and check that they fit together."""
    from ..modelref import resolve_model
    from .data import load_data

    shape = tuple(config.input_shape) if config.input_shape else None
    probe = resolve_model(config.model, config.num_classes, shape)
    size = tuple(probe.architecture.input_size)
    data = load_data(config.data, size, val_split=config.val_split, seed=config.split_seed,
                     preprocessing=probe.architecture.preprocessing)
    if config.train_images is not None and config.train_images < len(data.train):
        data.train = _first(data.train, config.train_images, config.seed)
    resolved = probe
    if probe.spec is not None:
        if probe.spec.num_classes != data.num_classes:
            raise StaircaseError(f"student spec {config.model} has {probe.spec.num_classes} outputs but "
                                 f"{data.name} has {data.num_classes} classes; design the student from a "
                                 "teacher with as many classes")
    elif config.num_classes is None:
        resolved = resolve_model(config.model, data.num_classes, shape)  # classifier sized to the data
    elif config.num_classes != data.num_classes:
        raise StaircaseError(f"--num-classes {config.num_classes} but {data.name} has {data.num_classes} classes")
    log(f"{config.role} {config.model}: {sum(p.numel() for p in resolved.model.parameters()):,} params; "
        f"data {data.name}: {len(data.train)} train / {len(data.test)} "
        f"{config.held_out} images; device {device}"
        + (f", {world} processes" if world > 1 else f", {torch.get_num_threads()} threads"))
    teacher = _teacher(config, resolved, size, log) if config.teacher else None
    points = None
    if teacher is not None:
        teacher.to(device)
        if config.at_beta:
            s_points = attention_points(resolved.model, config.student_points, "student", size)
            t_points = attention_points(teacher, config.teacher_points, "teacher", size)
            shapes = check_pairing(resolved.model, s_points, teacher, t_points, size)
            for (s_name, t_name), (s_hw, t_hw) in zip(zip(s_points, t_points, strict=True), shapes, strict=True):
                if s_hw != t_hw:
                    log(f"warning: attention maps differ in size: student {s_name} {s_hw} vs teacher {t_name} "
                        f"{t_hw}; the larger is pooled to the smaller")
            log(f"attention transfer (beta {config.at_beta:g}) over {len(s_points)} point pairs: "
                + ", ".join(f"{s}~{t}" for s, t in zip(s_points, t_points, strict=True)))
            points = (s_points, t_points)
        if config.kd_alpha:
            log(f"knowledge distillation: alpha {config.kd_alpha:g}, T {config.kd_T:g}")
    return _Run(config, out, device, resolved.model, resolved.architecture, resolved.spec, teacher, data,
                rank, world, points)


def _teacher(config: TrainConfig, student, size, log) -> nn.Module:
    """The frozen teacher from its checkpoint: the network the checkpoint names, checked
    against the student spec's teacher."""
    from .checkpoint import CHECKPOINT_FORMAT, model_from_checkpoint

    state = read_checkpoint(config.teacher)
    if state.get("format") == CHECKPOINT_FORMAT:
        teacher, arch, _spec = model_from_checkpoint(config.teacher, state)
        designed_from = student.spec.teacher if student.spec is not None else None
        if designed_from is not None and not config.allow_other_teacher and not _same_network(designed_from, state):
            raise StaircaseError(f"teacher checkpoint {config.teacher} holds a {arch.name}{' (pruned)' if _spec else ''}"
                                 f" but {config.model} was designed from {designed_from.name}; pass that teacher's "
                                 "checkpoint, or --allow-other-teacher to distil from another network")
    else:  # a bare state dict: the teacher the spec was designed from
        if student.spec is None:
            raise StaircaseError(f"teacher checkpoint {config.teacher} is a bare state dict and {config.model} "
                                 "is not a student spec, so nothing says which network it is; train the "
                                 "teacher with `staircase train teacher` or give a student spec")
        arch = student.spec.teacher
        teacher = load_weights(arch.build(), config.teacher, arch.name, state)
    if tuple(arch.input_size) and tuple(arch.input_size) != tuple(size):
        raise StaircaseError(f"teacher {arch.name} takes {list(arch.input_size)} inputs, the student {list(size)}")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    log(f"teacher {arch.name} from {config.teacher} ({sum(p.numel() for p in teacher.parameters()):,} params), frozen")
    return teacher


def _same_network(arch, state) -> bool:
    """Whether a checkpoint's weights fit ``arch`` exactly (same layers, same shapes)."""
    if state.get("spec") or state.get("architecture", {}).get("name") != arch.name:
        return False
    expected = arch.build().state_dict()
    weights = state["model"]
    return set(weights) == set(expected) and all(weights[k].shape == v.shape for k, v in expected.items())


def _first(dataset, count: int, seed: int):
    """The first ``count`` images of a seeded shuffle (the same subset for every run with the seed)."""
    return dataset.subset(torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed + 1))[:count])


def make_scheduler(optimizer, config: TrainConfig):
    """Stepped once per epoch: ``warmup_epochs`` at lr/10, then the schedule over the rest."""
    epochs = config.epochs - config.warmup_epochs
    if config.schedule == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    else:
        milestones = sorted({max(1, round(f * epochs)) for f in config.milestones if 0 < f < 1})
        main = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    if not config.warmup_epochs:
        return main
    warmup = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=0.1, total_iters=config.warmup_epochs)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[config.warmup_epochs])


def _device(name: str, rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise StaircaseError(f"--train-device {name}: this torch has no CUDA device; use --train-device cpu")
        if name == "cuda":
            name = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
        torch.cuda.set_device(torch.device(name))
    elif name != "cpu":
        raise StaircaseError(f"--train-device {name!r}: use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def _init_distributed() -> tuple[int, int]:
    """(rank, world size): under torchrun (WORLD_SIZE > 1) join the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    dist = torch.distributed
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _claim_run_dir(out: Path, config: TrainConfig, resume: bool) -> None:
    """Write config.json into a new run directory; an existing run is continued only with
    ``resume`` and only with the same configuration."""
    path = out / "config.json"
    mine = asdict(config)
    if path.exists() and not (out / "last.pt").exists():
        path.unlink()  # a run that never finished an epoch (it failed at the start): nothing to protect
    if path.exists():
        try:
            theirs = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise StaircaseError(f"{path} cannot be read; delete {out} or choose another --out") from None
        # a setting the run's version did not have yet counts as its default
        defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
        theirs = {**{k: v for k, v in defaults.items() if k not in theirs}, **theirs}
        differ = sorted(k for k in set(mine) | set(theirs)
                        if k not in RESUME_FREE and k != "out" and mine.get(k) != theirs.get(k))
        if not resume:
            raise StaircaseError(f"{out} already holds a run; pass --resume to continue it"
                                 + (f" (its settings differ in {differ})" if differ else "")
                                 + ", or choose another --out")
        if differ:
            changes = "; ".join(f"{k}: {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ[:4])
            raise StaircaseError(f"{out} holds a run with other settings ({changes}); resume it with the same "
                                 "settings, or choose another --out")
    elif out.exists() and any(out.iterdir()):
        raise StaircaseError(f"{out} exists and is not a staircase run directory; choose another --out")
    atomic_write_json(path, mine)


def _append_metrics(out: Path, row: dict[str, Any]) -> None:
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    _write_csv(out)


def _truncate_metrics(out: Path, epochs: int) -> None:
    """Drop metric lines of epochs after the checkpoint (a kill between the two writes)."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows if r["epoch"] <= epochs))
    _write_csv(out)


def _write_csv(out: Path) -> None:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "metrics.csv", buf.getvalue())


def _tensorboard(out: Path):
    require("tensorboard", "--tensorboard", "tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))
