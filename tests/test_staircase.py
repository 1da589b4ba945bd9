import random
import statistics

import pytest

from staircase.errors import StaircaseError
from staircase.profile.staircase import ambiguous_edges, optimal_points, snap, step_size
from staircase.profile.timing import TimingProtocol, measure, median_stderr


def _steps(widths, step=16, base=1.0, rise=0.25):
    return [base + rise * ((w + step - 1) // step) for w in widths]


def test_clean_staircase_gives_the_top_of_each_step():
    w = list(range(1, 65))
    assert optimal_points(w, _steps(w)) == [16, 32, 48, 64]
    assert step_size([16, 32, 48, 64]) == 16


def _sampled(true_ms, rel_sigma, samples, rng):
    """A median of ``samples`` noisy timings, and its standard error as the profile computes it."""
    xs = sorted(true_ms * (1 + rng.gauss(0, rel_sigma)) for _ in range(samples))
    iqr = xs[3 * samples // 4] - xs[samples // 4]
    return statistics.median(xs), median_stderr(iqr, samples)


def test_noisy_staircase_with_honest_standard_errors():
    w = list(range(1, 129))
    for seed in range(20):
        rng = random.Random(seed)
        pts = [_sampled(x, 0.02, 15, rng) for x in _steps(w)]
        t, se = [p[0] for p in pts], [p[1] for p in pts]
        assert optimal_points(w, t, se) == [16, 32, 48, 64, 80, 96, 112, 128]


def test_small_steps_of_a_wide_layer_are_found_when_sampled_enough():
    # 16 channels of 512 cost ~3%, as wide as the timings' own scatter
    w = list(range(8, 513, 8))
    true = [10 * 1.03 ** ((x + 15) // 16) for x in w]
    found = 0
    for seed in range(10):
        rng = random.Random(seed)
        pts = [_sampled(x, 0.03, 60, rng) for x in true]
        opt = optimal_points(w, [p[0] for p in pts], [p[1] for p in pts])
        assert set(opt) <= set(range(16, 513, 16)), "a point inside a step was called optimal"
        found += len(opt)
    assert found >= 0.7 * 10 * 32


def test_one_noisy_plateau_is_not_split():
    w = list(range(1, 65))
    for seed in range(20):
        rng = random.Random(seed)
        pts = [_sampled(1.0, 0.05, 9, rng) for _ in w]
        assert optimal_points(w, [p[0] for p in pts], [p[1] for p in pts]) == [64]


def test_uncertain_points_are_those_near_the_threshold():
    w = [8, 16, 24, 32]
    t = [1.0, 1.0, 1.05, 1.5]
    se = [0.01, 0.01, 0.01, 0.01]  # 16 -> 24: 0.05 over 0.014 = 3.5 combined standard errors
    assert optimal_points(w, t, se) == [16, 24, 32]
    assert ambiguous_edges(w, t, se) == [(16, 24)]
    assert optimal_points(w, t, [x * 2 for x in se]) == [24, 32]
    assert ambiguous_edges(w, t, [x * 2 for x in se]) == [(16, 24)]  # 1.7 standard errors


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


def test_timing_against_a_reference_cancels_drift():
    # the machine is 1.5x slower for every other (op, reference) pair of blocks
    state = {"t": 0.0, "calls": 0}

    def now():
        return state["t"]

    def call(cost):
        slowdown = 1.5 if (state["calls"] // 2) % 2 else 1.0
        state["calls"] += 1
        state["t"] += cost * slowdown

    m = measure(lambda: call(0.0006), TimingProtocol(warmup_s=0.0, min_block_s=0.0, max_samples=40, max_s=10),
                clock=now, reference=lambda: call(0.001))
    assert m.ratio == pytest.approx(0.6) and m.ratio_iqr == pytest.approx(0.0) and not m.noisy
    assert m.iqr_ms > 0.2  # the raw timings scatter with the slowdown
    assert set(m.to_dict()) >= {"ratio", "ratio_iqr", "ref_ms", "samples"}


def test_an_ambiguous_edge_names_the_wider_point_that_limits_it():
    # 16 is clearly faster than 20, but 24 is noisy: 24 limits the verdict on 16, so 24 is
    # what needs more samples, not 20 (the next width)
    w, t, se = [16, 20, 24], [1.0, 1.2, 1.15], [0.01, 0.01, 0.05]
    assert ambiguous_edges(w, t, se) == [(16, 24)]
    assert ambiguous_edges(w, t, [0.01, 0.01, 0.01]) == []  # settled once 24 is sampled enough
