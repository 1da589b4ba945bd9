"""The profile file: measured op curves of one device/backend, and the networks they cover.

``profiles/<device>-<backend>.json`` is readable and versioned. While a sweep runs, each
finished point is appended to ``<file>.journal`` (one JSON line, flushed and fsynced), and
the JSON is rewritten atomically from time to time; a killed sweep loses at most the point
in flight, and loading replays the journal. A file that is not a profile, or is truncated,
is reported by name and never overwritten.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import SpecError, StaircaseError
from ..files import atomic_write_json, read_json
from .ops import OpSpec
from .steps import Steps, network_step, read_steps
from .timing import median_stderr

__all__ = ["PROFILE_FORMAT", "PROFILE_VERSION", "Calibration", "Curve", "FullTime", "NetworkEntry", "Profile",
           "ProfileMismatch", "SlotEntry", "network_key", "summarize_rounds"]

PROFILE_FORMAT = "staircase-profile"
PROFILE_VERSION = 1
# what must agree before measurements are reused or predictions trusted
FINGERPRINT_KEYS = ("backend", "backend_version", "device", "device_name", "cpu", "threads", "precision", "batch", "dtype")




def network_key(name: str, input_size) -> str:
    """How a profile names a network: ``wrn_16_2@3x32x32``."""
    return f"{name}@{'x'.join(map(str, input_size))}"


@dataclass
class SlotEntry:
    """One profiled slot: its full width and, per layer it changes, the op key of its curve."""

    width: int
    layers: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "layers": dict(self.layers)}


@dataclass
class FullTime:
    """The unpruned network timed end to end as deployed."""

    median_ms: float
    spread_ms: float
    noisy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "spread_ms": self.spread_ms, "noisy": self.noisy}


@dataclass
class Calibration:
    """How whole networks differ from the summed op differences (see ``profile.calibration``):
    ``scale`` x the summed differences + ``misalignment`` x the time of slots whose width is
    off ``alignment`` channels."""

    version: int | None = None
    scale: float = 1.0
    misalignment: float = 0.0
    alignment: int | None = None
    residual_by_alignment: dict[str, float] = field(default_factory=dict)
    students: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(d.get("version"), float(d.get("scale", 1.0)), float(d.get("misalignment", 0.0)), d.get("alignment"),
                   dict(d.get("residual_by_alignment", {})), list(d.get("students", [])))

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "scale": self.scale, "misalignment": self.misalignment,
                "alignment": self.alignment, "residual_by_alignment": self.residual_by_alignment,
                "students": self.students}


@dataclass
class NetworkEntry:
    """What a profile knows of one network: how it was swept, its slots, its full time and
    the prediction's calibration; ``refined`` and ``edges_done`` say which sweep passes are
    finished (a rerun continues after them)."""

    model: str
    input_size: list[int]
    slots: dict[str, SlotEntry] = field(default_factory=dict)
    include_all: bool = False
    grid: int = 1
    full: FullTime | None = None
    calibration: Calibration | None = None
    refined: bool = False
    edges_done: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkEntry:
        return cls(str(d.get("model", "")), list(d.get("input_size", [])),
                   {n: SlotEntry(int(e["width"]), dict(e["layers"])) for n, e in d["slots"].items()},
                   bool(d.get("include_all", False)), int(d.get("grid", 1)),
                   FullTime(**d["full"]) if "full" in d else None,
                   Calibration.from_dict(d["calibration"]) if "calibration" in d else None,
                   bool(d.get("refined", False)), bool(d.get("edges_done", False)))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "input_size": list(self.input_size), "include_all": self.include_all,
                             "grid": self.grid, "slots": {n: e.to_dict() for n, e in self.slots.items()}}
        if self.refined:
            d["refined"] = True
        if self.edges_done:
            d["edges_done"] = True
        if self.full is not None:
            d["full"] = self.full.to_dict()
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_dict()
        return d


class ProfileMismatch(StaircaseError):
    """A profile measured on another device, backend or setting."""


@dataclass
class Curve:
    """One op's (or one slot's) latency against width: medians and spreads in ms."""

    widths: list[int]
    median_ms: list[float]
    spread_ms: list[float]
    noisy: list[bool] = field(default_factory=list)
    stderr_ms: list[float] | None = None  # standard error of each median (None: exact values)
    lattice: int = 1  # the sweep's grid: the widths every slot was measured at (see ``steps.read_steps``)
    network_step: int | None = None  # the step its network's slots share (``Profile.network_step``)

    def steps(self) -> Steps:
        """Usable widths, step, spikes and uncertain widths (``steps.read_steps``)."""
        return read_steps(self.widths, self.median_ms, self.stderr_ms, lattice=self.lattice,
                          prior_step=self.network_step)

    def optimal(self) -> list[int]:
        """The usable widths: the widths worth building, each at its own measured cost."""
        return self.steps().usable

    def index(self, width: int) -> int:
        """Where ``width`` is read from: the first measured width at or above it (a step's
        top), the widest beyond them."""
        return next((i for i, w in enumerate(self.widths) if w >= width), len(self.widths) - 1)

    def at(self, width: int) -> float:
        """Latency at ``width``; between measured widths, the next measured one up (a step's top)."""
        return self.median_ms[self.index(width)]


def _point_summary(rounds: list[dict], ref_ms: float | None = None) -> dict:
    """One width's estimate from its rounds: median, spread (IQR or drift between rounds,
    whichever is larger) and standard error.

    Rounds timed against the op's full width (``ratio``) are scaled by ``ref_ms``, the
    median of all those reference timings: drift cancels in the ratio, and the reference
    itself is known from hundreds of blocks.
    """
    relative = ref_ms is not None and all("ratio" in r for r in rounds)
    if relative:
        values = [r["ratio"] * ref_ms for r in rounds]
        iqrs = [r["ratio_iqr"] * ref_ms for r in rounds]
    else:
        values = [r["median_ms"] for r in rounds]
        iqrs = [r["iqr_ms"] for r in rounds]
    within = statistics.median(iqrs)
    between = max(values) - min(values) if len(values) > 1 else 0.0
    se_within = math.sqrt(sum(median_stderr(q, r["samples"]) ** 2
                              for q, r in zip(iqrs, rounds, strict=True))) / len(rounds)
    se_between = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {
        "median_ms": statistics.median(values),
        "spread_ms": max(within, between),
        "stderr_ms": max(se_within, se_between),
        "rounds": len(rounds),
        "noisy": all(r["noisy"] for r in rounds),
    }


def _reference_ms(rounds_by_width: dict[int, list[dict]]) -> float | None:
    refs = [r["ref_ms"] for rs in rounds_by_width.values() for r in rs if "ref_ms" in r]
    return statistics.median(refs) if refs else None


def summarize_rounds(rounds_by_width: dict[int, list[dict]]) -> dict[int, dict]:
    """Each width's estimate (median, spread, standard error) from its measured rounds."""
    ref_ms = _reference_ms(rounds_by_width)
    return {w: _point_summary(rs, ref_ms) for w, rs in sorted(rounds_by_width.items())}


class Profile:
    def __init__(self, path: Path, fingerprint: dict[str, Any], protocol: dict[str, Any]):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.protocol = protocol
        self.ops: dict[str, dict[str, Any]] = {}  # key -> {"op": OpSpec dict, "rounds": {width: [round dicts]}}
        self.networks: dict[str, NetworkEntry] = {}
        self.notes: dict[str, Any] = {}
        self._curves: dict[str, Curve] = {}  # summaries, dropped when a round is added
        self._network_steps: dict[str, tuple[tuple[int, int], int | None]] = {}  # network -> (state, step)
        self._rounds_added = 0

    # -- files -------------------------------------------------------------------------------

    @property
    def journal(self) -> Path:
        return self.path.with_name(self.path.name + ".journal")

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        data = read_json(path, "profile", f"; create it with `staircase profile MODEL --out {path}`",
                         ": truncated or corrupt; it was left as it is: move it away and profile again")
        if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
            raise SpecError(f"{path} is not a staircase profile (expected \"format\": \"{PROFILE_FORMAT}\")")
        if not isinstance(data.get("version"), int) or data["version"] > PROFILE_VERSION:
            raise SpecError(f"profile {path} has version {data.get('version')!r}; this staircase reads {PROFILE_VERSION}")
        try:
            prof = cls(path, dict(data["fingerprint"]), dict(data["protocol"]))
            for key, entry in data["ops"].items():
                OpSpec.from_dict(entry["op"])
                prof.ops[key] = {"op": entry["op"], "rounds": {int(w): list(r) for w, r in entry["rounds"].items()}}
            prof.networks = {k: NetworkEntry.from_dict(v) for k, v in data["networks"].items()}
            prof.notes = dict(data.get("notes", {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"profile {path} is missing or has malformed field {exc}; it was left as it is") from None
        prof.replay_journal()
        return prof

    def replay_journal(self) -> None:
        if not self.journal.exists():
            return
        with open(self.journal, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line being written when the sweep was killed
                self.add_round(rec["key"], rec["op"], rec["width"], rec["m"], journal=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "fingerprint": self.fingerprint,
            "protocol": self.protocol,
            "notes": self.notes,
            "networks": {k: e.to_dict() for k, e in self.networks.items()},
            "ops": {
                key: {
                    "op": e["op"],
                    "reference_ms": _reference_ms(e["rounds"]),
                    "points": {str(w): p for w, p in summarize_rounds(e["rounds"]).items()},
                    "rounds": {str(w): r for w, r in sorted(e["rounds"].items())},
                }
                for key, e in sorted(self.ops.items())
            },
        }

    def save(self) -> Path:
        """Write the JSON atomically, then drop the journal it now contains."""
        atomic_write_json(self.path, self.to_dict())
        if self.journal.exists():
            self.journal.unlink()
        return self.path

    # -- measurements ------------------------------------------------------------------------

    def add_round(self, key: str, op: dict, width: int, m: dict, journal: bool = True) -> None:
        entry = self.ops.setdefault(key, {"op": op, "rounds": {}})
        entry["rounds"].setdefault(int(width), []).append(m)
        self._curves.pop(key, None)
        self._rounds_added += 1
        if journal:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.journal, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "op": op, "width": int(width), "m": m}) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def rounds_done(self, key: str, width: int) -> int:
        return len(self.ops.get(key, {}).get("rounds", {}).get(int(width), []))

    def curve(self, key: str) -> Curve:
        if key in self._curves:
            return self._curves[key]
        rounds = self.ops[key]["rounds"]
        widths = sorted(rounds)
        by_width = summarize_rounds(rounds)
        summaries = [by_width[w] for w in widths]
        curve = Curve(widths, [s["median_ms"] for s in summaries], [s["spread_ms"] for s in summaries],
                      [s["noisy"] for s in summaries], [s["stderr_ms"] for s in summaries])
        self._curves[key] = curve
        return curve

    def slot_curve(self, network: str, slot: str) -> Curve:
        """The slot's latency: the sum of what it changes, at the widths measured for all of
        them, read on the lattice its network was swept on with the step its slots share."""
        return replace(self._summed_curve(network, slot), lattice=self.network(network).grid,
                       network_step=self.network_step(network))

    def network_step(self, network: str) -> int | None:
        """The step the network's slots share (``steps.network_step``: their step tests
        pooled), from the slots measured so far; recomputed once rounds were added. None
        before any slot is measured."""
        entry = self.network(network)
        state = (self._rounds_added, len(entry.slots))
        cached = self._network_steps.get(network)
        if cached is None or cached[0] != state:
            curves = {}  # slots with the same layers have the same curve: it counts once
            for name, info in entry.slots.items():
                layers = tuple(sorted(info.layers.values()))
                if layers not in curves:
                    try:
                        c = self._summed_curve(network, name)
                    except SpecError:  # not measured yet
                        continue
                    curves[layers] = (c.widths, c.median_ms, c.stderr_ms)
            cached = self._network_steps[network] = (state, network_step(list(curves.values()), entry.grid))
        return cached[1]

    def _summed_curve(self, network: str, slot: str) -> Curve:
        layers = self.network(network).slots[slot].layers
        curves = [self.curve(k) for k in layers.values() if k in self.ops]
        if not curves or len(curves) < len(layers):
            raise SpecError(f"profile {self.path} has no complete measurements for slot {slot!r} of {network}")
        common = sorted(set.intersection(*(set(c.widths) for c in curves)))
        idx = [{w: i for i, w in enumerate(c.widths)} for c in curves]
        med = [sum(c.median_ms[ix[w]] for c, ix in zip(curves, idx, strict=True)) for w in common]
        spr = [sum(c.spread_ms[ix[w]] for c, ix in zip(curves, idx, strict=True)) for w in common]
        noisy = [any(c.noisy[ix[w]] for c, ix in zip(curves, idx, strict=True)) for w in common]
        se = [math.sqrt(sum(c.stderr_ms[ix[w]] ** 2 for c, ix in zip(curves, idx, strict=True))) for w in common]
        return Curve(common, med, spr, noisy, se)

    # -- checks ------------------------------------------------------------------------------

    def check_fingerprint(self, other: dict[str, Any], override: bool = False,
                          warn: Callable[[str], None] | None = None) -> None:
        """Refuse measurements from another device/backend/setting unless ``override``.

        With ``warn``, a profile that differs only in the runtime's version is used, and
        ``warn`` says so: the steps come from the same kernels more often than not, and every
        design is measured end to end here anyway. Extending a profile (``warn`` None) never
        mixes versions."""
        keys = [k for k in FINGERPRINT_KEYS if self.fingerprint.get(k) != other.get(k)]
        if keys == ["backend_version"] and warn is not None and not override:
            warn(f"profile {self.path} was measured with {self.fingerprint.get('backend')} "
                 f"{self.fingerprint.get('backend_version')}, this machine runs {other.get('backend_version')}: "
                 "using it; re-profile to be sure of the steps")
            return
        diffs = [f"{k}: profile {self.fingerprint.get(k)!r} vs here {other.get(k)!r}" for k in keys]
        if diffs and not override:
            raise ProfileMismatch(
                f"profile {self.path} was measured elsewhere ({'; '.join(diffs[:3])}); profile this device into a "
                "new file (`staircase profile MODEL --out FILE`), or pass --allow-other-device to use it anyway"
            )

    def network(self, name: str) -> NetworkEntry:
        if name not in self.networks:
            known = ", ".join(sorted(self.networks)) or "none"
            raise SpecError(f"profile {self.path} does not cover {name} (it covers: {known}); "
                            f"extend it with `staircase profile {name.split('@')[0]} --out {self.path}`")
        return self.networks[name]
