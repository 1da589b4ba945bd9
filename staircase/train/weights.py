"""The import job: a pretrained network's weights (torchvision, timm, any state dict) become a
staircase checkpoint that every command taking a checkpoint reads (``evaluate``, ``prune``,
``design --inherit``, ``train student --teacher``, ``compare``, ``export``).

A weights file is a state dict saved with ``torch.save`` (``.pt``/``.pth``; a checkpoint
dict holding it under ``state_dict`` or ``model`` is read too) or a ``.safetensors`` file.
Prefixes that wrappers add (``module.`` from DistributedDataParallel, ``_orig_mod.`` from
``torch.compile``) are stripped. timm's own pretrained weights are read from its local cache,
never downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import StaircaseError, require
from ..modelref import ModelSettings, ResolvedModel
from ..settings import option
from .checkpoint import mismatch, save_checkpoint

__all__ = ["ImportSettings", "import_weights", "read_state_dict"]

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(kw_only=True)
class ImportSettings(ModelSettings):
    out: str = option(help="the staircase checkpoint to write (e.g. teacher.pt)")
    weights: str | None = option(None, metavar="FILE",
                                 help="the weights: a state dict (.pt, .pth; a dict holding 'state_dict' or 'model' "
                                      "is read too) or a .safetensors file")
    pretrained: bool = option(False, help="timm models: timm's pretrained weights from its local cache (offline)")

    def check(self) -> None:
        if (self.weights is None) == (not self.pretrained):
            raise StaircaseError("give the weights: --weights FILE, or --pretrained for a timm model's cached ones")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, wrapper prefixes stripped; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise StaircaseError(f"--weights {path} does not exist")
    if path.suffix == ".safetensors":
        safetensors = require("safetensors.torch", "reading .safetensors weights", "vision")
        try:
            state: Any = safetensors.load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets one message
            raise StaircaseError(f"--weights {path} cannot be read as safetensors ({type(exc).__name__})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise StaircaseError(f"--weights {path} cannot be read as a torch state dict ({type(exc).__name__}); "
                                 "save it with torch.save(model.state_dict(), FILE)") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StaircaseError(f"--weights {path} holds no state dict (a mapping of names to tensors)")
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _timm_pretrained(ref: str, num_classes: int | None) -> dict[str, torch.Tensor]:
    """timm's pretrained weights for ``ref`` (``timm.models:NAME``) from its local cache."""
    from .._compat import import_vision_package

    module, _, name = ref.partition(":")
    if module.split(".")[0] != "timm":
        raise StaircaseError(f"--pretrained reads timm's cached weights; {ref} is not a timm model "
                             "(timm.models:NAME): give --weights FILE")
    timm = import_vision_package("timm")
    import socket

    import huggingface_hub.constants as hub

    was_offline, was_timeout = hub.HF_HUB_OFFLINE, socket.getdefaulttimeout()
    hub.HF_HUB_OFFLINE = True  # read when a download is asked for: the cache or nothing
    socket.setdefaulttimeout(2)  # weights timm keeps at a plain URL: no network here, fail fast
    try:
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        return timm.create_model(name, pretrained=True, **kwargs).state_dict()
    except Exception as exc:  # noqa: BLE001 - a missing cache entry surfaces as many error types
        raise StaircaseError(f"timm's cache holds no pretrained weights for {name} ({type(exc).__name__}); where "
                             f"there is a network, timm.create_model('{name}', pretrained=True) downloads them; "
                             "then pass the file it saved as --weights FILE") from None
    finally:
        hub.HF_HUB_OFFLINE = was_offline
        socket.setdefaulttimeout(was_timeout)


def import_weights(settings: ImportSettings, log: Callable[[str], None] = print) -> ResolvedModel:
    """The network ``settings`` name with the weights loaded, written as a staircase checkpoint."""
    from ..files import check_writable

    s = settings
    s.check()
    out = check_writable(s.out)
    state = read_state_dict(s.weights) if s.weights else _timm_pretrained(s.model, s.num_classes)
    resolved = s.resolve()
    if resolved.spec is not None:
        raise StaircaseError(f"{s.model} is a student spec; import weights into a zoo or factory model")
    source = s.weights or f"timm's pretrained {s.model}"
    try:
        resolved.model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        why = mismatch(resolved.model.state_dict(), state) or str(exc).strip().splitlines()[0][:200]
        raise StaircaseError(f"{source} does not fit {s.model}: {why}; give the weights of this architecture "
                             "(and --num-classes for its classifier)") from None
    arch = resolved.architecture
    save_checkpoint(out, {"model": resolved.model.state_dict(), "architecture": arch.to_dict(),
                          "imported_from": str(source)})
    log(f"wrote {out}: {s.model} ({sum(p.numel() for p in resolved.model.parameters()):,} params) with the weights "
        f"of {source}")
    if arch.preprocessing is not None:
        pre = arch.preprocessing
        log(f"  its preprocessing, recorded: mean {pre.mean}, std {pre.std}, crop {pre.crop_pct}, {pre.interpolation}")
    return resolved
