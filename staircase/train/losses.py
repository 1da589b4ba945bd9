"""Distillation losses: attention transfer (Zagoruyko & Komodakis 2017) and knowledge
distillation (Hinton et al. 2015), with cross-entropy; any combination."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["attention_map", "at_loss", "kd_loss"]


def attention_map(x: torch.Tensor) -> torch.Tensor:
    """Per sample: the mean over channels of the squared activations, flattened and L2-normalised."""
    return F.normalize(x.pow(2).mean(1).flatten(1), dim=1)


def at_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over attention points of the mean squared difference of the attention maps.

    Multiply by beta (1e3 in the reference) in the total loss. Where a pair's maps differ in
    size, the larger is average-pooled to the smaller (with a warning: the reference pairs
    points of equal resolution).
    """
    if len(student_feats) != len(teacher_feats):
        raise ValueError(f"{len(student_feats)} student attention points vs {len(teacher_feats)} of the teacher")
    total = student_feats[0].new_zeros(())
    for i, (s, t) in enumerate(zip(student_feats, teacher_feats, strict=True)):
        if s.shape[2:] != t.shape[2:]:
            warnings.warn(f"attention point {i}: student map {tuple(s.shape[2:])} vs teacher {tuple(t.shape[2:])}; "
                          "pooling the larger to the smaller", stacklevel=2)
            size = (min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3]))
            s, t = F.adaptive_avg_pool2d(s, size), F.adaptive_avg_pool2d(t, size)
        total = total + (attention_map(s) - attention_map(t.detach())).pow(2).mean()
    return total


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """Hinton's soft-target term: KL(softmax(t/T) || softmax(s/T)) * T^2 (mean over the batch).
    Weight it with alpha and the cross-entropy with (1 - alpha) in the total loss."""
    return F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits.detach() / T, dim=1),
                    reduction="batchmean") * T * T
