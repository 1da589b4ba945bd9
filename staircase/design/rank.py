"""The rank job: every channel of a trained network scored in one pass, nothing removed.

``staircase rank`` writes a widths file (the teacher's own widths, one score per channel and
the teacher channel each belongs to) that ``design --widths W --inherit`` reads to decide
which channels a student keeps and ``--allocation fisher`` to share a target. It costs a
few batches of forward and backward passes where ``staircase prune`` (the paper's route)
fine-tunes between thousands of single-channel removals.

Scores, per channel k of a slot, from the activation a (the output of the slot's norm
layer, else of its producer) and the loss's gradient g with respect to it, per image n:

    fisher  1/2 * mean_n ( sum_hw a_nkhw * g_nkhw )^2     (Theis et al. 2018)
    taylor  mean_n | sum_hw a_nkhw * g_nkhw |              (Molchanov et al. 2017)
    l1      the L1 norm of the producer's filter (Li et al. 2017): no data
    l1-bn   that norm times the |gamma| / sigma of the BatchNorm after it: no data
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import StaircaseError
from ..modelref import ResolvedModel
from ..settings import option
from ..slots import SlotGraph
from ..train.data import DATA_HELP, HeldOutSettings
from ..widths import WidthsFile
from .baselines import l1_scores

__all__ = ["RANK_METHODS", "RankSettings", "rank", "rank_channels"]

RANK_METHODS = ("fisher", "taylor", "l1", "l1-bn")
_NEEDS_DATA = ("fisher", "taylor")


@dataclass(kw_only=True)
class RankSettings(HeldOutSettings):
    checkpoint: str = option(positional=True, metavar="CKPT",
                             help="the trained network: a checkpoint of `staircase train` or `staircase import`")
    out: str = option(help="the widths file to write (for `design --widths W --inherit CKPT`)")
    data: str | None = option(None, help=f"training data for fisher and taylor: {DATA_HELP}")
    method: str = option("fisher", choices=RANK_METHODS, help="the score (see docs/designing.md)")
    batches: int = option(8, help="batches the scores are accumulated over")
    batch_size: int = option(32, help="images per batch")
    all: bool = option(False, help="also rank the coupled residual/concatenated/stem slots")
    threads: int | None = option(None, help="CPU threads (default: all)")
    seed: int = option(0, help="which training images, in which order")

    def check(self) -> None:
        if self.method not in RANK_METHODS:
            raise StaircaseError(f"--method {self.method!r} is not one of {', '.join(RANK_METHODS)}")
        if self.method in _NEEDS_DATA and not self.data:
            raise StaircaseError(f"--method {self.method} scores channels by the loss's gradient: give --data "
                                 "(the data the network was trained on)")
        if self.batches < 1 or self.batch_size < 1:
            raise StaircaseError("--batches and --batch-size must be at least 1")


class _GradientScores:
    """Per-channel scores accumulated from each slot's activation and its gradient."""

    def __init__(self, model: nn.Module, graph: SlotGraph, names: list[str], method: str):
        self.method, self.images = method, 0
        self.sums = {n: torch.zeros(graph[n].width, dtype=torch.float64) for n in names}
        self._handles = []
        for name in names:
            slot = graph[name]
            target = (slot.members_with("norm") or slot.members_with("producer"))[0].module
            self._handles.append(model.get_submodule(target).register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def forward_hook(_module, _inputs, out):
            saved = out.detach()

            def grad_hook(grad):
                prod = saved * grad
                per_image = (prod.flatten(2).sum(2) if prod.dim() > 2 else prod).double()
                value = 0.5 * per_image.pow(2) if self.method == "fisher" else per_image.abs()
                self.sums[name] += value.sum(0).cpu()

            out.register_hook(grad_hook)

        return forward_hook

    def scores(self) -> dict[str, list[float]]:
        for h in self._handles:
            h.remove()
        return {n: (s / max(self.images, 1)).tolist() for n, s in self.sums.items()}


def rank_channels(resolved: ResolvedModel, method: str, names: list[str], batches=None) -> dict[str, list[float]]:
    """Per slot of ``names``, one score per channel (channel order). ``batches``: (images,
    labels) pairs, for the gradient scores."""
    from .inherit import normed_l1_scores

    model = resolved.model
    graph = SlotGraph(model, resolved.architecture.input_size)
    if method == "l1":
        return l1_scores(graph, names)
    if method == "l1-bn":
        return normed_l1_scores(graph, names)
    hooks = _GradientScores(model, graph, names, method)
    was = model.training
    model.eval()  # the network as it runs: BatchNorm on its running statistics, no dropout
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            # summed: each image's gradient is its own loss's, whatever the batch size
            F.cross_entropy(model(x), y, reduction="sum").backward()
            hooks.images += len(y)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    return hooks.scores()


def rank(settings: RankSettings, log: Callable[[str], None] = print) -> WidthsFile:
    """Score every channel of the checkpoint's network; the widths file written to ``out``."""
    from ..files import check_writable
    from ..train.checkpoint import model_from_checkpoint

    s = settings
    s.check()
    out = check_writable(s.out)
    if s.threads:
        torch.set_num_threads(s.threads)
    model, arch, spec = model_from_checkpoint(s.checkpoint)
    if spec is not None:
        raise StaircaseError(f"{s.checkpoint} holds a student ({spec.name}); rank the teacher it came from")
    resolved = ResolvedModel(model, arch)
    names = [slot.name for slot in SlotGraph(model, arch.input_size).selected(s.all)]
    started = time.perf_counter()
    batches = None
    if s.method in _NEEDS_DATA:
        from ..train.data import load_data

        train = load_data(s.data, arch.input_size, val_split=s.val_split, seed=s.split_seed, augment=False,
                          preprocessing=arch.preprocessing).train
        loader = torch.utils.data.DataLoader(train, batch_size=s.batch_size, shuffle=True, drop_last=True,
                                             generator=torch.Generator().manual_seed(s.seed))
        batches = [b for b, _ in zip(loader, range(s.batches), strict=False)]
        if len(batches) < s.batches:
            log(f"the data holds {len(batches)} batches of {s.batch_size}: ranking on those")
    scores = rank_channels(resolved, s.method, names, batches)
    seconds = time.perf_counter() - started
    widths = {n: len(v) for n, v in scores.items()}
    ranked = WidthsFile(widths, scores, [], f"{s.method}-ranked", arch.name,
                        {"target": "ranking only", "reached": True, "steps": len(batches or []), "seconds": seconds},
                        {n: list(range(w)) for n, w in widths.items()})
    ranked.save(out)
    log(f"wrote {out}: {sum(widths.values())} channels of {len(widths)} slots ranked by {s.method} in {seconds:.1f} s"
        + (f" over {len(batches)} batches of {s.batch_size}" if batches else ""))
    return ranked
