"""Searching pruning schedules (Distiller-style YAML) for latency and accuracy together.

``schedule`` reads and applies schedules, ``settings`` holds what a search is asked to do,
``trial`` runs one trial, ``executors`` decide where, ``study`` drives the Optuna study and
``front`` reports the Pareto front.
"""

from .front import hopeless, pareto_front, plot_fronts
from .schedule import Pruner, Schedule, apply_schedule, schedule_widths, shipped_schedule
from .settings import SearchSettings
from .study import run_search
from .trial import run_trial

__all__ = ["Pruner", "Schedule", "SearchSettings", "apply_schedule", "hopeless", "pareto_front", "plot_fronts",
           "run_search", "run_trial", "schedule_widths", "shipped_schedule"]
