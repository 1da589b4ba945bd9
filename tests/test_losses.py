import pytest
import torch
import torch.nn.functional as F

from staircase.train.losses import at_loss, attention_map, kd_loss


def test_attention_map_is_the_normalised_mean_square_over_channels():
    x = torch.randn(2, 5, 4, 4)
    by_hand = x.pow(2).mean(1).view(2, -1)
    by_hand = by_hand / by_hand.norm(dim=1, keepdim=True)
    assert torch.allclose(attention_map(x), by_hand, atol=1e-6)


def test_at_loss_sums_points_and_ignores_channel_counts():
    s = [torch.randn(3, 8, 8, 8), torch.randn(3, 16, 4, 4)]
    t = [torch.randn(3, 32, 8, 8), torch.randn(3, 64, 4, 4)]
    expected = sum((attention_map(a) - attention_map(b)).pow(2).mean() for a, b in zip(s, t, strict=True))
    assert at_loss(s, t) == pytest.approx(float(expected))
    assert float(at_loss(t, t)) == 0.0


def test_at_loss_pools_a_larger_map_with_a_warning():
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)
    with pytest.warns(UserWarning, match="pooling"):
        loss = at_loss([s], [t])
    # the 8x8 map averaged over 2x2 windows down to the teacher's 4x4, then compared
    pooled = s.view(2, 4, 4, 2, 4, 2).mean((3, 5))
    assert loss.item() == pytest.approx(float((attention_map(pooled) - attention_map(t)).pow(2).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="2 student attention points vs 1"):
        at_loss([torch.randn(1, 1, 2, 2)] * 2, [torch.randn(1, 1, 2, 2)])


def test_kd_loss_matches_hinton():
    s, t = torch.randn(4, 10), torch.randn(4, 10)
    p = F.softmax(t / 4, 1)
    by_hand = (p * (p.log() - F.log_softmax(s / 4, 1))).sum(1).mean() * 16
    assert kd_loss(s, t, 4.0) == pytest.approx(float(by_hand), rel=1e-5)
    assert kd_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
