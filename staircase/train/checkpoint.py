"""Training checkpoints: one file holds the weights, the optimiser, the scheduler, the RNG
states and what network it is (architecture, or the whole student spec), so that
``evaluate``, ``export`` and a student's ``--teacher`` can rebuild the model from the file
alone. Plain state dicts (and dicts with a ``model`` entry) are read too.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import StaircaseError
from ..files import atomic_write

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "read_checkpoint", "load_weights", "mismatch", "model_from_checkpoint",
           "rng_state", "set_rng_state"]

CHECKPOINT_FORMAT = "staircase-checkpoint"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) atomically: a kill mid-write keeps the old file."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    return atomic_write(path, lambda f: torch.save(state, f))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents; a plain state dict comes back as ``{"model": state_dict}``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StaircaseError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one message
        raise StaircaseError(f"checkpoint {path} cannot be read as a torch checkpoint ({type(exc).__name__}); "
                             "is it complete?") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        return state
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        return {"model": state}
    raise StaircaseError(f"checkpoint {path} holds neither a state dict nor a dict with 'model'")


def load_weights(model: nn.Module, path: str | Path, name: str, state: dict[str, Any] | None = None) -> nn.Module:
    """Load the checkpoint's weights into ``model`` (called ``name`` in errors)."""
    state = read_checkpoint(path) if state is None else state
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        why = mismatch(model.state_dict(), state["model"]) or str(exc).strip().splitlines()[0][:200]
        hint = " (--num-classes: its classifier has other outputs)" if _classifier_only(model, state["model"]) else ""
        raise StaircaseError(f"checkpoint {path} does not fit {name}: {why}; is it another model's checkpoint?{hint}") \
            from None
    return model


def mismatch(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    """What differs between a model's state dict and a checkpoint's, in a few words."""
    missing = [k for k in mine if k not in theirs]
    unexpected = [k for k in theirs if k not in mine]
    shapes = [f"{k}: {list(theirs[k].shape)} in the checkpoint, {list(mine[k].shape)} in the model"
              for k in mine if k in theirs and hasattr(theirs[k], "shape") and theirs[k].shape != mine[k].shape]
    parts = [f"{len(missing)} weights missing (e.g. {missing[0]})" if missing else "",
             f"{len(unexpected)} not in the model (e.g. {unexpected[0]})" if unexpected else "",
             f"{len(shapes)} of another shape (e.g. {shapes[0]})" if shapes else ""]
    return ", ".join(p for p in parts if p)


def model_from_checkpoint(path: str | Path, state: dict[str, Any] | None = None):
    """(model with the checkpoint's weights, its Architecture, its StudentSpec or None) from a
    staircase checkpoint alone (``state``: its contents, when already read)."""
    from ..architecture import Architecture
    from ..spec import StudentSpec

    state = read_checkpoint(path) if state is None else state
    if state.get("format") != CHECKPOINT_FORMAT:
        raise StaircaseError(f"checkpoint {path} does not say which network it is (a bare state dict); "
                             "load it into a model built by hand, or train with `staircase train`")
    spec = StudentSpec.from_dict(state["spec"], f"checkpoint {path}") if state.get("spec") else None
    if spec is not None:
        model, arch = spec.build(), spec.teacher
    else:
        arch = Architecture.from_dict(state["architecture"], f"checkpoint {path}")
        model = arch.build()
    model.input_size = tuple(arch.input_size)
    return load_weights(model, path, spec.name if spec else arch.name, state), arch, spec


def rng_state() -> dict[str, Any]:
    """Every random generator a run draws from, in a form ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": _tuples_to_lists(random.getstate()),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_lists_to_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples_to_lists(x):
    return [_tuples_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def _lists_to_tuples(x):
    return tuple(_lists_to_tuples(v) for v in x) if isinstance(x, list) else x


def _classifier_only(model, theirs: dict[str, Any]) -> bool:
    """Whether the only tensors of another shape are those of the model's last linear layer."""
    from torch import nn

    mine = model.state_dict()
    differ = {k for k in mine if k in theirs and hasattr(theirs[k], "shape") and theirs[k].shape != mine[k].shape}
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return bool(differ) and set(mine) <= set(theirs) and bool(linears) and \
        differ <= {f"{linears[-1]}.weight", f"{linears[-1]}.bias"}
