"""The widths file: one width per slot, with what a pruning run knows of its channels.

``staircase prune`` writes it; ``staircase student --widths`` and ``staircase design
--widths`` read it. A bare ``{slot: width}`` object, or any JSON object with a ``widths``
object (a student spec, say), is read as a widths file too. Fields (``docs/formats.md``):
``format`` "staircase-widths", ``version``, ``model``, ``method``, ``widths``, and optionally
``saliency`` (per slot, one score per channel: the kept ones first, then the removed ones
in the order they went), ``channels`` (per slot, the teacher channel each saliency score
belongs to: what a student that inherits the teacher's weights keeps; from version 2),
``removed`` (one slot name per channel removed, in order), ``target``, ``reached``,
``steps``, ``seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SpecError
from .files import atomic_write_json, read_json

__all__ = ["WIDTHS_FORMAT", "WIDTHS_VERSION", "WidthsFile"]

WIDTHS_FORMAT = "staircase-widths"
WIDTHS_VERSION = 2  # 2 added ``channels``; files without a version read as version 1


@dataclass
class WidthsFile:
    widths: dict[str, int]
    saliency: dict[str, list[float]] | None = None
    removed: list[str] | None = None
    method: str = "given widths"
    model: str | None = None
    run: dict[str, Any] = field(default_factory=dict)  # the pruning run's target, reached, steps, seconds
    channels: dict[str, list[int]] | None = None  # the teacher channel of each saliency score

    @classmethod
    def load(cls, path: str | Path) -> WidthsFile:
        data = read_json(path, "widths file")
        return cls.from_data(data, path)

    @classmethod
    def from_data(cls, data: Any, path: str | Path) -> WidthsFile:
        """A parsed widths file (``path`` names it in errors)."""
        if isinstance(data, dict) and data.get("format") == WIDTHS_FORMAT:
            version = data.get("version", 1)
            if not isinstance(version, int) or version > WIDTHS_VERSION:
                raise SpecError(f"widths file {path} has version {version!r}; this staircase reads up to "
                                f"{WIDTHS_VERSION}: upgrade staircase, or prune again with this one")
        wrapped = isinstance(data, dict) and isinstance(data.get("widths"), dict)
        widths = data["widths"] if wrapped else data
        if not isinstance(widths, dict) or not widths:
            raise SpecError(f"widths file {path} must hold a non-empty JSON object {{slot: width}}")
        bad = sorted(k for k, v in widths.items() if not isinstance(v, int) or isinstance(v, bool))
        if bad:
            raise SpecError(f"widths file {path}: width of slot {bad[0]!r} is {widths[bad[0]]!r}, not an integer")
        if not wrapped:
            return cls(dict(widths))
        saliency, removed = data.get("saliency"), data.get("removed")
        if saliency is not None and not (isinstance(saliency, dict) and all(
                isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in saliency.values())):
            raise SpecError(f"widths file {path}: 'saliency' must map slots to lists of numbers")
        if removed is not None and not (isinstance(removed, list) and all(isinstance(x, str) for x in removed)):
            raise SpecError(f"widths file {path}: 'removed' must be a list of slot names")
        channels = data.get("channels")
        if channels is not None and not (isinstance(channels, dict) and all(
                isinstance(v, list) and all(isinstance(x, int) for x in v) for v in channels.values())):
            raise SpecError(f"widths file {path}: 'channels' must map slots to lists of channel indices")
        model = data.get("model")
        run = {k: data[k] for k in ("target", "reached", "steps", "seconds") if k in data}
        return cls(dict(widths), saliency, removed, str(data.get("method", "given widths")),
                   model if isinstance(model, str) else None, run, channels)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": WIDTHS_FORMAT, "version": WIDTHS_VERSION, "model": self.model,
                             "method": self.method, **self.run, "widths": self.widths}
        if self.saliency is not None:
            d["saliency"] = self.saliency
        if self.channels is not None:
            d["channels"] = self.channels
        if self.removed is not None:
            d["removed"] = self.removed
        return d

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())
