"""Op signatures: what a slot's width changes, as operations that can be timed alone.

Each layer a slot touches becomes one :class:`OpSpec` whose swept dimension is free: a
producer convolution's outputs (timed with the norm and activation that follow the
channels), a consumer's inputs, or a depthwise convolution's channels. Everything else in
the signature is fixed: kernel, stride, padding, the input's H x W. Identical signatures
across blocks and networks are measured once; batch, dtype, backend and device are the
profile's own settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ..slots import Slot

__all__ = ["OpSpec", "slot_ops"]


@dataclass(frozen=True)
class OpSpec:
    kind: str  # "conv" or "linear"
    free: str  # "out" (producer), "in" (consumer) or "depthwise" (channels in and out)
    cin: int
    cout: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    hw: tuple[int, int] = (1, 1)
    norm_act: bool = False  # followed by a norm and ReLU over the swept channels

    @property
    def full(self) -> int:
        """The widest the swept dimension goes."""
        return self.cin if self.free == "in" else self.cout

    def shape_at(self, width: int) -> tuple[int, int, int]:
        """(in channels, out channels, groups) at ``width``."""
        if self.free == "out":
            return self.cin, width, 1
        if self.free == "in":
            return width, self.cout, 1
        return width, width, width

    @property
    def key(self) -> str:
        """A readable, unique name: ``conv3x3/s2/p1 in=32 out=* @32x32 +bn_relu``."""
        cin = "*" if self.free in ("in", "depthwise") else str(self.cin)
        cout = "*" if self.free in ("out", "depthwise") else str(self.cout)
        if self.kind == "linear":
            return f"linear in={cin} out={cout}"
        kh, kw = self.kernel
        name = "dwconv" if self.free == "depthwise" else "conv"
        post = " +bn_relu" if self.norm_act else ""
        return (f"{name}{kh}x{kw}/s{self.stride[0]}/p{self.padding[0]} in={cin} out={cout} "
                f"@{self.hw[0]}x{self.hw[1]}{post}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> OpSpec:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def slot_ops(model: nn.Module, slot: Slot) -> list[tuple[str, OpSpec]]:
    """The timed operations whose cost a slot's width changes, as (layer name, op).

    Grouped (non-depthwise) convolutions and layers other than Conv2d/Linear are not
    timed; their cost stays in the part of the network no slot changes.
    """
    has_norm = any(m.role == "norm" for m in slot.members)
    ops = []
    for member in slot.members:
        if member.role not in ("producer", "consumer", "depthwise"):
            continue
        layer = model.get_submodule(member.module)
        if isinstance(layer, nn.Linear):
            ops.append((member.module, OpSpec("linear", "out" if member.role == "producer" else "in",
                                              layer.in_features, layer.out_features)))
            continue
        if not isinstance(layer, nn.Conv2d) or (layer.groups > 1 and member.role != "depthwise"):
            continue
        free = {"producer": "out", "consumer": "in", "depthwise": "depthwise"}[member.role]
        ops.append((member.module, OpSpec(
            "conv", free, layer.in_channels, layer.out_channels,
            tuple(layer.kernel_size), tuple(layer.stride), _padding(layer), tuple(member.input_shape[2:4]),
            norm_act=has_norm and member.role in ("producer", "depthwise"),
        )))
    return ops


def _padding(layer: nn.Conv2d) -> tuple[int, int]:
    if isinstance(layer.padding, str):  # "same" / "valid"
        return tuple(k // 2 for k in layer.kernel_size) if layer.padding == "same" else (0, 0)
    return tuple(layer.padding)
