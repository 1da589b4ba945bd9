"""Baseline width choices a staircase student is compared against: uniform scaling, and
pruning by a channel ranking (L1 norms, or the order Fisher pruning removed channels in)
until a predicted latency is met, or until a *measured* latency is matched
(:func:`match_measured`: the prediction's first guess corrected by measurements)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import WidthError
from ..slots import Slot, SlotGraph

__all__ = ["uniform_widths", "uniform_for_latency", "l1_scores", "removal_order", "prune_until", "applied_removals",
           "uniform_family", "pruned_family", "round_widths", "rounded_family", "widest_under", "Matched",
           "match_measured"]

Predictor = Callable[[Mapping[str, int]], float]


def uniform_widths(slots: Iterable[Slot], scale: float) -> dict[str, int]:
    """Every slot scaled by the same factor (rounded, at least one channel)."""
    if not 0 < scale <= 1:
        raise WidthError(f"scale {scale} must be in (0, 1]")
    return {s.name: max(1, round(s.width * scale)) for s in slots}


def uniform_for_latency(slots: Sequence[Slot], predicted: Predictor, target_ms: float) -> tuple[dict[str, int], float]:
    """The widest uniform scaling whose predicted latency is at most ``target_ms`` (bisection)."""
    scale = max(widest_under(uniform_family(slots), predicted, target_ms), 1e-6)
    return uniform_widths(slots, scale), scale


@torch.no_grad()
def l1_scores(graph: SlotGraph, names: Sequence[str]) -> dict[str, list[float]]:
    """Li et al.'s filter ranking: each channel's L1 norm of its producer weights, divided by
    the slot's mean so that slots of different sizes compare (a global ranking)."""
    scores = {}
    for name in names:
        total = torch.zeros(graph[name].width)
        for layer, slot_idx, own_idx in graph.producer_channels(name):  # a concatenation has several
            norms = layer.weight.detach().abs().reshape(layer.weight.shape[0], -1).sum(1).float()
            total[slot_idx] += norms[own_idx]
        mean = float(total.mean()) or 1.0
        scores[name] = (total / mean).tolist()
    return scores


def removal_order(scores: Mapping[str, Sequence[float]]) -> list[str]:
    """Slots named once per channel, least salient channel first (global ranking)."""
    ranked = sorted((float(v), name) for name, values in scores.items() for v in values)
    return [name for _, name in ranked]


def applied_removals(full: Mapping[str, int], order: Sequence[str], count: int) -> list[str]:
    """The first ``count`` removals that ``order`` really makes: a slot already down to one
    channel is skipped, as :func:`prune_until` skips it."""
    widths, removed = dict(full), []
    for name in order:
        if len(removed) >= count:
            break
        if widths.get(name, 0) > 1:
            widths[name] -= 1
            removed.append(name)
    return removed


def prune_until(full: Mapping[str, int], order: Sequence[str], predicted: Predictor,
                target_ms: float) -> dict[str, int]:
    """Remove channels in ``order`` (one slot name per channel, each slot keeping at least one)
    until the predicted latency is at most ``target_ms``; the widths where that first holds."""
    if predicted(dict(full)) <= target_ms:
        return dict(full)
    # bisection over the number of removals: latency falls (almost) monotonically with it
    steps = [n for n in order if n in full]
    lo, hi = 0, len(steps)
    if predicted(_after_removals(full, steps, hi)) > target_ms:
        return _after_removals(full, steps, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if predicted(_after_removals(full, steps, mid)) <= target_ms:
            hi = mid
        else:
            lo = mid
    return _after_removals(full, steps, hi)


def _after_removals(full: Mapping[str, int], steps: Sequence[str], count: int) -> dict[str, int]:
    """``full`` after the first ``count`` removals of ``steps`` (a slot keeps at least one channel)."""
    widths = dict(full)
    for name in steps[:count]:
        if widths[name] > 1:
            widths[name] -= 1
    return widths


# -- matching a measured latency -------------------------------------------------------------

Family = Callable[[float], dict[str, int]]  # t in [0, 1] -> widths; latency rises with t, t = 1 is the full network


def uniform_family(slots: Sequence[Slot]) -> Family:
    """Uniform scaling by ``t`` (at least one channel per slot)."""
    return lambda t: uniform_widths(slots, max(t, 1e-6))


def pruned_family(full: Mapping[str, int], order: Sequence[str]) -> Family:
    """Pruning in ``order``: ``t`` is the share of the order's removals *not* made."""
    steps = [n for n in order if n in full]
    return lambda t: _after_removals(full, steps, round((1 - t) * len(steps)))


def round_widths(widths: Mapping[str, int], full: Mapping[str, int], multiple: int) -> dict[str, int]:
    """Each width rounded down to a multiple of ``multiple``, at least one multiple, as
    Torch-Pruning's ``round_to`` rounds what a layer keeps; at most the slot's full width."""
    return {n: min(full[n], multiple * max(w // multiple, 1)) for n, w in widths.items()}


def rounded_family(family: Family, full: Mapping[str, int], multiple: int) -> Family:
    """``family``'s members with their widths rounded to multiples of ``multiple``."""
    return lambda t: round_widths(family(t), full, multiple)


def widest_under(family: Family, cost: Predictor, limit: float, lo: float = 0.0, hi: float = 1.0,
                 iterations: int = 30) -> float:
    """The largest ``t`` in [lo, hi] whose widths cost at most ``limit`` (bisection; ``lo`` when none does)."""
    if cost(family(hi)) <= limit:
        return hi
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if cost(family(mid)) <= limit:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass
class Matched:
    t: float
    widths: dict[str, int]
    measured_ms: float
    result: Any  # what ``measure`` returned for these widths
    tried: list[tuple[float, float]] = field(default_factory=list)  # (t, measured ms) in the order measured


def match_measured(family: Family, predicted: Predictor, measure: Callable[[dict[str, int]], tuple[Any, float]],
                   target_ms: float, tolerance: float = 0.03, rounds: int = 5) -> Matched:
    """The member of ``family`` whose *measured* latency is nearest ``target_ms``.

    The prediction gives the first guess. Each measurement narrows a bracket on ``t`` and
    rescales the predicted goal by target/measured for the next guess, so a prediction that is
    biased either way (misaligned widths are hard to predict) still converges; a guess outside
    the bracket, or a network already measured, falls back to the bracket's middle. Stops
    within ``tolerance`` of the target or after ``rounds`` measurements."""
    lo, hi = 0.0, 1.0
    t = widest_under(family, predicted, target_ms)
    tried: list[Matched] = []
    for _ in range(rounds):
        widths = family(t)
        result, ms = measure(widths)
        tried.append(Matched(t, widths, ms, result))
        if abs(ms - target_ms) <= tolerance * target_ms or (t >= 1.0 and ms <= target_ms):
            break
        if ms > target_ms:
            hi = min(hi, t)
        else:
            lo = max(lo, t)
        if hi - lo < 1e-6:
            break
        goal = predicted(widths) * target_ms / ms
        t = widest_under(family, predicted, goal, lo, hi)
        if not lo < t < hi or _measured(family(t), tried):
            t = (lo + hi) / 2
            if _measured(family(t), tried):
                break  # the bracket holds no other network
    best = min(tried, key=lambda m: abs(m.measured_ms - target_ms))
    best.tried = [(m.t, m.measured_ms) for m in tried]
    return best


def _measured(widths: dict[str, int], tried: Sequence[Matched]) -> bool:
    return any(widths == m.widths for m in tried)
