import math
import random
import statistics

import pytest

from staircase.errors import StaircaseError
from staircase.profile.steps import ambiguous_edges, lattice_period, optimal_points, snap, step_size
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


@pytest.mark.parametrize("period", [None, 16])
def test_one_noisy_plateau_is_not_split(period):
    # a period lowers the evidence asked of 16, 32 and 48, but each must still beat every
    # wider point of the plateau
    w = list(range(1, 65))
    for seed in range(20):
        rng = random.Random(seed)
        pts = [_sampled(1.0, 0.05, 9, rng) for _ in w]
        assert optimal_points(w, [p[0] for p in pts], [p[1] for p in pts], period=period) == [64]


def _uneven_steps(widths, step=16):
    """Steps of 16 channels alternately large (+25%) and small (+6%), as ONNX Runtime's
    convolutions show them on this CPU: the small ones sit near any single threshold."""
    return [math.prod(1.25 if k % 2 else 1.06 for k in range((w + step - 1) // step)) for w in widths]


def test_a_period_makes_small_steps_on_it_reproducible():
    w = list(range(1, 129))
    truth = [16, 32, 48, 64, 80, 96, 112, 128]
    plain, with_period = set(), set()
    for seed in range(20):
        rng = random.Random(seed)
        pts = [_sampled(x, 0.02, 15, rng) for x in _uneven_steps(w)]
        t, se = [p[0] for p in pts], [p[1] for p in pts]
        plain.add(tuple(optimal_points(w, t, se)))
        with_period.add(tuple(optimal_points(w, t, se, period=16)))
    assert with_period == {tuple(truth)}
    assert len(plain) > 1  # without the period the small steps come and go with the noise


def test_a_clear_step_off_the_period_is_still_found_and_a_doubtful_one_is_not():
    w = [8, 16, 20, 24, 32]
    se = [0.01] * 5
    clear = [1.0, 1.0, 1.3, 1.6, 1.6]  # 20 -> 24: 0.3 over 0.014 = 21 combined standard errors
    assert optimal_points(w, clear, se, period=16) == [16, 20, 32]
    doubtful = [1.0, 1.0, 1.3, 1.36, 1.36]  # 20 -> 24: 4.2 standard errors, under 1.5 x 3
    assert optimal_points(w, doubtful, se) == [16, 20, 32]
    assert optimal_points(w, doubtful, se, period=16) == [16, 32]
    assert ambiguous_edges(w, doubtful, se, period=16) == [(20, 24)]


@pytest.mark.parametrize("point_sets,expected", [
    ([[16, 32, 48, 64], [16, 48, 80, 128], [32, 64]], 16),  # widest of each left out
    ([[8, 24, 40, 56, 64], [24, 40, 72]], 8),
    ([[16, 32, 48, 64, 80, 96, 112, 128], [19, 64]], 16),  # 7 of 8 points: over 80%
    ([[16, 32, 48, 64], [19, 37, 53, 64]], None),  # 19, 37 and 53: no power of two shares them
    ([[1, 2, 3, 5, 16, 32, 64]], None),  # under 8 left out: 2 points say nothing
    ([[12, 20, 28, 36, 44, 52, 64]], None),  # multiples of 4 only: too fine to say where steps are
])
def test_lattice_period(point_sets, expected):
    assert lattice_period(point_sets) == expected


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
