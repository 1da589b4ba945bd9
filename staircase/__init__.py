"""staircase: design CNN students for the hardware they will run on."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .complexity import count_macs, count_params
from .errors import StaircaseError
from .models import create_model, list_models
from .slots import Slot, SlotGraph, find_slots, make_student
from .spec import StudentSpec

try:
    __version__ = version("staircase")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Slot",
    "SlotGraph",
    "StaircaseError",
    "StudentSpec",
    "count_macs",
    "count_params",
    "create_model",
    "find_slots",
    "list_models",
    "make_student",
    "__version__",
]
