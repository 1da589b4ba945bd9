"""One point of a comparison: a compressed network as its runtime runs it, and its figures.

``compare.json`` holds each point flat: the fields below, then what made it (``info``:
the widths, the quantiser's settings, ...) beside them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["Point"]


@dataclass
class Point:
    method: str
    setting: str
    top1: float  # % on the test split, computed by the runtime itself
    ratio: float  # its latency over the unmodified network's, timed block by block beside it
    ms: float  # its median in the three pairs it was first timed in, as it was made
    teacher_ms: float  # the unmodified network's median in those pairs
    size_bytes: int  # on disk
    compressed_bytes: int  # gzip-compressed
    peak_memory_bytes: int  # what loading and running it adds to a fresh process
    peak_rss_bytes: int
    precision: str
    threads: int
    test_images: int
    file: str  # relative to the comparison's folder
    ratio_1_thread: float | None = None  # with --single-thread
    ms_1_thread: float | None = None
    minutes: float | None = None  # to build and measure it
    # the comparison's closing measurement, every point in the same passes: ``ratio`` is then
    # their median, with its 95% interval, each pass's ratio, and the run's name
    ratio_ci95: list[float] | None = None
    ratio_passes: list[float] | None = None
    measurement: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def ratio_text(self) -> str:
        """The ratio as tables print it: with its 95% interval once timed with the others."""
        from ..design.measured import RatioInterval

        if self.ratio_ci95 is None:
            return f"{self.ratio:.3f}"
        return RatioInterval(self.ratio, *self.ratio_ci95, self.ratio_passes or []).text()

    def time_over(self, other: Point):
        """This point's time over ``other``'s pass by pass in the closing measurement
        (``measured.time_over``: a ``RatioInterval``); None when the two were not timed in
        the same run."""
        from ..design.measured import time_over

        if self.measurement is None or self.measurement != other.measurement or not self.ratio_passes:
            return None
        return time_over(self.ratio_passes, other.ratio_passes)

    def cost(self, name: str) -> float:
        """``ratio`` or ``size_bytes``: what a Pareto front is drawn against."""
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k != "info" and (v is not None or k == "minutes")}
        return {**flat, **self.info}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Point:
        known = {f.name for f in fields(cls)} - {"info"}
        return cls(**{k: v for k, v in d.items() if k in known}, info={k: v for k, v in d.items() if k not in known})
