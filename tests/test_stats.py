"""The paired comparison every "A beats B" in the benchmarks rests on."""

import math

import pytest

from staircase.stats import paired_difference


def test_the_interval_is_students_t_over_the_paired_differences():
    d = paired_difference([3.0, 5.0, 4.0], [1.0, 2.0, 2.0])  # differences 2, 3, 2
    sd = math.sqrt(1 / 3)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert d.mean == pytest.approx(7 / 3)
    assert (d.low, d.high) == pytest.approx((7 / 3 - half, 7 / 3 + half))
    assert d.detectable and "no detectable" not in d.describe()


def test_an_interval_across_zero_is_no_detectable_difference():
    d = paired_difference([1.0, 2.0, 3.0], [2.0, 1.0, 3.5])
    assert not d.detectable and d.describe().endswith("no detectable difference")
    assert paired_difference([1.0], [0.0]).describe() == "+1.00 (one pair: no interval)"
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])
