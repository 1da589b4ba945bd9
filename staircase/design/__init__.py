"""Designing students: saliency, baselines, snapping to a profile's steps, latency targets.

``design(DesignSettings(...))`` is the job's entry point (what ``staircase design`` runs)."""

from .allocations import ALLOCATIONS, DEFAULT_ALLOCATION, Allocation, allocation
from .baselines import l1_scores, prune_until, removal_order, uniform_for_latency, uniform_widths
from .designer import SNAP_MODES, Designer, Saliency
from .job import DesignResult, DesignSettings, design
from .knapsack import Choice, Selection, solve
from .measured import BesideTeacher, Designed, Timed, design_with_baselines, designed, fit_to_target

__all__ = ["ALLOCATIONS", "DEFAULT_ALLOCATION", "SNAP_MODES", "Allocation", "BesideTeacher", "Choice", "DesignResult",
           "DesignSettings", "Designed", "Designer", "Saliency", "Selection", "Timed", "allocation", "design",
           "design_with_baselines", "designed", "fit_to_target", "l1_scores", "prune_until", "removal_order", "solve",
           "uniform_for_latency", "uniform_widths"]
