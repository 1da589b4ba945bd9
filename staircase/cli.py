"""The ``staircase`` command: one sub-command per job, each a small class.

Errors a user can fix print one line (``staircase: error: ...``) and exit 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import SpecError, StaircaseError

__all__ = ["main"]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _model_arguments() -> argparse.ArgumentParser:
    """Flags shared by every command that takes a MODEL."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("model", metavar="MODEL", help="zoo name, package.module:factory, or a student spec file")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's own)")
    p.add_argument("--input-shape", default=None, metavar="C,H,W",
                   help="input size for models that do not declare one (default: the model's own)")
    return p


def _resolve(args: argparse.Namespace):
    from .modelref import parse_input_shape, resolve_model

    return resolve_model(args.model, args.num_classes, parse_input_shape(args.input_shape))


class Command:
    name = ""
    parents: tuple[argparse.ArgumentParser, ...] = ()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


class Models(Command):
    """List the zoo: input shape, parameters, MACs and slot counts of every model."""

    name = "models"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter (default: *)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace) -> int:
        from ._table import format_table
        from .complexity import count_macs, count_params
        from .models import create_model, list_models
        from .models._registry import _MODELS
        from .slots import SlotGraph

        rows = []
        for name in list_models(args.pattern):
            model = create_model(name)
            graph = SlotGraph(model, model.input_size)
            rows.append({
                "name": name,
                "input_shape": list(model.input_size),
                "params": count_params(model),
                "macs": count_macs(model, model.input_size),
                "inner_slots": len(graph.selected()),
                "all_slots": len(graph.slots),
                "attention_points": len(model.attention_points),
                "description": (_MODELS[name].__doc__ or "").strip().splitlines()[0],
            })
        if args.json:
            _print_json(rows)
            return 0
        print(format_table(
            ["model", "input", "params (M)", "MACs (M)", "slots", "all slots", "AT points", "description"],
            [[r["name"], "x".join(map(str, r["input_shape"])), round(r["params"] / 1e6, 3), round(r["macs"] / 1e6, 1),
              r["inner_slots"], r["all_slots"], r["attention_points"], r["description"]] for r in rows],
        ))
        print("\nAlso: wrn_D_K for any depth D = 6n+4 and widen factor K; package.module:factory for your own model.")
        return 0


class Slots(Command):
    """List a model's slots: the channel groups whose width can be set."""

    name = "slots"
    parents = (_model_arguments(),)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--all", action="store_true",
                            help="also list coupled residual/concatenated/stem widths (default: the paper's inner set)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace) -> int:
        from ._table import format_table
        from .slots import SlotGraph

        resolved = _resolve(args)
        graph = SlotGraph(resolved.model, resolved.architecture.input_size or resolved.model.input_size)
        slots = graph.selected(args.all)
        if args.json:
            _print_json([s.to_dict() for s in slots])
            return 0
        rows = []
        for s in slots:
            producer = s.members_with("producer")[0]
            consumers = [m.module for m in s.members if m.role in ("consumer", "depthwise")]
            rows.append([s.name, s.width, s.kind, "yes" if s.inner else "no",
                         "x".join(map(str, producer.input_shape[1:])), len(s.members_with("producer")),
                         f"{consumers[0]}" + (f" (+{len(consumers) - 1})" if len(consumers) > 1 else "")])
        print(format_table(["slot", "width", "kind", "inner", "producer input", "producers", "consumers"], rows))
        which = "all" if args.all else "inner (default prunable)"
        print(f"\n{len(slots)} {which} slots of {len(graph.slots)} in {args.model}")
        return 0


class Student(Command):
    """Write a student spec with the given widths (a freshly initialised network on rebuild)."""

    name = "student"
    parents = (_model_arguments(),)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--widths", metavar="FILE.json",
                         help="JSON object {slot: width}, or any file with a 'widths' object (a spec, a pruning result)")
        src.add_argument("--scale", type=float, help="scale every default slot by this factor (uniform baseline)")
        parser.add_argument("--out", required=True, metavar="SPEC.json", help="where to write the spec")
        parser.add_argument("--name", default=None, help="the student's name (default: the output file's stem)")
        parser.add_argument("--json", action="store_true", help="print the spec instead of a summary")

    def run(self, args: argparse.Namespace) -> int:
        from .complexity import count_macs, count_params
        from .design import uniform_widths
        from .slots import find_slots
        from .spec import Provenance, StudentSpec, load_widths

        resolved = _resolve(args)
        if resolved.spec is not None:
            raise SpecError(f"{args.model} is already a student spec; give its teacher ({resolved.spec.teacher.name})")
        if args.widths:
            widths, method = load_widths(args.widths), "manual"
        else:
            widths, method = uniform_widths(find_slots(resolved.model), args.scale), f"uniform x{args.scale}"
        name = args.name or Path(args.out).stem
        spec, _ = StudentSpec.create(resolved.architecture, widths, name, Provenance(method=method))
        size = resolved.architecture.input_size
        teacher_params, teacher_macs = count_params(resolved.model), count_macs(resolved.model, size)
        spec.save(args.out)
        if args.json:
            _print_json(spec.to_dict())
            return 0
        changed = sum(1 for n, w in spec.widths.items() if w != spec.teacher_widths[n])
        print(f"wrote {args.out}: {name}, {changed} of {len(spec.widths)} slots narrowed")
        print(f"  params {teacher_params:,} -> {spec.params:,} ({spec.params / teacher_params:.1%})")
        print(f"  MACs   {teacher_macs:,} -> {spec.macs:,} ({spec.macs / teacher_macs:.1%})")
        return 0


class Demo(Command):
    """Run the main job end to end on the built-in default (what `make demo` runs)."""

    name = "demo"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", default="wrn_40_2", help="teacher (default: wrn_40_2)")
        parser.add_argument("--out", default="runs/demo", help="results folder (default: runs/demo)")
        parser.add_argument("--fresh", action="store_true", help="start over instead of reusing earlier results")

    def run(self, args: argparse.Namespace) -> int:
        from .demo import run_demo

        return run_demo(args.model, Path(args.out), fresh=args.fresh)


COMMANDS: tuple[type[Command], ...] = (Models, Slots, Student, Demo)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="staircase", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"staircase {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cls in COMMANDS:
        cmd = cls()
        doc = (cls.__doc__ or "").strip()
        p = sub.add_parser(cls.name, parents=list(cls.parents), help=doc.splitlines()[0], description=doc)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
        cmd.add_arguments(p)
        p.set_defaults(handler=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler.run(args)
    except StaircaseError as exc:
        if args.debug:
            raise
        print(f"staircase: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("staircase: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
