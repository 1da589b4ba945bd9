"""Parameter and multiply-accumulate counts of any network at its input size.

MACs count convolutions and linear layers, per image (batch 1), the convention of the
papers' tables (ResNet-34: 3.6 G); normalisation, activation and pooling are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["count_params", "count_macs", "count_outputs"]


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def count_outputs(model: nn.Module, input_size: Sequence[int]) -> int:
    """The size of the network's output for one image of ``input_size`` (a classifier's classes)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_size))
    finally:
        model.train(was_training)
    return int(out.shape[-1])


def count_macs(model: nn.Module, input_size: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on one image of ``input_size`` (C, H, W)."""
    total = 0

    def conv_hook(m: nn.modules.conv._ConvNd, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = 1
        for k in m.kernel_size:
            kernel *= k
        total += output.numel() // output.shape[0] * (m.in_channels // m.groups) * kernel

    def linear_hook(m: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() // output.shape[0] * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
