"""The profile job: settings in, a finished (or resumable) profile with its plots out.

``profile(ProfileSettings(...))`` is what ``staircase profile`` runs; ``profile_network``
(``sweep``) is the sweep itself, for callers that hold a backend already.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..modelref import ModelSettings, parse_input_shape
from ..settings import option
from .backends import Backend, BackendSettings
from .steps import DEFAULT_GRID
from .sweep import SweepResult, profile_network
from .timing import TIMINGS

__all__ = ["ProfileRun", "ProfileSettings", "profile"]


@dataclass(kw_only=True)
class ProfileSettings(ModelSettings, BackendSettings):
    out: str | None = option(None, help="profile file (default: profiles/<device>-<backend>.json)")
    all: bool = option(False, help="also profile coupled residual/concat/stem slots")
    grid: int = option(DEFAULT_GRID, help="sweep every N-th width (the lattice), probing between grid widths below "
                                          "each step's edge; 1 sweeps every width")
    rounds: int = option(1, help="interleaved rounds per lattice width before the uncertain ones are measured again")
    timing: str = option("standard", choices=tuple(TIMINGS),
                         help="how hard uncertain widths are measured again: quick (one short pass), standard (two), "
                              "careful (three, longer, and longer lattice rounds: noisy machines)")
    budget_minutes: float | None = option(None, help="stop after this long; rerun to continue")
    seed: int = option(0, help="order of the shuffled sweep")
    recalibrate: bool = option(False, help="time the full network and the calibration students again, keeping the "
                                           "op measurements (when the machine was disturbed while they were taken)")
    plots: str | None = option(None, help="folder for the plots (default: beside the profile)")
    allow_other_device: bool = option(False, help="extend a profile measured elsewhere")
    progress: bool = option(True, no_flag="--no-progress", help="no progress bar")


@dataclass
class ProfileRun:
    """A profile job's outcome: the sweep, where it went, and what to warn about."""

    sweep: SweepResult
    path: Path
    plots: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        r = self.sweep
        return {"profile": str(self.path), "network": r.network, "measured": r.measured, "reused": r.reused,
                "complete": r.complete, "noisy_points": r.noisy_points, "seconds": round(r.seconds, 1),
                "phases": {name: round(sec, 1) for name, sec in r.phases.items()},
                "plots": str(self.plots[-1]) if self.plots else None, "warnings": self.warnings}


def device_tag(backend: Backend) -> str:
    """A file-name-safe name of the device: the CPU's model for a CPU."""
    name = backend.device if backend.device.lower() != "cpu" else backend.device_name()
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "device"


def profile(settings: ProfileSettings, log: Callable[[str], None] = print) -> ProfileRun:
    """Profile ``settings.model`` on the backend into ``settings.out`` (created, extended or
    resumed), with its plots and warnings once complete."""
    from ..files import check_writable
    from .calibration import disturbed_whole_network
    from .plots import plot_profile
    from .prediction import LatencyModel

    s = settings
    backend = s.make_backend()
    out = Path(s.out) if s.out else Path("profiles") / f"{device_tag(backend)}-{backend.name}.json"
    check_writable(out)
    result = profile_network(s.model, backend, out, input_size=parse_input_shape(s.input_shape),
                             num_classes=s.num_classes, include_all=s.all, grid=s.grid, rounds=s.rounds,
                             timing=s.timing, recalibrate=s.recalibrate, budget_minutes=s.budget_minutes, seed=s.seed,
                             allow_other_device=s.allow_other_device, progress=s.progress, log=log)
    run = ProfileRun(result, out)
    if not result.complete:
        return run
    run.plots = plot_profile(result.profile, result.network, s.plots or out.with_suffix("") / result.network)
    if result.noisy_points:
        run.warnings.append(f"{result.noisy_points} points stayed noisy (spread above the protocol's target); "
                            "their steps are less certain: see `staircase steps`")
    for warning in (disturbed_whole_network(result.profile, result.network),
                    LatencyModel(result.profile, result.network).few_steps()):
        if warning:
            run.warnings.append(warning)
    return run
