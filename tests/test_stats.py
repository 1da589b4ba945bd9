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


def test_the_bootstrap_pairs_images_and_counts_both_the_images_and_the_seeds():
    import numpy as np

    from staircase.stats import bootstrap_difference

    rng = np.random.default_rng(0)
    hard = rng.random(400) < 0.3  # images every run gets wrong
    base = np.stack([~hard & (rng.random(400) < 0.9) for _ in range(3)])
    same = bootstrap_difference(base, base, resamples=2000)
    assert same.mean == 0 and same.low <= 0 <= same.high and not same.detectable
    better = base | (rng.random((3, 400)) < 0.2)  # right on more of the images the others miss
    d = bootstrap_difference(better, base, resamples=2000)
    assert d.detectable and d.low > 0 and d.mean == pytest.approx(100 * (better.mean() - base.mean()))
    assert 0 < d.detectable_from < 20
    few = bootstrap_difference(better[:, :40], base[:, :40], resamples=2000)  # fewer images: a wider interval
    assert few.high - few.low > d.high - d.low
    with pytest.raises(ValueError):
        bootstrap_difference(base, base[:, :10])


def test_evaluate_gives_each_images_correctness_in_the_datas_order():
    import torch
    from torch.utils.data import TensorDataset

    from staircase.train.evaluate import evaluate

    x = torch.eye(4).repeat(2, 1)  # 8 images, 4 classes: a linear layer of the identity predicts the one-hot index
    y = torch.tensor([0, 1, 2, 3, 0, 0, 0, 0])
    model = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(4))
    r = evaluate(model, TensorDataset(x, y), batch_size=3, per_image=True)
    assert r["correct"] == [True] * 5 + [False] * 3 and r["top1"] == 62.5
    assert "correct" not in evaluate(model, TensorDataset(x, y))


def test_the_median_interval_is_distribution_free_and_ignores_one_disturbed_value():
    from staircase.stats import median_interval

    assert median_interval([1, 2, 3, 4, 5, 6]) == (3.5, 1, 6)  # six values: the extremes cover 96.9%
    assert median_interval(list(range(1, 12))) == (6, 2, 10)  # eleven: the second from each end, 98.8%
    assert median_interval([0.5] * 10 + [5.0]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="more than 5 values"):
        median_interval([1, 2, 3, 4, 5])


def test_two_accuracies_on_the_same_images_compared_as_independent_proportions():
    from staircase.stats import proportion_difference

    d = proportion_difference(75.0, 70.0, 5000)
    se = 100 * ((0.75 * 0.25 + 0.7 * 0.3) / 5000) ** 0.5
    assert d.mean == pytest.approx(5.0) and d.high - d.low == pytest.approx(2 * 1.959964 * se, rel=1e-5)
    assert d.outcome == "won" and d.detectable_from == pytest.approx(2.8 * se)
    assert proportion_difference(75.0, 74.0, 100).outcome == "no detectable difference"
    with pytest.raises(ValueError):
        proportion_difference(50.0, 50.0, 0)


def test_welchs_interval_is_scipys_and_needs_two_values_a_side():
    from scipy.stats import ttest_ind

    from staircase.stats import welch_difference

    a, b = [71.2, 70.4, 72.8, 70.6, 71.0, 72.1], [69.0, 70.2, 68.4, 71.5, 69.9, 70.3]
    d = welch_difference(a, b)
    ci = ttest_ind(a, b, equal_var=False).confidence_interval()
    assert d.mean == pytest.approx(sum(a) / 6 - sum(b) / 6)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high))
    flat = welch_difference([70.0, 70.0, 70.0], [69.0, 69.0])  # no scatter: the interval is the point
    assert (flat.low, flat.mean, flat.high) == pytest.approx((1.0, 1.0, 1.0)) and flat.outcome == "won"
    with pytest.raises(ValueError, match="at least two values a side"):
        welch_difference([70.0], [69.0, 69.5])
