"""Searching pruning schedules (Distiller-style YAML) for latency and accuracy together."""

from .schedule import Pruner, Schedule, apply_schedule, schedule_widths, shipped_schedule

__all__ = ["Pruner", "Schedule", "apply_schedule", "schedule_widths", "shipped_schedule"]
