"""Choosing one width per slot under a latency budget: a multiple-choice knapsack.

Each slot offers a few choices (its optimal widths), each with a cost (predicted latency
it adds) and a value (saliency it retains). We want the most value whose total cost fits
the budget. Dynamic programming over the cost, discretised into ``bins`` steps of
``budget / bins``, with every cost rounded *up*: a solution found always fits the true
budget, and the loss against the true optimum is bounded by what one bin per slot can
hide (reported as ``cost_resolution``). With 20-60 slots, ~30 choices and 4000 bins this
takes well under a second with numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import StaircaseError

__all__ = ["Choice", "Selection", "solve", "min_cost"]


@dataclass(frozen=True)
class Choice:
    width: int
    cost: float  # e.g. predicted ms this width adds, relative to any fixed baseline
    value: float  # e.g. retained saliency


@dataclass(frozen=True)
class Selection:
    widths: dict[str, int]
    cost: float
    value: float
    cost_resolution: float  # each slot's cost was rounded up by less than this


def min_cost(choices: Mapping[str, Sequence[Choice]]) -> float:
    """The cheapest total: every slot at its cheapest choice."""
    return sum(min(c.cost for c in opts) for opts in choices.values())


def solve(choices: Mapping[str, Sequence[Choice]], budget: float, bins: int = 4000) -> Selection:
    """Pick one choice per slot maximising total value with total cost <= ``budget``.

    Costs may be negative (savings against a baseline): they are shifted by each slot's
    cheapest choice first. Raises when even the cheapest choices exceed the budget.
    """
    names = list(choices)
    if not names:
        return Selection({}, 0.0, 0.0, 0.0)
    for name in names:
        if not choices[name]:
            raise StaircaseError(f"slot {name!r} has no widths to choose from")
    base = min_cost(choices)
    if base > budget + 1e-12:
        raise StaircaseError(f"the budget {budget:.4f} is below the cheapest choice of every slot ({base:.4f})")
    room = budget - base
    spans = [max(c.cost for c in choices[n]) - min(c.cost for c in choices[n]) for n in names]
    if room >= sum(spans):  # every combination fits: each slot takes its most valuable choice
        picked = {n: max(choices[n], key=lambda c: (c.value, -c.cost)) for n in names}
        return Selection({n: c.width for n, c in picked.items()}, sum(c.cost for c in picked.values()),
                         sum(c.value for c in picked.values()), 0.0)
    unit = room / bins if room > 0 else 1.0
    size = bins + 1 if room > 0 else 1

    neg = -math.inf
    best = np.full(size, neg)  # best[b]: most value whose rounded, shifted cost is exactly b units
    best[0] = 0.0
    picks = []  # per slot, for each b, the index of the choice taken
    for name in names:
        opts = choices[name]
        low = min(c.cost for c in opts)
        nxt = np.full(size, neg)
        pick = np.full(size, -1, dtype=np.int32)
        for j, c in enumerate(opts):
            units = _units(c.cost - low, unit, room)
            if units >= size:
                continue
            cand = np.full(size, neg)
            cand[units:] = best[: size - units] + c.value
            better = cand > nxt
            nxt[better] = cand[better]
            pick[better] = j
        best = nxt
        picks.append(pick)
    b = int(np.argmax(best))
    if best[b] == neg:
        raise StaircaseError("no combination of widths fits the budget")
    widths: dict[str, int] = {}
    for name, pick in zip(reversed(names), reversed(picks), strict=True):
        j = int(pick[b])
        c = choices[name][j]
        widths[name] = c.width
        low = min(x.cost for x in choices[name])
        b -= _units(c.cost - low, unit, room)
    widths = {n: widths[n] for n in names}
    cost = sum(next(c.cost for c in choices[n] if c.width == widths[n]) for n in names)
    value = sum(next(c.value for c in choices[n] if c.width == widths[n]) for n in names)
    return Selection(widths, cost, value, unit if room > 0 else 0.0)


def _units(extra: float, unit: float, room: float) -> int:
    """A choice's cost above its slot's cheapest, in bins rounded up; with no room, only the
    cheapest choices fit (zero bins) and any dearer one is out of reach (the one bin there is)."""
    if room > 0:
        return math.ceil(extra / unit - 1e-9)
    return 0 if extra <= 1e-12 else 1
