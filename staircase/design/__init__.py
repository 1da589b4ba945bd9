"""Designing students: saliency, baselines, snapping to a profile's steps, latency targets."""

from .baselines import l1_scores, prune_until, removal_order, uniform_for_latency, uniform_widths
from .designer import SNAP_MODES, Designer, Saliency
from .knapsack import Choice, Selection, solve
from .measured import BesideTeacher, Designed, Timed, design_students, designed, fit_to_target

__all__ = ["SNAP_MODES", "BesideTeacher", "Choice", "Designed", "Designer", "Saliency", "Selection", "Timed",
           "design_students", "designed", "fit_to_target", "l1_scores", "prune_until", "removal_order", "solve",
           "uniform_for_latency", "uniform_widths"]
