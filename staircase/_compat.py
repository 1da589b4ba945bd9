"""Making the optional torchvision / timm importable next to a torch they were not built for.

Some torchvision wheels register compiled operators (``torchvision::nms``) whose schema the
running torch does not know, and ``import torchvision`` then fails. Declaring the two
schemas first lets its pure-Python parts (models, transforms) and timm import; the compiled
detection operators stay unavailable, which the model zoo does not need.
"""

from __future__ import annotations

import importlib
import sys

_SHIM = None


def import_vision_package(name: str):
    """Import ``torchvision``/``timm`` (or a submodule), declaring torchvision's op schemas if needed."""
    global _SHIM
    try:
        return importlib.import_module(name)
    except (RuntimeError, AttributeError) as exc:
        if "torchvision::" not in str(exc) and "nms" not in str(exc):
            raise
    import torch

    for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[mod]
    if _SHIM is None:
        _SHIM = torch.library.Library("torchvision", "DEF")
        _SHIM.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _SHIM.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return importlib.import_module(name)
