import random

import pytest

from staircase.errors import StaircaseError
from staircase.profile.staircase import optimal_points, snap, step_size
from staircase.profile.timing import TimingProtocol, measure


def _steps(widths, step=16, base=1.0, rise=0.25):
    return [base + rise * ((w + step - 1) // step) for w in widths]


def test_clean_staircase_gives_the_top_of_each_step():
    w = list(range(1, 65))
    assert optimal_points(w, _steps(w)) == [16, 32, 48, 64]
    assert step_size([16, 32, 48, 64]) == 16


def test_noisy_staircase_with_honest_spreads():
    w = list(range(1, 129))
    for seed in range(20):
        rng = random.Random(seed)
        sigma = 0.003
        t = [x * (1 + rng.gauss(0, sigma)) for x in _steps(w)]
        spreads = [1.35 * sigma * x for x in t]  # IQR of a normal is 1.35 sigma
        assert optimal_points(w, t, spreads) == [16, 32, 48, 64, 80, 96, 112, 128]


def test_non_monotone_curve_keeps_fast_multiples():
    # width 16 and 32 faster than the widths between them (seen on this CPU)
    w = list(range(1, 33))
    t = [1.0 if x % 16 == 0 else 1.5 for x in w]
    assert optimal_points(w, t) == [32]
    t[15] = 0.8
    assert optimal_points(w, t) == [16, 32]


def test_large_spread_hides_a_small_step():
    w = [8, 16, 24]
    assert optimal_points(w, [1.0, 1.0, 1.1]) == [16, 24]
    assert optimal_points(w, [1.0, 1.0, 1.1], [0.06, 0.06, 0.06]) == [24]


@pytest.mark.parametrize("width,mode,expected", [
    (20, "nearest", 16), (24, "nearest", 32), (20, "up", 32), (30, "down", 16), (32, "down", 32),
    (3, "down", 16), (70, "up", 64), (16, "up", 16),
])
def test_snap_modes(width, mode, expected):
    assert snap(width, [16, 32, 48, 64], mode) == expected


def test_snap_rejects_unknown_mode():
    with pytest.raises(StaircaseError, match="not one of nearest, up, down"):
        snap(3, [4], "sideways")


def test_measure_settles_and_flags_noise():
    class Clock:
        def __init__(self, durations):
            self.t, self.durations, self.i = 0.0, durations, 0

        def __call__(self):
            return self.t

    steady = Clock(None)

    def run_steady():
        steady.t += 0.001

    m = measure(run_steady, TimingProtocol(warmup_s=0.0, min_block_s=0.0), clock=steady)
    assert m.median_ms == pytest.approx(1.0) and not m.noisy and m.n == 7

    noisy = Clock(None)
    rng = random.Random(0)

    def run_noisy():
        noisy.t += 0.001 * (1 + rng.random())

    m = measure(run_noisy, TimingProtocol(warmup_s=0.0, min_block_s=0.0, max_samples=30, max_s=10), clock=noisy)
    assert m.noisy and m.n == 30
