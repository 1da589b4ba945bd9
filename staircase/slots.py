"""Slots: the channel groups of a network that must change width together, and exact-width surgery.

A *slot* is one set of coupled channels: a convolution's outputs, the norm after it, the
inputs of every consumer, and whatever a residual add, a concatenation or a depthwise
convolution ties to them. torch-pruning's dependency graph (DepGraph) finds these groups
for any traceable module and performs the surgery; this module only names them, records
what each one touches, and chooses the default prunable set.

A slot is named after its first producer in definition order (``block1.layer.0.conv1``),
which is stable across runs and identical in a teacher and its students.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .errors import SlotError, WidthError

__all__ = ["SlotMember", "Slot", "SlotGraph", "find_slots", "make_student", "shrink_in_place", "slot_widths", "reinitialise"]

_CONV = nn.modules.conv._ConvNd
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


@dataclass(frozen=True)
class SlotMember:
    """One layer whose shape a slot's width changes.

    ``role`` is ``producer`` (its output channels are the slot), ``depthwise`` (a depthwise
    convolution whose channels follow the slot, in and out), ``norm`` (a normalisation of
    the slot's channels) or ``consumer`` (its input channels are the slot).
    ``input_shape`` is what the layer sees in one forward pass of the full network.
    """

    module: str
    role: str
    kind: str
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class Slot:
    name: str
    width: int
    members: tuple[SlotMember, ...]
    residual: bool  # several full-width producers added together (a residual stream)
    depthwise: bool  # carries a depthwise convolution
    concatenated: bool  # passes through a concatenation (DenseNet)
    stem: bool  # produced directly from the network input
    inner: bool  # in the default prunable set

    @property
    def kind(self) -> str:
        """A short tag for tables: inner / residual / concat / depthwise / stem / plain."""
        tags = [t for t, on in (("residual", self.residual), ("concat", self.concatenated),
                                ("depthwise", self.depthwise), ("stem", self.stem)) if on]
        return "+".join(tags) or "plain"

    def members_with(self, role: str) -> list[SlotMember]:
        return [m for m in self.members if m.role == role]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = self.kind
        return d


def _record_inputs(model: nn.Module, example: torch.Tensor) -> tuple[dict[nn.Module, tuple[int, ...]], set[nn.Module]]:
    """Input shape seen by every leaf module in one forward pass, and the modules fed the raw input."""
    shapes: dict[nn.Module, tuple[int, ...]] = {}
    fed_input: set[nn.Module] = set()

    def hook(module, inputs, _output):
        if inputs and isinstance(inputs[0], torch.Tensor) and module not in shapes:
            shapes[module] = tuple(inputs[0].shape)
            if inputs[0] is example:
                fed_input.add(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return shapes, fed_input


class SlotGraph:
    """The slots of one model instance, with the dependency graph to change their widths.

    Surgery (:meth:`prune`) changes ``model`` in place; analyse a copy to keep the original.
    """

    def __init__(self, model: nn.Module, input_size: Sequence[int]):
        import torch_pruning as tp

        self.model = model
        self.input_size = tuple(int(s) for s in input_size)
        self._names = {m: n for n, m in model.named_modules()}
        self._order = {n: i for i, n in enumerate(self._names.values())}
        was_training = model.training
        model.eval()  # trace without touching BatchNorm running statistics
        example = torch.zeros(1, *self.input_size)
        try:
            with torch.enable_grad():
                self._dg = tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
            shapes, fed_input = _record_inputs(model, example)
        except Exception as exc:  # tracing failures come from the user's module
            raise SlotError(
                f"could not trace {type(model).__name__} at input size {self.input_size}: {exc}; "
                "check the input size (--input-shape C,H,W) and that the model runs on one image"
            ) from exc
        finally:
            model.train(was_training)
        patterns = tuple(getattr(model, "inner_slots", ()) or ())
        self.slots: list[Slot] = []
        for group in self._dg.get_all_groups(root_module_types=(_CONV, nn.Linear)):
            slot = self._describe(group, shapes, fed_input, patterns)
            if slot is not None:
                self.slots.append(slot)
        self.slots.sort(key=lambda s: self._order[s.name])
        self._by_name = {s.name: s for s in self.slots}

    def _describe(self, group, shapes, fed_input, patterns) -> Slot | None:
        import torch_pruning as tp

        T = tp.ops.OPTYPE
        members: dict[tuple[str, str], SlotMember] = {}
        concatenated = False
        for dep, _ in group:
            node = dep.target
            concatenated |= node.type in (T.CONCAT, T.SPLIT)
            module = node.module
            if not isinstance(module, nn.Module) or module not in self._names:
                continue
            out_side = self._dg.is_out_channel_pruning_fn(dep.handler)
            if isinstance(module, _CONV) and module.groups > 1 and module.groups == module.in_channels:
                role = "depthwise"
            elif isinstance(module, (_CONV, nn.Linear)):
                role = "producer" if out_side else "consumer"
            elif isinstance(module, _NORMS):
                role = "norm"
            else:
                role = "other"  # e.g. PReLU: follows the channels, no shape of its own to time
            name = self._names[module]
            members[(name, role)] = SlotMember(name, role, type(module).__name__, shapes.get(module, ()))
        ordered = sorted(members.values(), key=lambda m: self._order[m.module])
        producers = [m for m in ordered if m.role == "producer"]
        # no producer: the channels are the input image's; no consumer: they leave the network
        if not producers or not any(m.role == "consumer" for m in ordered):
            return None
        width = len(group[0].idxs)  # the root's channels: a concatenation's total, an add's common width
        full = [m for m in ordered if m.role in ("producer", "depthwise") and _out_width(self.model.get_submodule(m.module)) == width]
        name = full[0].module
        residual = sum(m.role == "producer" for m in full) > 1
        depthwise = any(m.role == "depthwise" for m in ordered)
        stem = any(self.model.get_submodule(p.module) in fed_input for p in producers)
        if patterns:
            inner = any(fnmatch.fnmatchcase(name, p) for p in patterns)
        else:  # a model outside the zoo: every width not tied to another by an add or a concat
            inner = not residual and not concatenated
        return Slot(name, width, tuple(ordered), residual, depthwise, concatenated, stem, inner)

    # -- lookup ------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Slot:
        try:
            return self._by_name[name]
        except KeyError:
            raise WidthError(_unknown_slot_message(name, self._by_name)) from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def selected(self, include_all: bool = False) -> list[Slot]:
        """The default prunable slots (``inner``), or every slot."""
        return list(self.slots) if include_all else [s for s in self.slots if s.inner]

    # -- surgery -----------------------------------------------------------------------------

    def prune(self, name: str, idxs: Sequence[int]) -> None:
        """Remove channels ``idxs`` of slot ``name`` from every layer it touches (in place)."""
        slot = self[name]
        if not idxs:
            return
        module = self.model.get_submodule(slot.name)
        current = _out_width(module)
        bad = [i for i in idxs if not 0 <= i < current]
        if bad or len(set(idxs)) >= current:
            raise WidthError(
                f"slot {name!r}: cannot remove channels {sorted(set(idxs))[:8]} of {current}; "
                "indices must be distinct, within the width, and leave at least one channel"
            )
        pruner = self._dg.get_pruner_of_module(module)
        group = self._dg.get_pruning_group(module, pruner.prune_out_channels, sorted(set(int(i) for i in idxs)))
        group.prune()

    def current_width(self, name: str) -> int:
        return _out_width(self.model.get_submodule(self[name].name))

    def segments(self, name: str) -> list[list[int]]:
        """The slot's channels grouped by the concatenated producer they come from (one group if none)."""
        width = self.current_width(name)
        parts = [sorted(idx) for layer, idx, _ in self.producer_channels(name) if _out_width(layer) < width]
        return sorted(parts) if parts else [list(range(width))]

    def producer_channels(self, name: str) -> list[tuple[nn.Module, list[int], list[int]]]:
        """Each layer whose output channels the slot's channels are: (layer, the slot's
        channel indices, that layer's own output channel indices), in the same order."""
        return self._channels_of(name, (_CONV, nn.Linear))

    def norm_channels(self, name: str) -> list[tuple[nn.Module, list[int], list[int]]]:
        """Each BatchNorm over the slot's channels, as ``producer_channels`` gives layers."""
        return self._channels_of(name, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))

    def _channels_of(self, name: str, kinds: tuple[type, ...]) -> list[tuple[nn.Module, list[int], list[int]]]:
        module = self.model.get_submodule(self[name].name)
        width = _out_width(module)
        pruner = self._dg.get_pruner_of_module(module)
        group = self._dg.get_pruning_group(module, pruner.prune_out_channels, list(range(width)))
        found = []
        for item in group:
            target = item.dep.target.module
            if isinstance(target, kinds) and self._dg.is_out_channel_pruning_fn(item.dep.handler):
                found.append((target, [int(i) for i in item.root_idxs], [int(i) for i in item.idxs]))
        return found

    def set_widths(self, widths: Mapping[str, int]) -> None:
        """Shrink each named slot to ``widths[name]`` channels, dropping the last channels.

        Where a slot concatenates several producers, each keeps a share of the width in
        proportion to its size (at least one channel), and drops its own last channels.
        """
        check_widths(widths, {s.name: self.current_width(s.name) for s in self.slots})
        for name, width in widths.items():
            segments = self.segments(name)
            if width < len(segments):
                raise WidthError(
                    f"slot {name!r}: width {width} is below {len(segments)}, the number of producers it concatenates"
                )
            keep = proportional_split(width, [len(seg) for seg in segments])
            drop = [i for seg, k in zip(segments, keep, strict=True) for i in seg[k:]]
            self.prune(name, drop)


