"""The ``staircase prune`` job: Fisher or L1 pruning of a trained teacher to a target,
written as a widths file (widths, per-channel saliency, removal order) that
``staircase design`` reads without the checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..complexity import count_params
from ..errors import StaircaseError
from ..modelref import ModelSettings, ResolvedModel
from ..settings import check_positive, option
from ..slots import SlotGraph
from ..train.data import DATA_HELP, HeldOutSettings
from ..widths import WidthsFile
from .baselines import applied_removals, l1_scores, prune_until, removal_order
from .fisher import SCHEDULES, fisher_prune

__all__ = ["PruneSettings", "Target", "prune", "run_prune"]


@dataclass(kw_only=True)
class PruneSettings(ModelSettings, HeldOutSettings):
    out: str = option(help="widths file to write (JSON)")
    checkpoint: str | None = option(None, help="the trained teacher's weights")
    data: str | None = option(None, help=DATA_HELP)
    method: str = option("fisher", choices=("fisher", "l1"), help="how channels are ranked")
    target_channels: int | None = option(None, help="total channels of the pruned slots")
    target_params: float | None = option(None, help="parameters (e.g. 1.2e6)")
    target_ms: float | None = option(None, help="predicted latency (needs --profile)")
    profile: str | None = option(None, help="device profile for --target-ms and --latency-aware")
    latency_aware: bool = option(False, help="rank channels by saliency per millisecond their slot saves "
                                             "(needs --profile)")
    schedule: str = option("fast", choices=tuple(SCHEDULES),
                           help="fast: 4 channels every 10 steps; reference: 1 every 100 (Crowley et al.)")
    batch_size: int = option(64, help="fine-tuning batch size")
    max_steps: int | None = option(None, help="stop fine-tuning after this many steps")
    threads: int | None = option(None, help="CPU threads (default: all)")

    def check(self) -> None:
        check_positive(target_channels=self.target_channels, target_params=self.target_params,
                       target_ms=self.target_ms)
        if self.latency_aware and not self.profile:
            raise StaircaseError("--latency-aware needs --profile PROFILE")


def prune(settings: PruneSettings, log: Callable[[str], None] = print,
          warn: Callable[[str], None] | None = None) -> WidthsFile:
    """The teacher ``settings`` name, pruned to their target; the widths file written to
    ``settings.out`` (a killed Fisher run resumes from its checkpoint beside it)."""
    from ..files import check_writable
    from ..profile.prediction import LatencyModel
    from ..profile.store import Profile, network_key
    from ..train.checkpoint import load_weights

    s = settings
    s.check()
    out = check_writable(s.out)
    resolved = s.resolve()
    if s.checkpoint:
        load_weights(resolved.model, s.checkpoint, resolved.architecture.name)
    elif s.method == "fisher":
        (warn or log)("no --checkpoint: pruning an untrained network")
    predicted = cost = None
    if s.profile:
        arch = resolved.architecture
        latency = LatencyModel(Profile.load(s.profile), network_key(arch.name, arch.input_size))
        predicted, cost = latency.predicted_ms, latency.channel_cost
    target = Target(s.target_channels, int(s.target_params) if s.target_params else None, s.target_ms, predicted)
    return run_prune(resolved, s.method, target, out, s.data, s.schedule, s.batch_size, s.max_steps,
                     cost if s.latency_aware else None, s.threads, log, (s.val_split, s.split_seed))


class Target:
    """When pruning stops: total channels of the pruned slots, parameters, or predicted ms."""

    def __init__(self, channels: int | None = None, params: int | None = None, ms: float | None = None,
                 predicted: Callable[[dict[str, int]], float] | None = None):
        given = [x is not None for x in (channels, params, ms)]
        if sum(given) != 1:
            raise StaircaseError("give exactly one of --target-channels, --target-params, --target-ms")
        if ms is not None and predicted is None:
            raise StaircaseError("--target-ms needs --profile PROFILE to predict latency")
        self.channels, self.params, self.ms, self.predicted = channels, params, ms, predicted

    def reached(self, widths: dict[str, int], model: torch.nn.Module) -> bool:
        if self.channels is not None:
            return sum(widths.values()) <= self.channels
        if self.params is not None:
            return count_params(model) <= self.params
        return self.predicted(widths) <= self.ms

    def describe(self) -> str:
        if self.channels is not None:
            return f"{self.channels} channels"
        return f"{self.params} parameters" if self.params is not None else f"{self.ms} ms predicted"


def run_prune(resolved: ResolvedModel, method: str, target: Target, out: Path, data: str | None = None,
              schedule: str = "fast", batch_size: int = 64, max_steps: int | None = None,
              cost: Callable[[str, int], float] | None = None, threads: int | None = None,
              log: Callable[[str], None] = print, held_out: tuple[float, int] = (0.0, 0)) -> WidthsFile:
    """``resolved`` pruned (in place) by ``method`` until ``target``; its widths file, written to
    ``out``. ``held_out``: (share, seed) of a validation split the fine-tuning leaves out."""
    model, size = resolved.model, resolved.architecture.input_size
    graph = SlotGraph(model, size)
    names = [s.name for s in graph.selected()]
    full = {n: graph[n].width for n in names}
    if threads:
        torch.set_num_threads(threads)
    if method == "l1":
        scores = l1_scores(graph, names)
        order = removal_order(scores)

        def size_of(widths):  # a monotone stand-in for the target, so that bisection applies
            if target.channels is not None:
                return sum(widths.values())
            if target.params is not None:
                from ..slots import make_student
                return count_params(make_student(model, widths, size))
            return target.predicted(widths)

        goal = target.channels if target.channels is not None else (
            target.params if target.params is not None else target.ms)
        widths = prune_until(full, order, size_of, goal)
        removed = applied_removals(full, order, sum(full.values()) - sum(widths.values()))
        channels = {n: _kept_first(scores[n], widths[n]) for n in names}
        result = {"widths": widths, "saliency": {n: [scores[n][c] for c in channels[n]] for n in names},
                  "removed": removed, "steps": 0, "seconds": 0.0, "channels": channels}
    elif method == "fisher":
        if data is None:
            raise StaircaseError("Fisher pruning fine-tunes as it goes: give --data (e.g. digits, cifar10:PATH)")
        from ..train.data import load_data

        bundle = load_data(data, size, val_split=held_out[0], seed=held_out[1],
                           preprocessing=resolved.architecture.preprocessing)
        loader = torch.utils.data.DataLoader(bundle.train, batch_size=batch_size, shuffle=True, drop_last=True)
        if schedule not in SCHEDULES:
            raise StaircaseError(f"--schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
        work = out.with_name(out.name + ".ckpt")
        pruner, state = fisher_prune(model, size, loader, target.reached, SCHEDULES[schedule], work, cost,
                                     max_steps, log, names, goal_channels=target.channels)
        widths = pruner.widths()
        saliency = {n: pruner.last[n].tolist() for n in names}
        channels = {n: list(pruner.origin[n]) for n in names} if pruner.origin is not None else None
        for n, v, c in zip(state.removed, state.removed_saliency, state.removed_channel, strict=True):
            saliency[n].append(v)  # removed channels keep the saliency they had when removed
            if channels is not None:
                channels[n].append(c)
        if channels is not None and any(c is None for values in channels.values() for c in values):
            channels = None  # resumed from a checkpoint that did not record them
        result = {"widths": widths, "saliency": saliency, "removed": state.removed, "steps": state.step,
                  "seconds": state.seconds, "channels": channels}
    else:
        raise StaircaseError(f"--method {method!r} is not one of fisher, l1")
    reached = target.reached(result["widths"], _shrunk(model, result["widths"], size) if method == "l1" else model)
    written = WidthsFile(result["widths"], result["saliency"], result["removed"], f"{method}-pruned",
                         resolved.architecture.name, {"target": target.describe(), "reached": reached,
                                                      "steps": result["steps"], "seconds": result["seconds"]},
                         result["channels"])
    written.save(out)
    return written


def _kept_first(scores: list[float], width: int) -> list[int]:
    """A slot's channels as a widths file lists them: the ``width`` kept (highest score) first,
    then the removed ones in the order they went (lowest score first)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order[:width] + order[width:][::-1]


def _shrunk(model, widths, size):
    from ..slots import make_student

    return make_student(model, widths, size, init=False)
