"""Student specs: a JSON file that says exactly which network to build and how it was designed.

A spec names its teacher's architecture (zoo name or factory path, keyword arguments,
input size), the width of every slot, and provenance that later stages fill in (design
method, profile, predicted and measured latency). Rebuilding from the spec alone gives the
same architecture; :meth:`StudentSpec.build` checks that by the parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .architecture import Architecture
from .complexity import count_macs, count_outputs, count_params
from .errors import SpecError, WidthError
from .files import atomic_write_json, read_json
from .slots import shrink_in_place

__all__ = ["SPEC_FORMAT", "SPEC_VERSION", "Provenance", "StudentSpec"]

SPEC_FORMAT = "staircase-student"
SPEC_VERSION = 2  # 2 added provenance.init (a student that starts from the teacher's weights)


@dataclass
class Provenance:
    """How a student was designed; fields stay ``None`` until a stage knows them."""

    method: str = "manual"
    profile: str | None = None
    backend: str | None = None
    predicted_ms: float | None = None
    measured_ms: float | None = None
    measured_iqr_ms: float | None = None
    retained_saliency: float | None = None
    # where the weights start: None (freshly initialised), or {"from": teacher checkpoint,
    # "ranked_by": "fisher" | "taylor" | "l1" | ... (a widths file's method, else "l1"), "kept": {slot: teacher channel indices},
    # "batchnorm": {"data", "batches", "batch_size"} when its statistics were measured again}
    init: dict[str, Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Provenance:
        if not isinstance(d, dict):
            raise SpecError(f"{where}: 'provenance' must be an object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError(f"{where}: unknown provenance field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class StudentSpec:
    teacher: Architecture
    widths: dict[str, int]
    teacher_widths: dict[str, int]
    num_classes: int
    params: int
    macs: int
    name: str = ""
    provenance: Provenance = field(default_factory=Provenance)

    # -- creation ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls, teacher: Architecture, widths: dict[str, int], name: str = "", provenance: Provenance | None = None
    ) -> tuple[StudentSpec, nn.Module]:
        """Build the student for ``widths`` (unnamed slots keep the teacher's width) and describe it."""
        model = teacher.build()
        teacher_widths = shrink_in_place(model, widths, teacher.input_size)
        full = {n: widths.get(n, w) for n, w in teacher_widths.items()}
        spec = cls(
            teacher=teacher,
            widths=full,
            teacher_widths=teacher_widths,
            num_classes=count_outputs(model, teacher.input_size),
            params=count_params(model),
            macs=count_macs(model, teacher.input_size),
            name=name,
            provenance=provenance or Provenance(),
        )
        return spec, model

    def build(self) -> nn.Module:
        """A freshly initialised student with exactly this spec's widths."""
        model = self.teacher.build()
        try:
            actual = shrink_in_place(model, self.widths, self.teacher.input_size)
        except WidthError as exc:
            actual = {}
            cause = f" ({exc})"
        else:
            cause = ""
        if actual != self.teacher_widths:
            missing = sorted(set(self.teacher_widths) - set(actual))
            changed = sorted(n for n in set(actual) & set(self.teacher_widths) if actual[n] != self.teacher_widths[n])
            raise SpecError(
                f"spec {self.name or '(unnamed)'}: teacher {self.teacher.name!r} no longer has the slots it was "
                f"written for (missing {missing[:4]}, other widths {changed[:4]}){cause}; "
                "rewrite the spec from the current teacher"
            )
        params = count_params(model)
        if params != self.params:
            raise SpecError(
                f"spec {self.name or '(unnamed)'}: rebuilt student has {params} parameters, the spec says {self.params}; "
                "the teacher's definition changed since the spec was written"
            )
        return model

    # -- files -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "name": self.name,
            "teacher": self.teacher.to_dict(),
            "num_classes": self.num_classes,
            "params": self.params,
            "macs": self.macs,
            "widths": dict(self.widths),
            "teacher_widths": dict(self.teacher_widths),
            "provenance": dict(vars(self.provenance)),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "spec") -> StudentSpec:
        if not isinstance(d, dict) or d.get("format") != SPEC_FORMAT:
            raise SpecError(f"{where}: not a student spec (expected \"format\": \"{SPEC_FORMAT}\")")
        version = d.get("version")
        if not isinstance(version, int) or version > SPEC_VERSION:
            raise SpecError(f"{where}: spec version {version!r} is newer than this staircase reads ({SPEC_VERSION}); upgrade staircase")
        for key, typ in (("num_classes", int), ("params", int), ("macs", int), ("widths", dict), ("teacher_widths", dict)):
            if not isinstance(d.get(key), typ) or isinstance(d.get(key), bool):
                raise SpecError(f"{where}: field {key!r} must be {'an integer' if typ is int else 'an object'}, got {d.get(key)!r}")
        for key in ("widths", "teacher_widths"):
            bad = {k: v for k, v in d[key].items() if not isinstance(v, int) or isinstance(v, bool)}
            if bad:
                raise SpecError(f"{where}: {key} of slot(s) {sorted(bad)[:4]} must be integers")
        unknown = sorted(set(d["widths"]) - set(d["teacher_widths"]))
        if unknown:
            raise SpecError(f"{where}: widths name slot(s) the teacher does not have: {unknown[:4]}")
        over = sorted(n for n, w in d["widths"].items() if not 1 <= w <= d["teacher_widths"][n])
        if over:
            n = over[0]
            raise SpecError(f"{where}: slot {n!r} has width {d['widths'][n]}, outside 1..{d['teacher_widths'][n]}")
        return cls(
            teacher=Architecture.from_dict(d.get("teacher"), where),
            widths=dict(d["widths"]),
            teacher_widths=dict(d["teacher_widths"]),
            num_classes=d["num_classes"],
            params=d["params"],
            macs=d["macs"],
            name=str(d.get("name", "")),
            provenance=Provenance.from_dict(d.get("provenance", {}), where),
        )

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> StudentSpec:
        data = read_json(path, "student spec", corrupt_hint="; is it truncated?")
        return cls.from_dict(data, str(path))

