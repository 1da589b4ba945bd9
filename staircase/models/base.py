"""The contract every zoo model offers.

Later stages need three facts about a network besides its forward pass, and every zoo
model declares them as class or instance attributes:

``input_size``
    ``(C, H, W)`` of one input image.
``attention_points``
    module paths whose outputs are the ends of the network's groups/stages, in order
    (what attention transfer compares between teacher and student).
``inner_slots``
    shell-style patterns of the slot *root* module names that make up the paper's default
    prunable set (the inner width of residual blocks, MobileNet's pointwise widths,
    DenseNet's bottlenecks). Models outside the zoo use a structural rule instead
    (see :func:`staircase.slots.find_slots`).

``init_weights()`` re-initialises every parameter the way the architecture's paper does;
students call it after surgery so they start fresh.
"""

from __future__ import annotations

from torch import nn


class ZooModel(nn.Module):
    input_size: tuple[int, int, int] = (3, 32, 32)
    attention_points: tuple[str, ...] = ()
    inner_slots: tuple[str, ...] = ()

    def init_weights(self) -> None:
        """He-normal convolutions, unit/zero norms, zero linear bias (the common CIFAR recipe)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
