"""Profiling a device: backends, the timing protocol, the sweep, reading a curve's steps,
the profile file, and predictions from it.

Public names are loaded when first used, so that reading a profile or its steps does not
import a runtime (``staircase --help`` stays quick)."""

from __future__ import annotations

from importlib import import_module

_PUBLIC = {
    "Backend": "backends", "get_backend": "backends",
    "LatencyModel": "prediction", "Prediction": "prediction",
    "Steps": "steps", "network_step": "steps", "read_steps": "steps", "snap": "steps",
    "Curve": "store", "Profile": "store", "ProfileMismatch": "store",
    "SweepResult": "sweep", "profile_network": "sweep",
    "TIMINGS": "timing", "Measurement": "timing", "TimingProtocol": "timing", "measure": "timing",
    "time_relative": "timing",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
