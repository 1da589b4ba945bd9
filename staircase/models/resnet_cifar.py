"""ResNets for CIFAR (He et al. 2016, section 4.2): three stages of 16/32/64, basic blocks.

Module names follow Distiller's ``resnet_cifar`` (``layer1.0.conv1`` ...) so that pruning
schedules written for it apply unchanged. Like Distiller, the two shortcuts that change
width use a 1x1 projection (option B); He et al.'s zero-padding shortcut (option A) pads
the channel dimension, which no channel-dependency tracer can follow. It adds 2.6k
parameters to ResNet-56 (0.3%).
"""

from __future__ import annotations

from torch import Tensor, nn

from ._registry import register_model
from .base import ZooModel, conv1x1, conv3x3


class BasicBlock(nn.Module):
    """Post-activation basic block (conv-bn-relu-conv-bn, add, relu)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + skip)


class CifarResNet(ZooModel):
    input_size = (3, 32, 32)
    attention_points = ("layer1", "layer2", "layer3")
    inner_slots = ("layer*.*.conv1",)

    def __init__(self, depth: int = 56, num_classes: int = 10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._stage(n, 16, 16, 1)
        self.layer2 = self._stage(n, 16, 32, 2)
        self.layer3 = self._stage(n, 32, 64, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        self.init_weights()

    @staticmethod
    def _stage(n: int, cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(*[BasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


@register_model
def resnet20(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR."""
    return CifarResNet(20, num_classes)


@register_model
def resnet32(num_classes: int = 10) -> CifarResNet:
    """ResNet-32 for CIFAR."""
    return CifarResNet(32, num_classes)


@register_model
def resnet56(num_classes: int = 10) -> CifarResNet:
    """ResNet-56 for CIFAR (0.85M parameters), the dissertation's network."""
    return CifarResNet(56, num_classes)