def _out_width(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, _CONV) else module.out_features


def proportional_split(total: int, sizes: Sequence[int]) -> list[int]:
    """Split ``total`` over parts in proportion to ``sizes``, each part at least 1 (largest remainder)."""
    if len(sizes) == 1:
        return [total]
    spare = total - len(sizes)
    room = [s - 1 for s in sizes]
    share = [spare * r / sum(room) if sum(room) else 0 for r in room]
    keep = [int(x) for x in share]
    for i in sorted(range(len(sizes)), key=lambda i: share[i] - keep[i], reverse=True)[: spare - sum(keep)]:
        keep[i] += 1
    return [1 + k for k in keep]


def _unknown_slot_message(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "`staircase slots MODEL --all` lists them"
    return f"unknown slot {name!r}: {hint}"


def check_widths(widths: Mapping[str, object], full: Mapping[str, int]) -> None:
    """Refuse any width that is not an integer in 1..full width of a known slot, naming the slot."""
    problems = []
    for name, width in widths.items():
        if name not in full:
            problems.append(_unknown_slot_message(name, full))
        elif isinstance(width, bool) or not isinstance(width, int):
            problems.append(f"slot {name!r}: width {width!r} is not an integer")
        elif width < 1:
            problems.append(f"slot {name!r}: width {width} is below 1 (every slot keeps at least one channel)")
        elif width > full[name]:
            problems.append(f"slot {name!r}: width {width} is above the teacher's {full[name]}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WidthError("; ".join(problems[:3]) + more)


def find_slots(model: nn.Module, input_size: Sequence[int] | None = None, include_all: bool = False) -> list[Slot]:
    """The slots of ``model``: the default prunable set, or every prunable slot with ``include_all``."""
    return SlotGraph(copy.deepcopy(model), input_size_of(model, input_size)).selected(include_all)


def slot_widths(model: nn.Module, input_size: Sequence[int] | None = None) -> dict[str, int]:
    """Width of every slot of ``model``."""
    return {s.name: s.width for s in find_slots(model, input_size, include_all=True)}


def reinitialise(model: nn.Module) -> None:
    """Fresh weights: the zoo's ``init_weights`` where defined, else each layer's own reset."""
    if hasattr(model, "init_weights"):
        model.init_weights()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
        if not hasattr(model, "init_weights") and hasattr(m, "reset_parameters"):
            m.reset_parameters()


def make_student(
    teacher: nn.Module,
    widths: Mapping[str, int],
    input_size: Sequence[int] | None = None,
    init: bool = True,
) -> nn.Module:
    """A new network like ``teacher`` with exactly ``widths`` channels in the named slots.

    Slots not named keep the teacher's width. The teacher is not modified. With ``init``
    (the default) the student is freshly initialised; without, it keeps the teacher's
    weights for the channels it keeps (the first ``width`` of each slot).
    """
    student = copy.deepcopy(teacher)
    shrink_in_place(student, widths, input_size_of(teacher, input_size), init)
    return student


def shrink_in_place(
    model: nn.Module, widths: Mapping[str, int], input_size: Sequence[int] | None = None, init: bool = True
) -> dict[str, int]:
    """Set ``model``'s slot widths in place (optionally re-initialising); return every slot's former width."""
    graph = SlotGraph(model, input_size_of(model, input_size))
    before = {s.name: s.width for s in graph.slots}
    graph.set_widths(widths)
    if init:
        reinitialise(model)
    return before


def input_size_of(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, ...]:
    if input_size is not None:
        return tuple(int(s) for s in input_size)
    size = getattr(model, "input_size", None)
    if size is None:  # timm models declare it in their pretrained config
        cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
        size = cfg.get("input_size")
    if size is None:
        raise SlotError(
            f"{type(model).__name__} does not declare its input size; pass one (--input-shape C,H,W)"
        )
    return tuple(int(s) for s in size)
