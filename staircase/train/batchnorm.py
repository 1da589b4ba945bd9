"""BatchNorm statistics re-estimated after surgery.

A student that inherits the teacher's channels keeps the teacher's running means and
variances, measured on the teacher's own activations: once a slot is narrowed, the layers
after it see sums over fewer channels and those statistics no longer fit, so the student
starts near chance. Running a few training batches through it in train mode, with no
gradient step, measures them again (the cumulative average over the batches, not a moving
one); the weights do not change.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["REESTIMATE_BATCHES", "REESTIMATE_BATCH_SIZE", "reestimate_batchnorm"]

REESTIMATE_BATCHES = 8  # 1,024 images: the statistics stop moving well before that
REESTIMATE_BATCH_SIZE = 128

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, data: Dataset, batches: int = REESTIMATE_BATCHES,
                         batch_size: int = REESTIMATE_BATCH_SIZE, seed: int = 0,
                         device: str | torch.device = "cpu") -> int:
    """Reset every BatchNorm's running statistics and measure them again over ``batches``
    batches of ``data`` (a seeded shuffle); the number of BatchNorm layers, 0 when there are
    none (nothing is run then). The model ends in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, _NORMS) and m.track_running_stats]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    model.train()
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=len(data) > batch_size,
                        generator=torch.Generator().manual_seed(seed))
    try:
        for i, (x, _) in enumerate(loader):
            if i >= batches:
                break
            model(x.to(device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return len(norms)
