"""Models register themselves by factory-function name and are created by name.

As in timm: ``@register_model`` on a factory, ``create_model(name, num_classes=...)``,
``list_models("wrn*")``.  Names that follow a family pattern (``wrn_D_K``) are
created by that family's pattern factory; unknown names suggest close matches.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import UnknownModelError

__all__ = ["register_model", "register_pattern", "create_model", "list_models", "is_model", "model_description"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_PATTERNS: list[tuple[re.Pattern[str], Callable[..., nn.Module], str]] = []


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a zoo factory under its function name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


@dataclass(frozen=True)
class _PatternMatch:
    factory: Callable[..., nn.Module]
    args: tuple[int, ...]


def register_pattern(regex: str, description: str):
    """Register a factory for every name matching ``regex``; its integer groups are passed in."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _PATTERNS.append((re.compile(regex), fn, description))
        return fn

    return wrap


def _match_pattern(name: str) -> _PatternMatch | None:
    for regex, fn, _ in _PATTERNS:
        m = regex.fullmatch(name)
        if m:
            return _PatternMatch(fn, tuple(int(g) for g in m.groups()))
    return None


def is_model(name: str) -> bool:
    return name in _MODELS or _match_pattern(name) is not None


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style wildcard, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_description(name: str) -> str:
    """The first line of a registered model's docstring ("" when it has none)."""
    lines = (_MODELS[name].__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def create_model(name: str, **kwargs) -> nn.Module:
    """Create a zoo model by name, e.g. ``create_model("wrn_40_2", num_classes=100)``."""
    if name in _MODELS:
        return _MODELS[name](**kwargs)
    match = _match_pattern(name)
    if match is not None:
        try:
            return match.factory(*match.args, **kwargs)
        except ValueError as exc:  # e.g. a depth the family cannot have
            raise UnknownModelError(f"model {name!r}: {exc}") from exc
    close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    patterns = "; ".join(desc for _, _, desc in _PATTERNS)
    raise UnknownModelError(
        f"unknown model {name!r}: {hint}`staircase models` lists the zoo"
        + (f" (also: {patterns})" if patterns else "")
    )
