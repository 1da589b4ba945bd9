"""Top-1 / top-5 accuracy and cross-entropy of a network over a dataset."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["evaluate", "evaluate_checkpoint", "topk_correct"]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    """How many samples have their label among the top k logits, for each k (k capped at the classes)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == labels[:, None]
    return [int(hits[:, :k].any(dim=1).sum()) for k in ks]


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int = 256, device: str | torch.device = "cpu",
             workers: int = 0, channels_last: bool = False, per_image: bool = False) -> dict:
    """``{"loss", "top1", "top5", "images"}`` of ``model`` (in eval mode) over ``data``; accuracies
    in %. ``per_image``: also ``"correct"``, whether each image's top-1 is its label, in the
    data's order (what a paired comparison of two networks on the same images needs)."""
    was_training = model.training
    model.eval()
    loss = 0.0
    correct = [0, 0]
    count = 0
    hits: list[bool] = []
    try:
        # one batch ahead per loader process: the forward pass is slower than decoding, and
        # memory stays at (processes + 1) batches whatever the dataset's size
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers,
                            prefetch_factor=1 if workers else None)
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x).float()
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            for i, c in enumerate(topk_correct(logits, y)):
                correct[i] += c
            if per_image:
                hits += (logits.argmax(1) == y).tolist()
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "images": 0,
                **({"correct": []} if per_image else {})}
    result = {"loss": loss / count, "top1": 100.0 * correct[0] / count, "top5": 100.0 * correct[1] / count,
              "images": count}
    return {**result, "correct": hits} if per_image else result


def evaluate_checkpoint(checkpoint, data: str, val_split: float = 0.0, split_seed: int = 0, batch_size: int = 256,
                        workers: int | None = None, per_image: bool = False) -> dict:
    """``evaluate`` of a staircase checkpoint's network over the test set of ``data`` (a
    ``--data`` spec; with ``val_split``, that held-out share of the training set), prepared
    as the network's architecture says; ``"data"`` names it. ``workers``: loader processes
    (default ``default_workers``)."""
    from .checkpoint import model_from_checkpoint
    from .data import default_workers, load_data

    model, arch, _ = model_from_checkpoint(checkpoint)
    bundle = load_data(data, arch.input_size, val_split=val_split, seed=split_seed, augment=False,
                       preprocessing=arch.preprocessing)
    workers = default_workers(bundle.test) if workers is None else workers
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"data": bundle.name, **evaluate(model, bundle.test, batch_size, device, workers, per_image=per_image)}
