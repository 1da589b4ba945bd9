"""What a network is, written down: a zoo name or a ``package.module:factory`` path, the
keyword arguments it takes and the input size; enough to build the same network again on
another machine (student specs and checkpoints carry it)."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ._compat import import_vision_package
from .errors import SpecError, UnknownModelError
from .models import create_model
from .preprocessing import Preprocessing
from .slots import input_size_of

__all__ = ["Architecture", "call_factory"]


@dataclass(frozen=True)
class Architecture:
    """A zoo name or a ``module:factory`` path, the keyword arguments it takes, the input size,
    and the preprocessing its weights expect where the model declares one (timm's)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, ...] = ()
    preprocessing: Preprocessing | None = None

    @property
    def is_zoo(self) -> bool:
        return ":" not in self.name

    def build(self) -> nn.Module:
        model = create_model(self.name, **self.kwargs) if self.is_zoo else call_factory(self.name, self.kwargs)
        if not self.input_size:
            object.__setattr__(self, "input_size", input_size_of(model, None))
        if self.preprocessing is None:
            object.__setattr__(self, "preprocessing", Preprocessing.of_model(model))
        return model

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "kwargs": dict(self.kwargs), "input_size": list(self.input_size)}
        if self.preprocessing is not None:
            d["preprocessing"] = self.preprocessing.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Architecture:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise SpecError(f"{where}: 'teacher' must be an object with a string 'name'")
        kwargs = d.get("kwargs", {})
        size = d.get("input_size", [])
        if not isinstance(kwargs, dict):
            raise SpecError(f"{where}: 'teacher.kwargs' must be an object")
        if not (isinstance(size, list) and len(size) == 3 and all(isinstance(s, int) and s > 0 for s in size)):
            raise SpecError(f"{where}: 'teacher.input_size' must be [C, H, W] of positive integers, got {size!r}")
        pre = d.get("preprocessing")
        return cls(d["name"], kwargs, tuple(size), None if pre is None else Preprocessing.from_dict(pre, where))



def call_factory(path: str, kwargs: dict[str, Any]) -> nn.Module:
    """Import ``package.module:function`` and call it with the keyword arguments it accepts."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UnknownModelError(f"model factory {path!r} must look like 'package.module:function'")
    try:
        if module_name.split(".")[0] in ("torchvision", "timm"):
            module = import_vision_package(module_name)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownModelError(f"cannot import {module_name!r} for model {path!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise UnknownModelError(f"{module_name!r} has no attribute {attr!r} (model {path!r})")
    try:
        params = inspect.signature(factory).parameters
        accepted = {k: v for k, v in kwargs.items() if k in params or any(p.kind == p.VAR_KEYWORD for p in params.values())}
    except (TypeError, ValueError):
        accepted = kwargs
    model = factory(**accepted)
    if not isinstance(model, nn.Module):
        raise UnknownModelError(f"{path!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
