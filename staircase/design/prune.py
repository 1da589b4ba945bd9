"""The ``staircase prune`` job: Fisher or L1 pruning of a trained teacher to a target,
written as a widths file (widths, per-channel saliency, removal order) that
``staircase design`` reads without the checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..complexity import count_params
from ..errors import StaircaseError
from ..modelref import ResolvedModel
from ..slots import SlotGraph
from ..widths import WidthsFile
from .baselines import applied_removals, l1_scores, prune_until, removal_order
from .fisher import SCHEDULES, fisher_prune

__all__ = ["Target", "run_prune"]


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
              log: Callable[[str], None] = print) -> dict:
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
        result = {"widths": widths, "saliency": scores, "removed": removed, "steps": 0, "seconds": 0.0,
                  "channels": {n: list(range(full[n])) for n in names}}
    elif method == "fisher":
        if data is None:
            raise StaircaseError("Fisher pruning fine-tunes as it goes: give --data (e.g. digits, cifar10:PATH)")
        from ..train.data import load_data

        bundle = load_data(data, size)
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
    return written.to_dict()


def _shrunk(model, widths, size):
    from ..slots import make_student

    return make_student(model, widths, size, init=False)
