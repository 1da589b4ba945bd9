"""Pruning schedules in the shape users know from Distiller's YAML files.

    version: 1
    model: resnet56                       # optional: the network the schedule is for
    pruners:
      layer1_conv1:
        class: L1RankedStructureParameterPruner
        group_type: Filters               # Filters (a conv's outputs) or Channels (its inputs)
        desired_sparsity: 0.7             # the share of the group removed
        search: [0.3, 0.9]                # optional: the sparsity range a search may try
        weights: [module.layer1.0.conv1.weight, module.layer1.1.conv1.weight]
    retrain:                              # optional: how the pruned network is retrained
      epochs: 10
      lr: 0.01

Applying a schedule removes channels for real (:meth:`SlotGraph.prune`): each weight's
group is the slot its filters (Filters) or input channels (Channels) belong to, ranked by
the L1 norm of that weight's filters or input-channel slices, and the least of them
removed. Distiller's ``module.`` prefix (DataParallel) is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import StaircaseError
from ..slots import SlotGraph

__all__ = ["PRUNER_CLASSES", "Pruner", "Schedule", "apply_schedule", "schedule_widths", "shipped_schedule"]

# Distiller's name for L1 structure pruning, and the two staircase rankers
PRUNER_CLASSES = {"L1RankedStructureParameterPruner": "l1", "L1": "l1", "Fisher": "fisher", "Staircase": "staircase"}
GROUP_TYPES = ("Filters", "Channels")
RETRAIN_KEYS = {"epochs": int, "lr": float, "batch_size": int, "schedule": str, "momentum": float,
                "weight_decay": float}
SHIPPED = Path(__file__).resolve().parent / "schedules"


@dataclass
class Pruner:
    name: str
    method: str  # l1, fisher or staircase
    group_type: str
    desired_sparsity: float
    weights: list[str]
    bounds: tuple[float, float] | None = None  # the sparsity range a search may try


@dataclass
class Schedule:
    pruners: list[Pruner]
    model: str | None = None
    retrain: dict = field(default_factory=dict)
    path: str = "<schedule>"

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        import yaml

        path = Path(path)
        if not path.exists() and (SHIPPED / f"{path}.yaml").exists():
            path = SHIPPED / f"{path}.yaml"
        try:
            doc = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            shipped = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.yaml")))
            raise StaircaseError(f"schedule {path} does not exist (shipped schedules: {shipped})") from None
        except yaml.YAMLError as exc:
            raise StaircaseError(f"schedule {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(doc, str(path))

    @classmethod
    def from_dict(cls, doc, where: str = "<schedule>") -> Schedule:
        if not isinstance(doc, dict) or not isinstance(doc.get("pruners"), dict) or not doc["pruners"]:
            raise StaircaseError(f"schedule {where} needs a 'pruners:' mapping of named pruners")
        pruners = [_pruner(name, spec, where) for name, spec in doc["pruners"].items()]
        seen: dict[str, str] = {}
        for p in pruners:
            for w in p.weights:
                if w in seen:
                    raise StaircaseError(f"schedule {where}: weight {w} is named by pruners {seen[w]!r} and "
                                         f"{p.name!r}; give each weight to one pruner")
                seen[w] = p.name
        retrain = doc.get("retrain") or {}
        if not isinstance(retrain, dict):
            raise StaircaseError(f"schedule {where}: 'retrain' must be a mapping ({', '.join(RETRAIN_KEYS)})")
        unknown = sorted(set(retrain) - set(RETRAIN_KEYS))
        if unknown:
            raise StaircaseError(f"schedule {where}: unknown retrain setting(s) {unknown}; known: "
                                 f"{', '.join(RETRAIN_KEYS)}")
        try:
            retrain = {k: RETRAIN_KEYS[k](v) for k, v in retrain.items()}
        except (TypeError, ValueError) as exc:
            raise StaircaseError(f"schedule {where}: a retrain setting has the wrong type ({exc})") from None
        model = doc.get("model")
        return cls(pruners, str(model) if model is not None else None, retrain, where)

    def sparsities(self) -> dict[str, float]:
        return {p.name: p.desired_sparsity for p in self.pruners}

    def with_sparsities(self, sparsities: Mapping[str, float]) -> Schedule:
        """The same schedule with some pruners' sparsities replaced (checked)."""
        unknown = sorted(set(sparsities) - {p.name for p in self.pruners})
        if unknown:
            raise StaircaseError(f"schedule {self.path} has no pruner(s) {unknown}")
        pruners = []
        for p in self.pruners:
            s = float(sparsities.get(p.name, p.desired_sparsity))
            _check_sparsity(s, p.name, self.path)
            pruners.append(Pruner(p.name, p.method, p.group_type, s, list(p.weights), p.bounds))
        return Schedule(pruners, self.model, dict(self.retrain), self.path)

    def fingerprint(self) -> dict:
        """What identifies the schedule's search space (a study refuses to mix schedules)."""
        return {"model": self.model, "pruners": [[p.name, p.method, p.group_type, sorted(p.weights),
                                                  list(p.bounds) if p.bounds else None] for p in self.pruners]}


def _check_sparsity(value: float, name: str, where: str) -> None:
    if not 0 <= value < 1:
        raise StaircaseError(f"schedule {where}: pruner {name!r} sparsity {value} must be in [0, 1) "
                             "(the share of the group removed)")


