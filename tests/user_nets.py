"""Networks that are not in the zoo, as a user would bring them (importable as user_nets:FACTORY)."""

import torch
from torch import nn


class TinyResConcat(nn.Module):
    """A conv stem, a residual pair, a concat branch and a classifier: every kind of coupling."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a1 = nn.Conv2d(8, 12, 3, padding=1)
        self.a_bn = nn.BatchNorm2d(12)
        self.a2 = nn.Conv2d(12, 8, 3, padding=1)
        self.b1 = nn.Conv2d(8, 6, 1)
        self.b2 = nn.Conv2d(8, 4, 1)
        self.dw = nn.Conv2d(10, 10, 3, padding=1, groups=10)
        self.head = nn.Linear(10, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.a2(torch.relu(self.a_bn(self.a1(x))))
        x = torch.cat([self.b1(x), self.b2(x)], 1)
        x = self.dw(x).mean((2, 3))
        return self.head(x)


def tiny_res_concat(num_classes: int = 5) -> TinyResConcat:
    return TinyResConcat(num_classes)


def not_a_module():
    return 42


class TwoWidths(nn.Module):
    """Two 1x1 convolutions of one 32-channel input, 48 and 40 wide, each with its own head:
    two slots that share their op signatures at different full widths."""

    input_size = (3, 8, 8)

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.a = nn.Conv2d(32, 48, 1)
        self.b = nn.Conv2d(32, 40, 1)
        self.head_a = nn.Linear(48, num_classes)
        self.head_b = nn.Linear(40, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return (self.head_a(torch.relu(self.a(x)).mean((2, 3)))
                + self.head_b(torch.relu(self.b(x)).mean((2, 3))))


def two_widths(num_classes: int = 3) -> TwoWidths:
    return TwoWidths(num_classes)
