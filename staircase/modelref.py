"""Turning what a user types for a model into a network.

A model reference is a zoo name (``wrn_40_2``), a factory ``package.module:function``
(``torchvision.models:resnet50``, ``my_project.nets:make_net``), or the path of a student
spec (``students/wrn_40_2-half.json``); the serialisable part of a resolved model is its
:class:`~staircase.architecture.Architecture`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .architecture import Architecture
from .errors import StaircaseError
from .models import is_model
from .settings import option
from .spec import StudentSpec

__all__ = ["Architecture", "ModelSettings", "ResolvedModel", "resolve_model", "parse_input_shape"]


@dataclass(kw_only=True)
class ModelSettings:
    """The network a job works on, as a user names it (the jobs' settings extend this)."""

    model: str = option(positional=True, metavar="MODEL",
                        help="zoo name, package.module:factory, or a student spec file")
    num_classes: int | None = option(None, help="classifier outputs (default: the model's own)")
    input_shape: str | None = option(None, metavar="C,H,W",
                                     help="input size for models that do not declare one (default: the model's own)")

    def resolve(self) -> ResolvedModel:
        return resolve_model(self.model, self.num_classes, parse_input_shape(self.input_shape))


@dataclass
class ResolvedModel:
    model: nn.Module
    architecture: Architecture
    spec: StudentSpec | None = None  # when the reference was a spec file


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
