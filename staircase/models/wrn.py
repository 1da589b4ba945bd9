"""Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016), pre-activation, depth 6n+4.

Stage widths 16·k, 32·k, 64·k after a 16-channel stem; a 1x1 projection shortcut where a
block changes width or resolution, as in the attention-transfer reference code.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._registry import register_model, register_pattern
from .base import ZooModel, conv1x1, conv3x3


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = conv3x3(cout, cout)
        self.shortcut = conv1x1(cin, cout, stride) if (cin != cout or stride != 1) else None

    def forward(self, x: Tensor) -> Tensor:
        o = self.relu1(self.bn1(x))
        # identity blocks add the raw input (pre-activation); projections see the activated one
        skip = x if self.shortcut is None else self.shortcut(o)
        y = self.conv1(o)
        y = self.conv2(self.dropout(self.relu2(self.bn2(y))))
        return y + skip


class WRNStage(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int, drop_rate: float):
        super().__init__()
        self.layer = nn.Sequential(
            *[PreActBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, drop_rate) for i in range(n)]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(ZooModel):
    input_size = (3, 32, 32)
    attention_points = ("block1", "block2", "block3")
    inner_slots = ("block*.layer.*.conv1",)

    def __init__(self, depth: int = 40, widen_factor: int = 2, num_classes: int = 10, drop_rate: float = 0.0):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = conv3x3(3, widths[0])
        self.block1 = WRNStage(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = WRNStage(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = WRNStage(n, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        self.init_weights()

    def forward(self, x: Tensor) -> Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.avgpool(self.relu(self.bn1(x)))
        return self.fc(x.flatten(1))


@register_pattern(r"wrn_(\d+)_(\d+)", "wrn_D_K for any depth D = 6n+4 and widen factor K")
def wrn(depth: int, widen_factor: int, num_classes: int = 10, **kwargs) -> WideResNet:
    """WRN-D-K for CIFAR."""
    return WideResNet(depth, widen_factor, num_classes, **kwargs)


@register_model
def wrn_40_2(num_classes: int = 10, **kwargs) -> WideResNet:
    """WRN-40-2 (2.2M parameters), the Staircase paper's CIFAR teacher."""
    return WideResNet(40, 2, num_classes, **kwargs)


@register_model
def wrn_40_1(num_classes: int = 10, **kwargs) -> WideResNet:
    """WRN-40-1."""
    return WideResNet(40, 1, num_classes, **kwargs)


@register_model
def wrn_16_2(num_classes: int = 10, **kwargs) -> WideResNet:
    """WRN-16-2, the AT paper's student of WRN-40-2."""
    return WideResNet(16, 2, num_classes, **kwargs)


@register_model
def wrn_16_1(num_classes: int = 10, **kwargs) -> WideResNet:
    """WRN-16-1 (175k parameters; printed 0.17M in the AT paper), its smallest student."""
    return WideResNet(16, 1, num_classes, **kwargs)
