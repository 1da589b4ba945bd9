"""Unstructured weight pruning: global magnitude masks, held while a network fine-tunes.

The weights of every convolution and linear layer are ranked together by magnitude and the
smallest ``sparsity`` share of them set to zero (global magnitude pruning, as in Han et al.
and ``torch.nn.utils.prune.global_unstructured``). The mask is a function of the weights it
was computed from, so a fine-tuning run that starts from the same weights computes the same
mask again when it resumes; after every optimiser step the masked weights are zeroed, so
they stay zero through fine-tuning, checkpoints and export.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import StaircaseError

__all__ = ["WeightMasks", "check_sparsity", "prunable_weights", "zero_share"]


def check_sparsity(value: float, name: str = "--sparsity") -> float:
    """``value`` as a share in [0, 1), or one clear error."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise StaircaseError(f"{name} {value!r} must be a number in [0, 1), e.g. 0.9 for 90% zeros") from None
    if not 0 <= share < 1:
        raise StaircaseError(f"{name} {value} must be in [0, 1) (the share of weights set to zero, e.g. 0.9); "
                             "1 would remove every weight")
    return share


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weight of every convolution and linear layer, by module name (biases and norms are
    left dense, as every magnitude-pruning tool does)."""
    return {name: m.weight for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}


def zero_share(model: nn.Module) -> float:
    """The share of the prunable weights that are exactly zero."""
    weights = prunable_weights(model).values()
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


class WeightMasks:
    """The global magnitude mask of ``model``'s prunable weights at ``sparsity``."""

    def __init__(self, model: nn.Module, sparsity: float):
        self.sparsity = check_sparsity(sparsity)
        self.weights = prunable_weights(model)
        if not self.weights:
            raise StaircaseError("weight pruning needs convolution or linear layers; this model has none")
        magnitudes = torch.cat([w.detach().abs().flatten() for w in self.weights.values()])
        drop = int(round(self.sparsity * magnitudes.numel()))
        if drop == 0:
            self.masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in self.weights.items()}
        else:
            # the drop-th smallest magnitude; ties at it are broken by position so exactly
            # ``drop`` weights go (a network with many equal weights still gets its sparsity)
            order = torch.argsort(magnitudes, stable=True)[:drop]
            keep = torch.ones(magnitudes.numel(), dtype=torch.bool)
            keep[order] = False
            self.masks, start = {}, 0
            for name, w in self.weights.items():
                self.masks[name] = keep[start:start + w.numel()].view_as(w).to(w.device)
                start += w.numel()
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the masked weights (where the mask is False)."""
        for name, w in self.weights.items():
            mask = self.masks[name]
            if mask.device != w.device:
                mask = self.masks[name] = mask.to(w.device)
            w.mul_(mask)

    def hold(self, optimizer: torch.optim.Optimizer):
        """Keep the mask through training: the masked weights are zeroed after every step
        of ``optimizer`` (momentum and weight decay would otherwise revive them). Returns
        the hook's handle."""
        return optimizer.register_step_post_hook(lambda *_: self.apply())

    def per_layer(self) -> dict[str, float]:
        """The share of zeros each layer got (global pruning spreads them unevenly)."""
        return {n: 1 - float(m.float().mean()) for n, m in self.masks.items()}
