"""The timing protocol: warm up, time blocks of calls, repeat until the spread settles.

Like ``torch.utils.benchmark``'s adaptive autorange: each sample times a block of calls
long enough for the clock to resolve, samples are taken until the interquartile range
falls under ``target_spread`` of the median or the time cap is reached, and a point whose
spread never settles is flagged ``noisy`` rather than trusted. Medians, not means, are
reported, as OpenVINO's benchmark_app does.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["FULL_NETWORK_PROTOCOL", "TIMINGS", "Measurement", "Relative", "Repeated", "Timing", "TimingProtocol", "measure",
           "measure_network", "measure_repeated", "median_stderr", "time_relative"]


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
    n: int  # calls timed
    noisy: bool
    samples: int = 0  # timed blocks the median and IQR come from
    # against a reference (see ``measure``): median and IQR of this/reference per block pair,
    # and the reference's own median
    ratio: float | None = None
    ratio_iqr: float | None = None
    ref_ms: float | None = None

    @property
    def stderr_ms(self) -> float:
        return median_stderr(self.iqr_ms, self.samples)

    @property
    def spread(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def median_stderr(iqr: float, samples: int) -> float:
    """Standard error of a sample median: 1.2533 sigma / sqrt(n), sigma estimated as IQR / 1.349."""
    return 0.929 * iqr / math.sqrt(max(samples, 1))


def _iqr(values: list[float]) -> float:
    if len(values) < 4:
        return max(values) - min(values)
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def _calls_per_block(run, protocol, sync, clock) -> int:
    """Warm ``run`` up and return how many calls make a block of at least ``min_block_s``."""
    start = clock()
    calls = 0
    while calls < 2 or clock() - start < protocol.warmup_s:
        run()
        calls += 1
    sync()
    per_call = max((clock() - start) / calls, 1e-7)
    return max(1, int(protocol.min_block_s / per_call))


def _time_block(run, number, sync, clock) -> float:
    t0 = clock()
    for _ in range(number):
        run()
    sync()
    return (clock() - t0) / number * 1e3


def measure(
    run: Callable[[], object],
    protocol: TimingProtocol = TimingProtocol(),
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    reference: Callable[[], object] | None = None,
) -> Measurement:
    """Time ``run`` (one inference) per the protocol; ``sync`` waits for the device (CUDA).

    With a ``reference``, each block of ``run`` is followed by a block of the reference and
    the ratio of the two is recorded too: the machine's drift (clock changes, neighbours)
    moves both alike and cancels in the ratio. On this project's 2-core CI machine, that
    cut the scatter of repeated measurements of one op from 34% to 12% (IQR/median). The
    spread that decides when to stop is then the ratio's.
    """
    sync = sync or (lambda: None)
    number = _calls_per_block(run, protocol, sync, clock)
    ref_number = _calls_per_block(reference, protocol, sync, clock) if reference else 0
    samples: list[float] = []
    ratios: list[float] = []
    refs: list[float] = []
    began = clock()
    while len(samples) < protocol.max_samples:
        samples.append(_time_block(run, number, sync, clock))
        if reference is not None:
            refs.append(_time_block(reference, ref_number, sync, clock))
            ratios.append(samples[-1] / refs[-1] if refs[-1] > 0 else 1.0)
        if len(samples) >= protocol.min_samples:
            watched = ratios if reference is not None else samples
            settled = _iqr(watched) <= protocol.target_spread * statistics.median(watched)
            if settled or clock() - began > protocol.max_s:
                break
    median, iqr = statistics.median(samples), _iqr(samples)
    if reference is None:
        return Measurement(median, iqr, len(samples) * number, iqr > protocol.target_spread * median, len(samples))
    ratio, ratio_iqr = statistics.median(ratios), _iqr(ratios)
    return Measurement(median, iqr, len(samples) * number, ratio_iqr > protocol.target_spread * ratio, len(samples),
                       ratio, ratio_iqr, statistics.median(refs))


FULL_NETWORK_PROTOCOL = TimingProtocol(min_samples=15, max_samples=200, max_s=4.0, target_spread=0.03)


@dataclass(frozen=True)
class Timing:
    """A ``--timing`` preset: per point and round, at uncertain edges (with more samples, so
    their standard errors shrink), how many edge passes, for whole networks, and per
    measurement of a calibration student (shorter: it is taken several times against the
    full network, and the median of those pairs is what counts)."""

    point: TimingProtocol
    edge: TimingProtocol
    edge_passes: int
    network: TimingProtocol
    calibration: TimingProtocol


# A point's first rounds are short: the steps are read from the whole curve at once (see
# ``steps.read_steps``), so many cheap points say more than a few long ones; the samples go
# to the uncertain widths' edge passes.
_FIRST_LOOK = TimingProtocol(warmup_s=0.002, min_block_s=0.001, min_samples=5, max_samples=15, max_s=0.2,
                             target_spread=0.1)
TIMINGS: dict[str, Timing] = {
    "quick": Timing(_FIRST_LOOK,
                    TimingProtocol(warmup_s=0.005, min_block_s=0.001, min_samples=9, max_samples=30, max_s=0.4), 1,
                    TimingProtocol(warmup_s=0.01, min_samples=7, max_samples=30, max_s=0.5),
                    TimingProtocol(warmup_s=0.01, min_samples=5, max_samples=20, max_s=0.3)),
    "standard": Timing(_FIRST_LOOK,
                       TimingProtocol(warmup_s=0.002, min_block_s=0.001, min_samples=15, max_samples=30, max_s=0.3),
                       2, FULL_NETWORK_PROTOCOL,
                       TimingProtocol(min_samples=10, max_samples=60, max_s=0.6, target_spread=0.03)),
    "careful": Timing(TimingProtocol(min_samples=15, max_samples=120, max_s=2.0, target_spread=0.03),
                      TimingProtocol(min_samples=31, max_samples=200, max_s=4.0, target_spread=0.02), 3,
                      TimingProtocol(min_samples=31, max_samples=400, max_s=8.0, target_spread=0.02),
                      TimingProtocol(min_samples=15, max_samples=200, max_s=3.0, target_spread=0.02)),
}


@dataclass(frozen=True)
class Relative:
    """A network timed beside a reference: the median of the paired measurements' ratios (a
    disturbed measurement moves one of them, not the verdict), each side's median ms in the
    paired configuration, and the network's measurements themselves."""

    ratio: float
    run_ms: float
    reference_ms: float
    runs: list[Measurement]


