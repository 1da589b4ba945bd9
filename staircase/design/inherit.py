"""Students that start from the teacher: each slot keeps the teacher's most important
channels, with their weights.

A channel's importance is the score of a widths file that says which teacher channel each
score belongs to (``WidthsFile.channels``: ``staircase rank``, ``staircase prune``), else
the L1 norm of the producer's filter (Li et al.). The surgery is torch-pruning's, through
``SlotGraph.prune``, so any model that has slots inherits; what the student keeps of each
slot is written down (``kept``: teacher channel indices, ascending) so that the spec can
record it. Given training data, the student's BatchNorm statistics are then measured again
(``train.batchnorm``): the teacher's no longer fit the narrowed layers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import StaircaseError
from ..slots import SlotGraph, check_widths, input_size_of, proportional_split
from ..spec import StudentSpec
from ..widths import WidthsFile
from .baselines import l1_scores

__all__ = ["channel_scores", "inherit", "inherited_student", "normed_l1_scores", "save_student", "survival_scores"]


def channel_scores(teacher: nn.Module, names: Sequence[str], input_size=None,
                   widths_file: WidthsFile | None = None) -> tuple[dict[str, list[float]], str]:
    """Per slot, one score per teacher channel (by channel index), and what they are: the
    widths file's (its method's name: ``fisher``, ``taylor``, ...) where it maps its scores to
    teacher channels, else ``"l1"``. A pruning run's file ranks by survival
    (``survival_scores``): the student keeps what the run kept."""
    graph = SlotGraph(copy.deepcopy(teacher), input_size_of(teacher, input_size))
    if widths_file is None or not widths_file.saliency or not widths_file.channels:
        return l1_scores(graph, names), "l1"
    scores = {}
    for name in names:
        width = graph[name].width
        values, channels = widths_file.saliency.get(name), widths_file.channels.get(name)
        if values is None or channels is None or len(values) != len(channels) or sorted(channels) != list(range(width)):
            raise StaircaseError(f"widths file: slot {name!r} has no score for each of its {width} teacher "
                                 "channels; was it made from another model? Leave the widths file out to rank by L1")
        if widths_file.removed:
            values = survival_scores(values, widths_file.widths[name])
        row = [0.0] * width
        for channel, value in zip(channels, values, strict=True):
            row[channel] = float(value)
        scores[name] = row
    return scores, widths_file.method.rsplit("-", 1)[0]


def survival_scores(saliency: Sequence[float], kept: int) -> list[float]:
    """Scores for a pruning run's list of one slot (its ``kept`` channels first, then the
    removed ones in the order they went) in which every kept channel outranks every removed
    one and a channel removed later outranks one removed earlier. A removed channel's
    saliency was measured when it went, on a network fine-tuned less: beside the survivors'
    current saliency it says nothing, and a student that inherits the file's widths should
    keep exactly the channels the run kept."""
    n = len(saliency)
    scores = [float(i - kept) for i in range(n)]  # removed: 0, 1, ... in removal order
    for place, i in enumerate(sorted(range(kept), key=lambda i: saliency[i])):
        scores[i] = float(n + place)
    return scores


def normed_l1_scores(graph: SlotGraph, names: Sequence[str]) -> dict[str, list[float]]:
    """Per slot, each channel's filter L1 norm (``l1_scores``) times the mean |gamma| / sigma
    of the BatchNorm layers over it (1 where none). Measured against raw L1 it kept worse
    channels once the student's statistics are measured again (docs/BENCH_TRAINER.md): the
    new statistics rescale every kept channel to |gamma|, and dividing by the teacher's sigma
    favours nearly constant channels."""
    scores = l1_scores(graph, names)
    for name in names:
        scale, count = torch.zeros(len(scores[name])), torch.zeros(len(scores[name]))
        for norm, slot_idx, own_idx in graph.norm_channels(name):
            if norm.weight is None or norm.running_var is None:
                continue
            factor = norm.weight.detach().abs() / torch.sqrt(norm.running_var + norm.eps)
            scale[slot_idx] += factor[own_idx].float()
            count[slot_idx] += 1
        factor = torch.where(count > 0, scale / count.clamp(min=1), torch.ones_like(scale))
        scores[name] = (torch.tensor(scores[name]) * factor).tolist()
    return scores


def inherit(teacher: nn.Module, widths: Mapping[str, int], scores: Mapping[str, Sequence[float]],
            input_size=None) -> tuple[nn.Module, dict[str, list[int]]]:
    """A copy of ``teacher`` in which each slot of ``widths`` keeps its ``width`` highest-scoring
    channels (and their weights); slots not named keep all theirs. Returns the student and,
    per slot named, the teacher channels it kept. A slot that concatenates several producers
    keeps a share of each, in proportion to its size (as ``make_student`` does)."""
    student = copy.deepcopy(teacher)
    graph = SlotGraph(student, input_size_of(teacher, input_size))
    check_widths(widths, {s.name: s.width for s in graph.slots})
    kept = {}
    for name, width in widths.items():
        score = list(scores[name]) if name in scores else [0.0] * graph[name].width
        if len(score) != graph[name].width:
            raise StaircaseError(f"slot {name!r}: {len(score)} channel scores for {graph[name].width} channels")
        segments = graph.segments(name)
        shares = proportional_split(width, [len(s) for s in segments])
        keep = sorted(i for seg, k in zip(segments, shares, strict=True)
                      for i in sorted(seg, key=lambda i: (-score[i], i))[:k])
        graph.prune(name, [i for i in range(graph[name].width) if i not in set(keep)])
        kept[name] = keep
    return student, kept


def inherited_student(teacher: nn.Module, spec: StudentSpec, checkpoint: str,
                      widths_file: WidthsFile | None = None, data: str | None = None,
                      held_out: tuple[float, int] = (0.0, 0)) -> nn.Module:
    """``spec``'s network with the trained ``teacher``'s weights (from ``checkpoint``) for the
    channels it keeps, and, given ``data`` (a ``--data`` spec), its BatchNorm statistics
    measured again on the training images (without ``held_out``'s share, split by its seed:
    the validation split stays unseen); the spec's provenance records where from, by
    which scores, which teacher channels each narrowed slot kept, and the re-estimation."""
    names = [n for n, w in spec.widths.items() if w != spec.teacher_widths[n]]
    scores, ranked_by = channel_scores(teacher, names, spec.teacher.input_size, widths_file)
    model, kept = inherit(teacher, {n: spec.widths[n] for n in names}, scores, spec.teacher.input_size)
    spec.provenance.init = {"from": str(checkpoint), "ranked_by": ranked_by, "kept": kept}
    if data is not None and names:
        from ..train.batchnorm import REESTIMATE_BATCH_SIZE, REESTIMATE_BATCHES, reestimate_batchnorm
        from ..train.data import load_data

        images = load_data(data, spec.teacher.input_size, val_split=held_out[0], seed=held_out[1], augment=False,
                           preprocessing=spec.teacher.preprocessing).train
        if reestimate_batchnorm(model, images):
            spec.provenance.init["batchnorm"] = {"data": data, "batches": REESTIMATE_BATCHES,
                                                 "batch_size": REESTIMATE_BATCH_SIZE}
            if held_out[0]:
                spec.provenance.init["batchnorm"].update(val_split=held_out[0], split_seed=held_out[1])
    return model


def save_student(spec: StudentSpec, model: nn.Module, path) -> tuple[Path, Path]:
    """The spec at ``path`` and, beside it (``S.json`` -> ``S.pt``), a checkpoint of the
    student's weights that ``evaluate``, ``export`` and ``train student --init`` take."""
    from ..train.checkpoint import save_checkpoint

    path = Path(path)
    spec.save(path)
    weights = save_checkpoint(path.with_suffix(".pt"), {"model": model.state_dict(), "epoch": 0,
                                                        "architecture": spec.teacher.to_dict(), "spec": spec.to_dict()})
    return path, weights