def _pruner(name: str, spec, where: str) -> Pruner:
    if not isinstance(spec, dict):
        raise StaircaseError(f"schedule {where}: pruner {name!r} must be a mapping")
    cls_name = spec.get("class")
    if cls_name not in PRUNER_CLASSES:
        raise StaircaseError(f"schedule {where}: pruner {name!r} class {cls_name!r} is not one of "
                             f"{', '.join(PRUNER_CLASSES)}")
    group = spec.get("group_type", "Filters")
    if group not in GROUP_TYPES:
        raise StaircaseError(f"schedule {where}: pruner {name!r} group_type {group!r} must be Filters or Channels")
    try:
        sparsity = float(spec["desired_sparsity"])
    except (KeyError, TypeError, ValueError):
        raise StaircaseError(f"schedule {where}: pruner {name!r} needs a numeric desired_sparsity") from None
    _check_sparsity(sparsity, name, where)
    weights = spec.get("weights")
    if not isinstance(weights, list) or not weights or not all(isinstance(w, str) for w in weights):
        raise StaircaseError(f"schedule {where}: pruner {name!r} needs 'weights:', a list of weight names")
    bounds = spec.get("search")
    if bounds is not None:
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)):
            raise StaircaseError(f"schedule {where}: pruner {name!r} search must be [low, high]")
        lo, hi = float(bounds[0]), float(bounds[1])
        for b in (lo, hi):
            _check_sparsity(b, name, where)
        if lo > hi:
            raise StaircaseError(f"schedule {where}: pruner {name!r} search [{lo}, {hi}] has low above high")
        bounds = (lo, hi)
    return Pruner(name, PRUNER_CLASSES[cls_name], group, sparsity, list(weights), bounds)


def _module_of(model: nn.Module, weight: str, where: str) -> tuple[str, nn.Module]:
    name = weight.removeprefix("module.")
    if not name.endswith(".weight"):
        raise StaircaseError(f"schedule {where}: {weight} is not a weight name (it should end in .weight)")
    module_name = name[: -len(".weight")]
    modules = dict(model.named_modules())
    if module_name not in modules or not isinstance(modules[module_name], nn.Conv2d):
        import difflib

        convs = [f"{n}.weight" for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        near = difflib.get_close_matches(name, convs, n=3)
        raise StaircaseError(f"schedule {where}: the model has no convolution weight {weight}"
                             + (f"; did you mean {', '.join(near)}?" if near else f" (its convolutions: "
                                                                                    f"{', '.join(convs[:4])}, ...)"))
    return module_name, modules[module_name]


def _group(graph: SlotGraph, module_name: str, group_type: str, weight: str, where: str) -> str:
    """The slot a weight's filters (Filters) or input channels (Channels) belong to."""
    role = ("producer", "depthwise") if group_type == "Filters" else ("consumer",)
    for slot in graph.slots:
        if any(m.module == module_name and m.role in role for m in slot.members):
            return slot.name
    raise StaircaseError(f"schedule {where}: the {group_type.lower()} of {weight} cannot be pruned alone (they are "
                         "tied to the network's input or output); use the other group_type or another weight")


@torch.no_grad()
def _l1_ranking(module: nn.Conv2d, group_type: str, width: int) -> torch.Tensor:
    w = module.weight.detach().abs()
    per = w.flatten(1).sum(1) if group_type == "Filters" else w.transpose(0, 1).flatten(1).sum(1)
    return per[:width]


def schedule_widths(model: nn.Module, input_size, schedule: Schedule, snap=None) -> dict[str, int]:
    """The width each scheduled slot ends at, without pruning anything (``snap`` as in
    ``apply_schedule``)."""
    return {slot: keep for slot, (keep, _, _) in _plan(SlotGraph(model, input_size), model, schedule, snap).items()}


def _plan(graph: SlotGraph, model: nn.Module, schedule: Schedule, snap) -> dict[str, tuple[int, nn.Conv2d, str]]:
    """slot -> (channels to keep, the weight's module, its group type)."""
    plan: dict[str, tuple[int, nn.Conv2d, str]] = {}
    for p in schedule.pruners:
        for weight in p.weights:
            module_name, module = _module_of(model, weight, schedule.path)
            slot = _group(graph, module_name, p.group_type, weight, schedule.path)
            width = graph[slot].width
            keep = max(1, round((1 - p.desired_sparsity) * width))
            if snap is not None:
                keep = max(1, min(width, int(snap(slot, keep))))
            plan[slot] = (keep, module, p.group_type)
    return plan


def apply_schedule(model: nn.Module, input_size, schedule: Schedule,
                   snap=None) -> dict[str, int]:
    """Prune ``model`` in place as ``schedule`` says (L1 ranking per weight); return the new
    width of every slot it touched. ``snap`` (slot, width) -> width moves each width first
    (e.g. to a profile's optimal widths)."""
    for p in schedule.pruners:
        if p.method != "l1":
            raise StaircaseError(f"schedule {schedule.path}: pruner {p.name!r} ({p.method}) ranks channels while "
                                 "fine-tuning; apply it with `staircase prune --method fisher`, or use "
                                 "L1RankedStructureParameterPruner here")
    graph = SlotGraph(model, input_size)
    plan = _plan(graph, model, schedule, snap)
    for slot, (keep, module, group_type) in plan.items():
        width = graph.current_width(slot)
        if keep >= width:
            continue
        order = torch.argsort(_l1_ranking(module, group_type, width))  # weakest first
        graph.prune(slot, sorted(order[: width - keep].tolist()))
    return {slot: graph.current_width(slot) for slot in plan}


def shipped_schedule(name: str = "resnet56_cifar10") -> Schedule:
    return Schedule.load(SHIPPED / f"{name}.yaml")
