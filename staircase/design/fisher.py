"""Fisher pruning (Theis et al. 2018; Crowley et al. 2018), removing channels for real.

Each slot's activation (the output of its norm layer, else of its producer) is hooked; on
every backward pass the saliency of channel k is accumulated as

    Delta_k = 1/2 * mean_n ( sum_hw a_nkhw * g_nkhw )^2

where g is the gradient of the loss with respect to the activation a (after a BN+ReLU
the product is the same at the norm's output or the ReLU's). Every ``prune_every`` steps
the globally least salient channel(s) are removed from the network with DepGraph (the
network gets smaller and faster as it goes), the optimiser is rebuilt for the new
shapes and the accumulators reset. Optionally each saliency is divided by the latency
one channel of its slot costs (from a profile): saliency per millisecond saved, the
latency analogue of Theis et al.'s FLOPs penalty.

The job checkpoints after every prune (atomically) and resumes from the last one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import StaircaseError
from ..files import atomic_write
from ..slots import SlotGraph

__all__ = ["FisherSchedule", "SCHEDULES", "FisherPruner", "PruneState", "fisher_prune", "progress_line"]


@dataclass(frozen=True)
class FisherSchedule:
    prune_every: int = 100  # steps between prunes
    per_prune: int = 1  # channels removed at each prune
    lr: float = 8e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4


# "reference": Crowley et al.'s recipe; "fast": more channels per prune, fewer steps, for CPUs
SCHEDULES = {"reference": FisherSchedule(), "fast": FisherSchedule(prune_every=10, per_prune=4)}


class FisherPruner:
    """Accumulates per-channel Fisher saliency on ``names`` (default: the inner slots)."""

    def __init__(self, model: nn.Module, input_size, names: Iterable[str] | None = None):
        self.model = model
        self.graph = SlotGraph(model, input_size)
        self.names = list(names) if names is not None else [s.name for s in self.graph.selected()]
        self.acc: dict[str, torch.Tensor] = {}
        self.last: dict[str, torch.Tensor] = {}  # the last full window's saliency, kept across resets
        # the teacher channel each current channel of a slot was (None: unknown, after
        # resuming a checkpoint that did not record it)
        self.origin: dict[str, list[int]] | None = {}
        self.steps = 0
        self._handles = []
        for name in self.names:
            slot = self.graph[name]
            target = (slot.members_with("norm") or slot.members_with("producer"))[0].module
            module = model.get_submodule(target)
            self._handles.append(module.register_forward_hook(self._hook(name)))
            self.acc[name] = torch.zeros(slot.width)
            self.last[name] = torch.zeros(slot.width)
            self.origin[name] = list(range(slot.width))

    def _hook(self, name: str):
        def forward_hook(_module, _inputs, out):
            if not (torch.is_grad_enabled() and out.requires_grad):
                return
            saved = out.detach()

            def grad_hook(grad):
                prod = saved * grad
                per_sample = prod.flatten(2).sum(2) if prod.dim() > 2 else prod
                delta = per_sample.pow(2).mean(0).mul(0.5).detach().cpu().double()
                self.acc[name] = self.acc[name].to(delta.dtype) + delta

            out.register_hook(grad_hook)

        return forward_hook

    def step_done(self) -> None:
        self.steps += 1

    def widths(self) -> dict[str, int]:
        return {n: self.graph.current_width(n) for n in self.names}

    def saliency(self) -> dict[str, torch.Tensor]:
        """Mean saliency per channel over the steps since the last reset."""
        return {n: a / max(self.steps, 1) for n, a in self.acc.items()}

    def prune(self, count: int, cost: Callable[[str, int], float] | None = None,
              min_width: int = 1) -> list[tuple[str, float, int | None]]:
        """Remove the ``count`` globally least salient channels (saliency / ``cost(slot, width)``
        when given); return (slot, saliency, teacher channel or None) per channel removed, and
        reset the accumulators."""
        sal = self.saliency()
        widths = self.widths()
        candidates = []
        for name, values in sal.items():
            penalty = cost(name, widths[name]) if cost is not None else 1.0
            for idx, v in enumerate(values.tolist()):
                candidates.append((v / max(penalty, 1e-9), name, idx, v))
        candidates.sort()
        chosen: dict[str, list[int]] = {}
        removed = []
        for _, name, idx, v in candidates:
            if len(removed) == count:
                break
            if widths[name] - len(chosen.get(name, [])) <= min_width:
                continue
            chosen.setdefault(name, []).append(idx)
            removed.append((name, v, self.origin[name][idx] if self.origin is not None else None))
        for name, idxs in chosen.items():
            self.graph.prune(name, idxs)
            keep = [i for i in range(len(sal[name])) if i not in set(idxs)]
            self.last[name] = sal[name][keep]
            if self.origin is not None:
                self.origin[name] = [self.origin[name][i] for i in keep]
        for name in self.names:
            if name not in chosen:
                self.last[name] = sal[name]
            self.acc[name] = torch.zeros(self.graph.current_width(name), dtype=torch.float64)
        self.steps = 0
        return removed

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


@dataclass
class PruneState:
    step: int = 0
    removed: list[str] = field(default_factory=list)  # slot per channel removed, in order
    removed_saliency: list[float] = field(default_factory=list)
    removed_channel: list[int | None] = field(default_factory=list)  # the teacher channel each one was
    seconds: float = 0.0


def _save_checkpoint(path: Path, model: nn.Module, pruner: FisherPruner, state: PruneState) -> None:
    checkpoint = {"format": "staircase-fisher-checkpoint", "model": model.state_dict(), "widths": pruner.widths(),
                  "state": vars(state), "last": {k: v.tolist() for k, v in pruner.last.items()},
                  "origin": pruner.origin, "rng": torch.get_rng_state()}
    atomic_write(path, lambda f: torch.save(checkpoint, f))


def progress_line(state: PruneState, left: int, goal: int | None) -> str:
    """How far a pruning run got, and (towards ``goal`` channels) about how long is left."""
    line = (f"pruning: step {state.step}, {len(state.removed)} channels removed, {left} left, "
            f"{state.seconds / 60:.1f} min")
    if goal is not None and state.removed and left > goal:
        per_channel = state.seconds / len(state.removed)
        line += f", about {(left - goal) * per_channel / 60:.1f} min to {goal}"
    return line


def _resume(checkpoint: Path, model: nn.Module, input_size, log: Callable[[str], None]) -> dict:
    """Shrink ``model`` to the checkpoint's widths, load its weights and RNG; its contents."""
    try:
        resumed = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one message
        raise StaircaseError(f"pruning checkpoint {checkpoint} cannot be read ({type(exc).__name__}); "
                             "delete it to start over") from None
    from ..slots import shrink_in_place

    shrink_in_place(model, resumed["widths"], input_size, init=False)
    model.load_state_dict(resumed["model"])
    torch.set_rng_state(resumed["rng"])
    log(f"resuming Fisher pruning at step {resumed['state']['step']} ({len(resumed['state']['removed'])} channels "
        "removed)")
    return resumed


