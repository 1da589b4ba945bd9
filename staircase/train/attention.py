"""Attention points: the modules whose outputs attention transfer compares.

Zoo models declare theirs (``model.attention_points``: the output of each group or
stage). Any other model gets its stages found (``stage_points``: the last module before
each change of spatial resolution, as timm's ``feature_info`` pairs features by
reduction), or names them by module path. Forward hooks collect the outputs in order;
student and teacher points are paired in that order and checked once, on a dummy input,
before training starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import StaircaseError

__all__ = ["FeatureTaps", "attention_points", "check_pairing", "stage_points"]


def attention_points(model: nn.Module, names: Sequence[str] | None, who: str,
                     input_size: Sequence[int] | None = None) -> list[str]:
    """``names`` if given, else the model's declared points, else its stages (``stage_points``,
    with ``input_size``); each must be a module of ``model``."""
    points = list(names) if names else list(getattr(model, "attention_points", ()))
    if not points and input_size is not None:
        points = stage_points(model, input_size)
    if not points:
        raise StaircaseError(f"the {who} declares no attention points and no stages were found; name them with "
                             f"--{who}-points module.path,... (see `staircase slots` for module names)")
    modules = dict(model.named_modules())
    missing = [p for p in points if p not in modules]
    if missing:
        raise StaircaseError(f"the {who} has no module(s) {missing[:4]} to take attention from; "
                             f"pass existing module paths with --{who}-points")
    return points


def stage_points(model: nn.Module, input_size: Sequence[int]) -> list[str]:
    """The last module to finish at each spatial resolution before a smaller one appears:
    one point per stage, found by running the model once on zeros. Maps of one pixel (after
    global pooling) are left out."""
    done: list[tuple[str, tuple[int, ...]]] = []

    def hook(name):
        def record(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple | list) else output
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[2] * out.shape[3] > 1:
                done.append((name, tuple(out.shape[2:])))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    points = []
    for i, (name, hw) in enumerate(done):
        later = done[i + 1:]
        smaller_next = next((j for j, (_, other) in enumerate(later) if other[0] * other[1] < hw[0] * hw[1]), None)
        same_before = [n for n, other in (later if smaller_next is None else later[:smaller_next]) if other == hw]
        if not same_before and name not in points and (not points or hw != _resolution(done, points[-1])):
            points.append(name)
    return points


def _resolution(done: list[tuple[str, tuple[int, ...]]], name: str) -> tuple[int, ...]:
    return next(hw for n, hw in done if n == name)


class FeatureTaps:
    """Forward hooks that keep the outputs of ``points`` from the last forward pass, in order."""

    def __init__(self, model: nn.Module, points: Sequence[str]):
        self.points = list(points)
        self.outputs: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        self.handles = [modules[p].register_forward_hook(self._keep(p)) for p in self.points]

    def _keep(self, name: str):
        def hook(_module, _inputs, output):
            self.outputs[name] = output[0] if isinstance(output, tuple | list) else output
        return hook

    def features(self) -> list[torch.Tensor]:
        missing = [p for p in self.points if p not in self.outputs]
        if missing:
            raise StaircaseError(f"attention point(s) {missing[:4]} produced no output in the forward pass")
        feats = [self.outputs[p] for p in self.points]
        self.outputs = {}
        return feats

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def check_pairing(student: nn.Module, s_points: Sequence[str], teacher: nn.Module, t_points: Sequence[str],
                  input_size: Sequence[int]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Run both networks once on zeros; the points must pair one to one and give 4-D maps.
    Returns each pair's (student, teacher) map shapes (H, W); a size mismatch is allowed (the
    loss pools it) but reported by the caller."""
    if len(s_points) != len(t_points):
        raise StaircaseError(f"the student has {len(s_points)} attention point(s) {list(s_points)}, the teacher "
                             f"{len(t_points)} {list(t_points)}; they pair in order, so name as many of each")
    shapes = []
    taps = [FeatureTaps(student, s_points), FeatureTaps(teacher, t_points)]
    try:
        feats = []
        for net, tap in zip((student, teacher), taps, strict=True):
            was = net.training
            net.eval()
            with torch.no_grad():
                net(torch.zeros(1, *input_size))
            net.train(was)
            feats.append(tap.features())
        for s_name, t_name, s, t in zip(s_points, t_points, *feats, strict=True):
            if s.dim() != 4 or t.dim() != 4:
                raise StaircaseError(f"attention points must give N x C x H x W maps: student {s_name} gives "
                                     f"{tuple(s.shape)}, teacher {t_name} {tuple(t.shape)}")
            shapes.append((tuple(s.shape[2:]), tuple(t.shape[2:])))
    finally:
        for tap in taps:
            tap.remove()
    return shapes
