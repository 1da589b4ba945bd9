"""Designing students: saliency, baselines, snapping to a profile's steps."""

from .baselines import uniform_widths

__all__ = ["uniform_widths"]
