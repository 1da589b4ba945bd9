import random
import statistics

import pytest

from staircase.errors import StaircaseError
from staircase.profile.steps import network_step, read_steps, snap, step_size
from staircase.profile.timing import TimingProtocol, measure, median_stderr


def _steps(widths, step=16, base=1.0, rise=0.25):
    return [base + rise * ((w + step - 1) // step) for w in widths]


def _sampled(true_ms, rel_sigma, samples, rng):
    """A median of ``samples`` noisy timings, and its standard error as the profile computes it."""
    xs = sorted(true_ms * (1 + rng.gauss(0, rel_sigma)) for _ in range(samples))
    iqr = xs[3 * samples // 4] - xs[samples // 4]
    return statistics.median(xs), median_stderr(iqr, samples)


def _read(widths, true, rel_sigma, samples, seed, lattice, **kw):
    rng = random.Random(seed)
    pts = [_sampled(x, rel_sigma, samples, rng) for x in true]
    return read_steps(widths, [p[0] for p in pts], [p[1] for p in pts], lattice=lattice, **kw)


def test_clean_staircase_gives_the_top_of_each_step():
    w = list(range(1, 65))
    found = read_steps(w, _steps(w))
    assert found.usable == [16, 32, 48, 64] and found.step == 16 and found.clear
    assert step_size(found.usable) == 16


def test_noisy_staircase_measured_at_every_width():
    w = list(range(1, 129))
    for seed in range(20):
        found = _read(w, _steps(w), 0.02, 15, seed, lattice=1)
        assert found.usable == [16, 32, 48, 64, 80, 96, 112, 128], seed


def test_small_steps_of_a_wide_layer_on_the_lattice():
    # 16 channels of 512 cost ~3%, as wide as one point's scatter: pooled over the curve,
    # the step is plain even from the short first rounds' samples
    w = [1, *range(8, 513, 8)]
    true = [10 * 1.03 ** ((x + 15) // 16) for x in w]
    for seed in range(10):
        found = _read(w, true, 0.03, 7, seed, lattice=8)
        assert found.step == 16 and found.usable == list(range(16, 513, 16)), seed


def _ramp(widths, full=512):
    """Time growing linearly with width from a fifth of the full width's time: a convolution
    on a 2x2 map with hundreds of channels (resnet18's layer4 at 64x64 input)."""
    return [0.2 + 0.8 * w / full for w in widths]


def test_a_ramp_makes_every_multiple_of_the_lattice_usable():
    # each width is only 1.3% slower than the one before, under one point's noise (3%): no
    # pair of points can tell them apart, the whole curve can
    w = [1, *range(8, 513, 8)]
    snaps = set()
    for seed in range(10):
        found = _read(w, _ramp(w), 0.03, 7, seed, lattice=8)
        assert found.step == 8, seed
        assert len(found.usable) >= 0.9 * 64 and all(x % 8 == 0 for x in found.usable), seed
        snaps.add(tuple(snap(round(f * 512), found.usable) for f in (0.3, 0.5, 0.7)))
    assert snaps == {(152, 256, 360)}  # two profiles snap alike


def test_a_sawtooth_gives_its_dips():
    # the time climbs within each block of 16 channels and drops back at its multiples, as
    # resnet18's layer2/3 do on ONNX Runtime here: the multiples of 8 off 16 are teeth
    w = [1, *range(8, 129, 8)]
    true = [1.0 + 0.1 * ((x + 15) // 16) + (0.06 if x % 16 else 0.0) for x in w]
    for seed in range(10):
        found = _read(w, true, 0.02, 7, seed, lattice=8)
        assert found.step == 16 and found.usable == list(range(16, 129, 16)), seed


def test_spikes_are_flagged_avoided_and_decide_nothing():
    w = [1, *range(8, 513, 8)]
    spiked = {232: 1.25, 272: 1.3, 496: 1.2}
    true = [t * spiked.get(x, 1.0) for x, t in zip(w, _ramp(w), strict=True)]
    for seed in range(10):
        found = _read(w, true, 0.01, 15, seed, lattice=8)
        assert found.spikes == sorted(spiked), seed
        assert not set(spiked) & set(found.usable) and set(spiked) <= set(found.uncertain)
        assert {224, 240, 264, 280, 488, 504} <= set(found.usable), seed  # their neighbours stay usable
        assert found.step == 8


def test_a_fast_outlier_is_measured_again_before_it_is_believed():
    w = [1, *range(8, 513, 8)]
    true = [t * (0.85 if x == 256 else 1.0) for x, t in zip(w, _ramp(w), strict=True)]
    found = _read(w, true, 0.01, 15, 0, lattice=8)
    assert 256 in found.uncertain and 256 in found.usable and found.spikes == []


@pytest.mark.parametrize("rel_sigma,samples", [(0.0, 9), (0.05, 9)])
def test_a_flat_curve_or_one_noisy_plateau_leaves_the_full_width_only(rel_sigma, samples):
    # the width buys no time: the widest is the only width worth using
    w = [1, *range(8, 129, 8)]
    for seed in range(20):
        found = _read(w, [1.0] * len(w), rel_sigma, samples, seed, lattice=8)
        assert found.usable == [128] and found.flat, seed


def test_a_plateau_inside_a_staircase_is_not_split():
    # steps of 16 with one wide plateau from 33 to 96 (a kernel that handles them alike)
    w = list(range(1, 129))
    true = [1.0 + 0.25 * min((x + 15) // 16, 3) + 0.25 * max(0, (x + 15) // 16 - 6) for x in w]
    found = read_steps(w, true)
    assert found.usable == [16, 32, 96, 112, 128]


def test_a_top_off_the_lattice_is_usable_when_it_is_clearly_cheaper():
    w = [8, 12, 16, 24, 32]
    found = read_steps(w, [1.0, 1.0, 1.5, 1.5, 2.0], [0.001] * 5, lattice=8)
    assert found.usable == [12, 24, 32]
    # a probe that costs what the next lattice width costs is no top
    assert read_steps(w, [1.0, 1.5, 1.5, 1.5, 2.0], [0.001] * 5, lattice=8).usable == [8, 24, 32]
    # one that is cheaper by less than the noise is not taken either
    assert read_steps(w, [1.0, 1.48, 1.5, 1.5, 2.0], [0.01] * 5, lattice=8).usable == [8, 16, 24, 32]


def test_a_weak_structure_is_uncertain_and_follows_the_network():
    # inside each step of 16 the time rises half as much as across: too noisy to say whether
    # the step is 8 or 16
    w = [1, *range(8, 257, 8)]
    true = [1.0 + 0.01 * ((x + 7) // 8) + 0.02 * ((x + 15) // 16) for x in w]
    found = _read(w, true, 0.04, 7, 3, lattice=8)
    assert not found.clear and found.uncertain
    assert found.step == 8
    assert _read(w, true, 0.04, 7, 3, lattice=8, prior_step=16).step == 16


def test_the_network_step_pools_slots_that_cannot_decide_alone():
    # eight slots with steps of 16 measured at every width, each too noisy to say so alone
    w = list(range(1, 65))
    curves, alone = [], []
    for seed in range(8):
        rng = random.Random(seed)
        pts = [_sampled(x, 0.06, 5, rng) for x in _steps(w, rise=0.1)]
        curves.append((w, [p[0] for p in pts], [p[1] for p in pts]))
        alone.append(read_steps(*curves[-1], lattice=1))
    assert not all(s.clear for s in alone)
    assert network_step(curves, lattice=1) == 16
    assert {read_steps(*c, lattice=1, prior_step=16).step for c in curves} == {16}
    assert network_step([], lattice=8) is None


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
