"""MobileNet (v1) for CIFAR and MobileNetV2 (ImageNet, torchvision names; and a CIFAR variant).

MobileNet-CIFAR follows the common CIFAR adaptation (Howard et al.'s layer list with a
3x3/1 stem): 32, then depthwise-separable blocks 64,(128,2),128,(256,2),256,(512,2),
512x5,(1024,2),1024. Its prunable widths are the 13 pointwise convolutions; each one's
channels also set the width of the next block's depthwise convolution.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._registry import register_model
from .base import ZooModel, conv1x1, conv3x3

_V1_CIFAR = (64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512, (1024, 2), 1024)


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv_dw = conv3x3(cin, cin, stride, groups=cin)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.relu_dw = nn.ReLU(inplace=True)
        self.conv_pw = conv1x1(cin, cout)
        self.bn_pw = nn.BatchNorm2d(cout)
        self.relu_pw = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu_dw(self.bn_dw(self.conv_dw(x)))
        return self.relu_pw(self.bn_pw(self.conv_pw(x)))


class MobileNetCifar(ZooModel):
    input_size = (3, 32, 32)
    # last block at each resolution: 16x16, 8x8, 4x4, 2x2
    attention_points = ("layers.2", "layers.4", "layers.10", "layers.12")
    inner_slots = ("layers.*.conv_pw",)

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = conv3x3(3, 32)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU(inplace=True)
        blocks, cin = [], 32
        for item in _V1_CIFAR:
            cout, stride = item if isinstance(item, tuple) else (item, 1)
            blocks.append(DepthwiseSeparable(cin, cout, stride))
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(1024, num_classes)
        self.init_weights()

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.relu(self.bn1(self.conv1(x))))
        return self.linear(self.avgpool(x).flatten(1))


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    # indices 0/1/2 = conv/bn/act, as torchvision's Conv2dNormActivation
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = cin * expand_ratio
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


# (expansion t, channels c, repeats n, first stride s), Sandler et al. table 2
_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(ZooModel):
    """MobileNetV2 with torchvision's module names (its ImageNet weights load)."""

    inner_slots = ("features.*.conv.0.0",)  # the expansion width of every block with t > 1

    def __init__(self, num_classes: int = 1000, cifar: bool = False, dropout: float = 0.2):
        super().__init__()
        self.input_size = (3, 32, 32) if cifar else (3, 224, 224)
        setting = list(_V2_SETTING)
        if cifar:  # keep resolution early on 32x32 inputs (stem stride 1, second stage stride 1)
            setting[1] = (6, 24, 2, 1)
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 1 if cifar else 2)]
        cin, ends = 32, []
        for t, c, n, s in setting:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
            ends.append(len(layers) - 1)
        layers.append(_conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        # stage ends at strides 4, 8, 16, 32 (ImageNet): after the 24-, 32-, 96-, 320-channel stages
        self.attention_points = tuple(f"features.{ends[k]}" for k in (1, 2, 4, 6))
        self.init_weights()

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register_model
def mobilenet_cifar(num_classes: int = 10) -> MobileNetCifar:
    """MobileNet (v1) for CIFAR (3.2M parameters)."""
    return MobileNetCifar(num_classes)


@register_model
def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """MobileNetV2 for ImageNet (224x224, 3.5M parameters), torchvision-compatible."""
    return MobileNetV2(num_classes)


@register_model
def mobilenet_v2_cifar(num_classes: int = 10) -> MobileNetV2:
    """MobileNetV2 for 32x32 inputs (stem and second stage at stride 1)."""
    return MobileNetV2(num_classes, cifar=True)