def time_relative(backend, run: Callable[[], object], reference: Callable[[], object], pairs: int = 2,
                  protocol: TimingProtocol | None = None) -> Relative:
    """``run`` against ``reference`` on ``backend`` (a :class:`~staircase.profile.backends.Backend`),
    both prepared with ``paired=True``: ``pairs`` times, block by block (a block of one, then a
    block of the other, and so on, as ops are timed beside their full width), so drift on any
    time scale longer than a block cancels in each ratio. Timing the two in turn, a whole
    measurement each, cancels only drift that is linear over seconds; ``scripts/bench_profiler.py``
    part 3 reports how far the two rulers differ."""
    runs = [backend.time(run, protocol or FULL_NETWORK_PROTOCOL, reference=reference) for _ in range(pairs)]
    return Relative(statistics.median(m.ratio for m in runs), statistics.median(m.median_ms for m in runs),
                    statistics.median(m.ref_ms for m in runs), runs)


def measure_network(backend, model: nn.Module, input_size, protocol: TimingProtocol | None = None) -> Measurement:
    """Time the whole network end to end on ``backend`` (median of blocks, IQR spread)."""
    return backend.time(backend.prepare_model(model, tuple(input_size)), protocol or FULL_NETWORK_PROTOCOL)


@dataclass(frozen=True)
class Repeated:
    """One network timed several times in a row: the median of the measurements' medians,
    their range, and whether the range stayed wider than the protocol allows (a disturbed
    machine: the figure is not to be trusted)."""

    median_ms: float
    low_ms: float
    high_ms: float
    runs: list[Measurement]
    noisy: bool

    @property
    def spread(self) -> float:
        return (self.high_ms - self.low_ms) / self.median_ms if self.median_ms > 0 else 0.0


def measure_repeated(backend, run: Callable[[], object], protocol: TimingProtocol | None = None, repeats: int = 3,
                     max_repeats: int = 7, settle: float = 0.1) -> Repeated:
    """Time ``run`` ``repeats`` times; while the last ``repeats`` measurements' medians range
    over more than ``settle`` of their median, measure again, up to ``max_repeats``. A first
    measurement taken while the machine warms up or is disturbed is outvoted, and a machine
    that stays disturbed is flagged rather than trusted."""
    protocol = protocol or FULL_NETWORK_PROTOCOL
    runs = [backend.time(run, protocol) for _ in range(repeats)]

    def window() -> list[float]:
        return [m.median_ms for m in runs[-repeats:]]

    while len(runs) < max_repeats and (max(window()) - min(window())) > settle * statistics.median(window()):
        runs.append(backend.time(run, protocol))
    last = window()
    median = statistics.median(last)
    return Repeated(median, min(last), max(last), runs, (max(last) - min(last)) > settle * median)