def _forever(batches: Iterable):
    """Batches epoch after epoch (a DataLoader reshuffles each time it is iterated)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise StaircaseError("the data gave no batches to prune with")


def fisher_prune(
    model: nn.Module,
    input_size,
    batches: Iterable,
    stop: Callable[[dict[str, int], nn.Module], bool],
    schedule: FisherSchedule = SCHEDULES["fast"],
    checkpoint: Path | None = None,
    cost: Callable[[str, int], float] | None = None,
    max_steps: int | None = None,
    log: Callable[[str], None] = print,
    names: Iterable[str] | None = None,
    goal_channels: int | None = None,
    report_every_s: float = 30.0,
) -> tuple[FisherPruner, PruneState]:
    """Fine-tune ``model`` on ``batches`` (cycled) with cross-entropy while pruning, until
    ``stop(widths, model)`` holds (checked after every prune) or ``max_steps``; says how far
    it got every ``report_every_s`` (with the time left when ``goal_channels``, the total
    the pruned slots are heading for, is given). With a
    ``checkpoint`` that exists, ``model`` must be the same teacher: it is shrunk to the
    checkpoint's widths and its weights loaded, and the job goes on from there."""
    resumed = _resume(checkpoint, model, input_size, log) if checkpoint is not None and checkpoint.exists() else None
    state = PruneState(**{"removed_channel": [None] * len(resumed["state"]["removed"]), **resumed["state"]}) \
        if resumed is not None else PruneState()
    pruner = FisherPruner(model, input_size, names)
    if resumed is not None:
        pruner.last = {k: torch.tensor(v, dtype=torch.float64) for k, v in resumed["last"].items()}
        pruner.origin = resumed.get("origin")  # None from a checkpoint that did not record it
    if stop(pruner.widths(), model):
        pruner.remove_hooks()
        return pruner, state

    def optimiser():
        return torch.optim.SGD(model.parameters(), lr=schedule.lr, momentum=schedule.momentum,
                               weight_decay=schedule.weight_decay)

    opt = optimiser()
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter() - state.seconds
    reported = time.perf_counter()
    for x, y in _forever(batches):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if not math.isfinite(loss.item()):
            raise StaircaseError(f"loss became {loss.item()} at step {state.step} while pruning; "
                                 "lower the learning rate (the last checkpoint is kept)")
        loss.backward()
        opt.step()
        pruner.step_done()
        state.step += 1
        if state.step % schedule.prune_every == 0:
            removed = pruner.prune(schedule.per_prune, cost)
            if not removed:
                log("every slot is down to one channel: stopping")
                break
            state.removed += [n for n, _, _ in removed]
            state.removed_saliency += [v for _, v, _ in removed]
            state.removed_channel += [c for _, _, c in removed]
            opt = optimiser()  # parameter shapes changed
            state.seconds = time.perf_counter() - started
            if time.perf_counter() - reported > report_every_s:
                reported = time.perf_counter()
                log(progress_line(state, sum(pruner.widths().values()), goal_channels))
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, pruner, state)
            if stop(pruner.widths(), model):
                break
        if max_steps is not None and state.step >= max_steps:
            break
    state.seconds = time.perf_counter() - started
    pruner.remove_hooks()
    return pruner, state
