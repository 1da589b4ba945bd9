"""Turning what a user types for a model into a network.

A model reference is a zoo name (``wrn_40_2``), a factory ``package.module:function``
(``torchvision.models:resnet50``, ``my_project.nets:make_net``), or the path of a student
spec (``students/wrn_40_2-half.json``). :class:`Architecture` is the serialisable part:
enough to build the same network again on another machine.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ._compat import import_vision_package
from .errors import SpecError, StaircaseError, UnknownModelError
from .models import create_model, is_model
from .slots import _input_size

__all__ = ["Architecture", "ResolvedModel", "resolve_model", "parse_input_shape"]


@dataclass(frozen=True)
class Architecture:
    """A zoo name or a ``module:factory`` path, the keyword arguments it takes, and the input size."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, ...] = ()

    @property
    def is_zoo(self) -> bool:
        return ":" not in self.name

    def build(self) -> nn.Module:
        model = create_model(self.name, **self.kwargs) if self.is_zoo else _call_factory(self.name, self.kwargs)
        if not self.input_size:
            object.__setattr__(self, "input_size", _input_size(model, None))
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs), "input_size": list(self.input_size)}

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
        return cls(d["name"], kwargs, tuple(size))


@dataclass
class ResolvedModel:
    model: nn.Module
    architecture: Architecture
    spec: Any = None  # the StudentSpec when the reference was a spec file


def _call_factory(path: str, kwargs: dict[str, Any]) -> nn.Module:
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


def parse_input_shape(text: str | None) -> tuple[int, int, int] | None:
    """``"3,224,224"`` -> ``(3, 224, 224)``; errors name the bad text."""
    if text is None:
        return None
    try:
        dims = tuple(int(t) for t in text.replace("x", ",").split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise StaircaseError(f"input shape {text!r} must be C,H,W with positive integers, e.g. 3,224,224")
    return dims  # type: ignore[return-value]


def resolve_model(
    ref: str, num_classes: int | None = None, input_size: tuple[int, ...] | None = None
) -> ResolvedModel:
    """Build the network a model reference names (see the module docstring)."""
    if ref.endswith(".json") or (Path(ref).is_file() and not is_model(ref)):
        from .spec import StudentSpec

        spec = StudentSpec.load(ref)
        return ResolvedModel(spec.build(), spec.teacher, spec)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    arch = Architecture(ref, kwargs, tuple(input_size or ()))
    model = arch.build()
    if input_size is not None:
        model.input_size = tuple(input_size)  # what the slots and counts trace with
    elif not hasattr(model, "input_size"):
        model.input_size = arch.input_size
    return ResolvedModel(model, arch)
