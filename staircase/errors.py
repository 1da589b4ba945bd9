"""One exception tree for every error a user can cause.

The CLI prints a :class:`StaircaseError`'s message on one line and exits non-zero;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "StaircaseError",
    "UnknownModelError",
    "SlotError",
    "WidthError",
    "SpecError",
    "MissingDependencyError",
]


class StaircaseError(Exception):
    """Base of every error caused by input a user can fix."""


class UnknownModelError(StaircaseError, KeyError):
    """A model name or reference that resolves to nothing."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SlotError(StaircaseError):
    """A model whose channel groups cannot be found or changed."""


class WidthError(StaircaseError, ValueError):
    """A requested width that a slot cannot take."""


class SpecError(StaircaseError, ValueError):
    """A student spec (or other project file) that is malformed or does not match."""


class MissingDependencyError(StaircaseError, ImportError):
    """An optional package that a feature needs is not installed."""


def require(module: str, feature: str, extra: str | None = None):
    """Import an optional dependency, or fail with the command that installs it (torchvision
    and timm through ``import_vision_package``, which makes them importable beside any torch)."""
    import importlib

    from ._compat import import_vision_package

    vision = module.split(".")[0] in ("torchvision", "timm")
    try:
        return import_vision_package(module) if vision else importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'staircase[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(
            f"{feature} needs the package '{module}', which is not installed ({exc}); "
            f"install it with: {hint}"
        ) from exc
