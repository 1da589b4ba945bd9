"""DenseNet-BC (Huang et al. 2017): DenseNet-BC-100-12 for CIFAR, DenseNet-121 for ImageNet.

Module names follow torchvision's DenseNet (``features.denseblock1.denselayer1.conv1``),
so DenseNet-121's torchvision weights load. The prunable width of each dense layer is its
bottleneck (``conv1``'s output, 4·growth); the growth outputs are concatenated into every
later layer's input.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._registry import register_model
from .base import ZooModel, conv1x1, conv3x3


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(cin, bn_size * growth)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(bn_size * growth, growth)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, n: int, cin: int, growth: int, bn_size: int):
        super().__init__()
        for i in range(n):
            self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth, growth, bn_size))

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True)
        self.conv = conv1x1(cin, cout)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(ZooModel):
    inner_slots = ("features.denseblock*.denselayer*.conv1",)

    def __init__(
        self,
        blocks: tuple[int, ...],
        growth: int,
        num_classes: int,
        imagenet_stem: bool,
        bn_size: int = 4,
        compression: float = 0.5,
    ):
        super().__init__()
        self.input_size = (3, 224, 224) if imagenet_stem else (3, 32, 32)
        stem = 64 if imagenet_stem else 2 * growth
        self.features = nn.Sequential()
        if imagenet_stem:
            self.features.add_module("conv0", nn.Conv2d(3, stem, 7, 2, 3, bias=False))
            self.features.add_module("norm0", nn.BatchNorm2d(stem))
            self.features.add_module("relu0", nn.ReLU(inplace=True))
            self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        else:
            self.features.add_module("conv0", conv3x3(3, stem))
        c = stem
        for i, n in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i < len(blocks) - 1:
                out = int(math.floor(c * compression))
                self.features.add_module(f"transition{i + 1}", Transition(c, out))
                c = out
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        self.attention_points = tuple(f"features.denseblock{i + 1}" for i in range(len(blocks)))
        self.init_weights()

    def init_weights(self) -> None:
        super().init_weights()
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.features(x))
        return self.classifier(self.avgpool(x).flatten(1))


@register_model
def densenet_bc_100_12(num_classes: int = 10) -> DenseNet:
    """DenseNet-BC-100 with growth 12 for CIFAR (0.77M parameters)."""
    return DenseNet((16, 16, 16), 12, num_classes, imagenet_stem=False)


@register_model
def densenet121(num_classes: int = 1000) -> DenseNet:
    """DenseNet-121 for ImageNet (224x224, 8.0M parameters), torchvision-compatible."""
    return DenseNet((6, 12, 24, 16), 32, num_classes, imagenet_stem=True)
