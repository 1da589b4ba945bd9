"""Baseline width choices a staircase student is compared against."""

from __future__ import annotations

from collections.abc import Iterable

from ..slots import Slot


def uniform_widths(slots: Iterable[Slot], scale: float) -> dict[str, int]:
    """Every slot scaled by the same factor (rounded, at least one channel)."""
    if not 0 < scale <= 1:
        from ..errors import WidthError

        raise WidthError(f"scale {scale} must be in (0, 1]")
    return {s.name: max(1, round(s.width * scale)) for s in slots}
