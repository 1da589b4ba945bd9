"""Designing students: saliency, baselines, snapping to a profile's steps, latency targets."""

from .baselines import l1_scores, prune_until, removal_order, uniform_for_latency, uniform_widths
from .designer import Designed, Designer, Saliency, backend_of
from .knapsack import Choice, Selection, solve

__all__ = ["uniform_widths", "uniform_for_latency", "l1_scores", "removal_order", "prune_until", "Designed",
           "Designer", "Saliency", "backend_of", "Choice", "Selection", "solve"]
