"""The timing protocol: warm up, time blocks of calls, repeat until the spread settles.

Like ``torch.utils.benchmark``'s adaptive autorange: each sample times a block of calls
long enough for the clock to resolve, samples are taken until the interquartile range
falls under ``target_spread`` of the median or the time cap is reached, and a point whose
spread never settles is flagged ``noisy`` rather than trusted. Medians, not means, are
reported, as OpenVINO's benchmark_app does.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Measurement", "TimingProtocol", "measure"]


@dataclass(frozen=True)
class TimingProtocol:
    warmup_s: float = 0.02
    min_block_s: float = 0.002  # one sample times at least this long a block of calls
    min_samples: int = 7
    max_samples: int = 60
    max_s: float = 1.0  # per point and round
    target_spread: float = 0.05  # IQR / median under which a point is settled

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    median_ms: float
    iqr_ms: float
    n: int
    noisy: bool

    @property
    def spread(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _iqr(values: list[float]) -> float:
    if len(values) < 4:
        return max(values) - min(values)
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def measure(
    run: Callable[[], object],
    protocol: TimingProtocol = TimingProtocol(),
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Time ``run`` (one inference) per the protocol; ``sync`` waits for the device (CUDA)."""
    sync = sync or (lambda: None)
    start = clock()
    calls = 0
    while calls < 2 or clock() - start < protocol.warmup_s:
        run()
        calls += 1
    sync()
    per_call = max((clock() - start) / calls, 1e-7)
    number = max(1, int(protocol.min_block_s / per_call))
    samples: list[float] = []
    began = clock()
    while len(samples) < protocol.max_samples:
        t0 = clock()
        for _ in range(number):
            run()
        sync()
        samples.append((clock() - t0) / number * 1e3)
        if len(samples) >= protocol.min_samples:
            settled = _iqr(samples) <= protocol.target_spread * statistics.median(samples)
            if settled or clock() - began > protocol.max_s:
                break
    median = statistics.median(samples)
    iqr = _iqr(samples)
    return Measurement(median, iqr, len(samples) * number, iqr > protocol.target_spread * median)
