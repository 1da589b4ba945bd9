"""Progress for long jobs: a tqdm bar on a terminal; elsewhere (a log file, a pipe) a line
every few percent with the rate and time left, instead of carriage-return frames."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class NoBar:
    """Takes what a tqdm bar takes and shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **_kw) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress(NoBar):
    """A line each ``every`` share of ``total`` (and at the end): done, rate, time left."""

    def __init__(self, total: int, desc: str, unit: str, every: float = 0.1,
                 write: Callable[[str], None] | None = None, clock: Callable[[], float] = time.perf_counter):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.clock = clock
        self.start = clock()
        self.done = 0
        self.next_at = every

    def update(self, n: int = 1) -> None:
        self.done += n
        share = self.done / self.total
        if share + 1e-9 < self.next_at and self.done < self.total:
            return
        while self.next_at <= share + 1e-9:
            self.next_at += self.every
        elapsed = self.clock() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        self.write(f"{self.desc}: {self.done}/{self.total} {self.unit} ({share:.0%}), {rate:.3g} {self.unit}/s, "
                   f"{_duration(elapsed)} so far, about {_duration(left)} left")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, leave: bool = True):
    """A tqdm bar over ``total`` steps on a terminal, a :class:`LineProgress` elsewhere, or a
    :class:`NoBar` when disabled or empty."""
    if not enabled or total == 0:
        return NoBar()
    if not sys.stderr.isatty():
        return LineProgress(total, desc, unit, every=0.1 if leave else 0.5)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=leave)
