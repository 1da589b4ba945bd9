"""How a latency target is shared among a network's slots: one class per allocation.

An allocation says what a slot's channels are worth (``saliency``), which widths it picks
for a predicted budget (``widths``), the fastest network it can reach (``smallest_ms``) and
how its designs are described. The knapsack allocations keep the most of a saliency on the
optimal widths; ``proportional`` keeps the teacher's proportions. A new allocation is one
subclass added to ``ALLOCATIONS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..errors import StaircaseError
from ..widths import WidthsFile
from .baselines import l1_scores
from .designer import Designer, Saliency

__all__ = ["ALLOCATIONS", "DEFAULT_ALLOCATION", "NO_SALIENCY_ALLOCATION", "Allocation", "allocation", "default_allocation"]


class Allocation(ABC):
    name = ""

    @abstractmethod
    def saliency(self, designer: Designer, widths_file: WidthsFile | None) -> tuple[Saliency, str]:
        """The channel scores the allocation keeps the most of, and what they are called."""

    @abstractmethod
    def widths(self, designer: Designer, budget_ms: float, saliency: Saliency) -> dict[str, int]:
        """The widths it picks for a predicted ``budget_ms``."""

    @abstractmethod
    def method(self, target_ms: float, kind: str) -> str:
        """How a design for ``target_ms`` is described in its spec (``kind``: the saliency's name)."""

    def smallest_ms(self, designer: Designer) -> float:
        """The fastest predicted network it can reach."""
        return designer.smallest_ms()


class _Knapsack(Allocation):
    """Optimal widths keeping the most saliency under the budget (``Designer.for_target``)."""

    def widths(self, designer: Designer, budget_ms: float, saliency: Saliency) -> dict[str, int]:
        return designer.for_target(budget_ms, saliency)

    def method(self, target_ms: float, kind: str) -> str:
        return f"staircase ({self.name}): optimal widths keeping the most {kind} under {target_ms} ms"


class Fisher(_Knapsack):
    name = "fisher"

    def saliency(self, designer: Designer, widths_file: WidthsFile | None) -> tuple[Saliency, str]:
        if widths_file is None or not widths_file.saliency:
            raise StaircaseError("--allocation fisher keeps the most Fisher saliency: give --widths, a widths file "
                                 "written by `staircase prune`")
        return Saliency(widths_file.saliency), "Fisher saliency" if "fisher" in widths_file.method else "saliency"


class L1(_Knapsack):
    name = "l1"

    def saliency(self, designer: Designer, widths_file: WidthsFile | None) -> tuple[Saliency, str]:
        return Saliency(l1_scores(designer.graph, designer.slots)), "L1 saliency"


class Parameters(_Knapsack):
    name = "params"

    def saliency(self, designer: Designer, widths_file: WidthsFile | None) -> tuple[Saliency, str]:
        return Saliency.from_parameters(designer.graph, designer.slots), "parameters"


class Proportional(Parameters):
    """The teacher's proportions: every slot scaled by one factor, up to the top of its step,
    then grown along its usable widths (``Designer.proportional_for``)."""

    name = "proportional"

    def widths(self, designer: Designer, budget_ms: float, saliency: Saliency) -> dict[str, int]:
        return designer.proportional_for(budget_ms)

    def method(self, target_ms: float, kind: str) -> str:
        return (f"staircase (proportional): the teacher's proportions, each slot up to the top of its step, then "
                f"grown along its usable widths, under {target_ms} ms")

    def smallest_ms(self, designer: Designer) -> float:
        return designer.smallest_proportional_ms()


ALLOCATIONS: dict[str, Allocation] = {a.name: a for a in (Fisher(), L1(), Parameters(), Proportional())}
# a target design's allocation unless one is asked for, as the CIFAR experiment's validation
# split chose it (scripts/reproduce_cifar.py, docs/RESULTS.md): the Fisher knapsack where a
# widths file gives saliency; without one, the teacher's proportions, which came second there
# with no detectable difference from the first (L1 and parameters were detectably behind)
DEFAULT_ALLOCATION = "fisher"
NO_SALIENCY_ALLOCATION = "proportional"


def default_allocation(widths_file: WidthsFile | None) -> str:
    """The allocation a target design gets unless one is asked for: ``DEFAULT_ALLOCATION``
    given a widths file with saliency, else ``NO_SALIENCY_ALLOCATION``."""
    return DEFAULT_ALLOCATION if widths_file is not None and widths_file.saliency else NO_SALIENCY_ALLOCATION


def allocation(name: str) -> Allocation:
    """The allocation called ``name``; the error lists them."""
    if name not in ALLOCATIONS:
        raise StaircaseError(f"--allocation {name!r} is not one of {', '.join(ALLOCATIONS)}")
    return ALLOCATIONS[name]
