"""ResNet-18/34 (He et al. 2016) for ImageNet, with torchvision's module names.

Because the names and shapes match ``torchvision.models.resnet18/34``, their state dicts
load directly (``model.load_state_dict(torchvision_model.state_dict())``). The ``_cifar``
variants replace the 7x7/2 stem and max-pool with a 3x3/1 stem for 32x32 inputs.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._registry import register_model
from .base import ZooModel, conv3x3
from .resnet_cifar import BasicBlock  # ReLUs hold no weights: torchvision keys still match


class ResNet(ZooModel):
    attention_points = ("layer1", "layer2", "layer3", "layer4")
    inner_slots = ("layer*.*.conv1",)

    def __init__(self, blocks: tuple[int, int, int, int], num_classes: int = 1000, cifar_stem: bool = False):
        super().__init__()
        self.input_size = (3, 32, 32) if cifar_stem else (3, 224, 224)
        if cifar_stem:
            self.conv1 = conv3x3(3, 64)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        widths = (64, 128, 256, 512)
        cin = 64
        for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(*[BasicBlock(cin if j == 0 else w, w, stride if j == 0 else 1) for j in range(n)])
            setattr(self, f"layer{i + 1}", layer)
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        super().init_weights()
        for m in self.modules():  # torchvision's default Linear init, not N(0, 0.01)
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@register_model
def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 for ImageNet (224x224), torchvision-compatible."""
    return ResNet((2, 2, 2, 2), num_classes)


@register_model
def resnet34(num_classes: int = 1000) -> ResNet:
    """ResNet-34 for ImageNet (224x224, 21.8M parameters), the Staircase paper's teacher."""
    return ResNet((3, 4, 6, 3), num_classes)


@register_model
def resnet18_cifar(num_classes: int = 10) -> ResNet:
    """ResNet-18 with a 3x3 stem for 32x32 inputs."""
    return ResNet((2, 2, 2, 2), num_classes, cifar_stem=True)


@register_model
def resnet34_cifar(num_classes: int = 10) -> ResNet:
    """ResNet-34 with a 3x3 stem for 32x32 inputs."""
    return ResNet((3, 4, 6, 3), num_classes, cifar_stem=True)
