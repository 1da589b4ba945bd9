"""The ``staircase`` command: one sub-command per job, each a small class.

Errors a user can fix print one line (``staircase: error: ...``) and exit 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import SpecError, StaircaseError
from .files import check_writable
from .settings import add_arguments, from_args

__all__ = ["main"]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _log(args: argparse.Namespace):
    """Where progress messages go: stderr when stdout carries ``--json``, else stdout."""
    return (lambda m: print(m, file=sys.stderr)) if args.json else print


def _model_arguments(parser: argparse.ArgumentParser, model_help: str | None = None) -> None:
    """MODEL and the flags that say how to build it."""
    from .modelref import ModelSettings

    add_arguments(parser, ModelSettings, helps={"model": model_help} if model_help else None)


def _resolve(args: argparse.Namespace):
    from .modelref import ModelSettings

    return from_args(ModelSettings, args).resolve()


class Command:
    name = ""
    parents: tuple[argparse.ArgumentParser, ...] = ()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


class ModelsCommand(Command):
    """List the zoo: input shape, parameters, MACs and slot counts of every model."""

    name = "models"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter (default: *)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace) -> int:
        from .complexity import count_macs, count_params
        from .models import create_model, list_models, model_description
        from .slots import SlotGraph
        from .table import format_table

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
                "description": model_description(name),
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


class SlotsCommand(Command):
    """List a model's slots: the channel groups whose width can be set."""

    name = "slots"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _model_arguments(parser)
        parser.add_argument("--all", action="store_true",
                            help="also list coupled residual/concatenated/stem widths (default: the paper's inner set)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace) -> int:
        from .slots import SlotGraph
        from .table import format_table

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


class StudentCommand(Command):
    """Write a student spec with the given widths; with --inherit, also its weights from the teacher.

    Without --inherit the spec rebuilds a freshly initialised network. With --inherit CKPT each
    narrowed slot keeps the trained teacher's most important channels (by the scores of a widths
    file of `staircase rank`, the channels a `staircase prune` run kept, else the L1 norm of their
    filters) and their weights, written beside the spec (S.json -> S.pt) for `train student
    --init`, `evaluate` and `export`."""

    name = "student"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .train.data import HeldOutSettings

        _model_arguments(parser)
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--widths", metavar="FILE.json",
                         help="JSON object {slot: width}, or any file with a 'widths' object (a spec, a pruning result)")
        src.add_argument("--scale", type=float, help="scale every default slot by this factor (uniform baseline)")
        parser.add_argument("--out", required=True, metavar="SPEC.json", help="where to write the spec")
        parser.add_argument("--name", default=None, help="the student's name (default: the output file's stem)")
        parser.add_argument("--inherit", metavar="TEACHER_CKPT", default=None,
                            help="start from this trained teacher's weights (writes SPEC.pt beside SPEC.json)")
        parser.add_argument("--data", default=None,
                            help="with --inherit: measure the student's BatchNorm statistics again on this data's "
                                 "training images (the teacher's no longer fit the narrowed layers)")
        add_arguments(parser, HeldOutSettings)
        parser.add_argument("--json", action="store_true", help="print the spec instead of a summary")

    def run(self, args: argparse.Namespace) -> int:
        from .complexity import count_macs, count_params
        from .design import uniform_widths
        from .design.inherit import inherited_student, save_student
        from .slots import find_slots
        from .spec import Provenance, StudentSpec
        from .widths import WidthsFile

        check_writable(args.out)
        resolved = _resolve(args)
        if resolved.spec is not None:
            raise SpecError(f"{args.model} is already a student spec; give its teacher ({resolved.spec.teacher.name})")
        if args.data and not args.inherit:
            raise StaircaseError("--data measures the inherited student's BatchNorm statistics: give --inherit too")
        widths_file = None
        if args.widths:
            widths_file = WidthsFile.load(args.widths)
            widths, method = widths_file.widths, "manual"
        else:
            widths, method = uniform_widths(find_slots(resolved.model), args.scale), f"uniform x{args.scale}"
        name = args.name or Path(args.out).stem
        spec, _ = StudentSpec.create(resolved.architecture, widths, name, Provenance(method=method))
        size = resolved.architecture.input_size
        teacher_params, teacher_macs = count_params(resolved.model), count_macs(resolved.model, size)
        if args.inherit:
            teacher = _load_teacher_weights(resolved, args.inherit)
            save_student(spec, inherited_student(teacher, spec, args.inherit, widths_file, args.data,
                                                        (args.val_split, args.split_seed)), args.out)
        else:
            spec.save(args.out)
        if args.json:
            _print_json(spec.to_dict())
            return 0
        changed = sum(1 for n, w in spec.widths.items() if w != spec.teacher_widths[n])
        print(f"wrote {args.out}: {name}, {changed} of {len(spec.widths)} slots narrowed")
        print(f"  params {teacher_params:,} -> {spec.params:,} ({spec.params / teacher_params:.1%})")
        print(f"  MACs   {teacher_macs:,} -> {spec.macs:,} ({spec.macs / teacher_macs:.1%})")
        if args.inherit:
            print(f"  weights: the teacher's in {args.inherit}, its most important channels by "
                  f"{spec.provenance.init['ranked_by']}, in {Path(args.out).with_suffix('.pt')}")
        return 0


class ImportCommand(Command):
    """Import a pretrained network's weights (torchvision, timm, any state dict) as a staircase checkpoint."""

    name = "import"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .train.weights import ImportSettings

        add_arguments(parser, ImportSettings)

    def run(self, args: argparse.Namespace) -> int:
        from .train.weights import ImportSettings, import_weights

        import_weights(from_args(ImportSettings, args))
        return 0


class ProfileCommand(Command):
    """Profile a device: sweep every slot's width, time it, and find the staircase (resumable)."""

    name = "profile"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .profile.job import ProfileSettings

        add_arguments(parser, ProfileSettings)
        parser.add_argument("--json", action="store_true", help="print a JSON summary")

    def run(self, args: argparse.Namespace) -> int:
        from .profile.job import ProfileSettings, profile

        settings = from_args(ProfileSettings, args)
        settings.progress = settings.progress and not args.json
        run = profile(settings, log=_log(args))
        if args.json:
            _print_json(run.summary())
            return 0 if run.sweep.complete else 3
        r = run.sweep
        phases = ", ".join(f"{name} {sec:.0f} s" for name, sec in r.phases.items())
        print(f"{run.path}: {r.measured} points measured, {r.reused} reused in {r.seconds:.0f} s"
              + (f" ({phases})" if phases else "") + (f"; plots in {run.plots[-1].parent}" if run.plots else ""))
        for warning in run.warnings:
            print(f"warning: {warning}")
        return 0 if r.complete else 3


class StepsCommand(Command):
    """Show the optimal widths (the staircase) of every slot in a profile."""

    name = "steps"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("profile", metavar="PROFILE", help="a profile file")
        parser.add_argument("--model", default=None, help="only this network (default: every network in the profile)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace) -> int:
        from .profile.store import Profile
        from .table import format_table

        prof = Profile.load(args.profile)
        nets = [n for n in prof.networks if args.model is None or n.split("@")[0] == args.model or n == args.model]
        if args.model and not nets:
            prof.network(args.model)  # raises with the list of covered networks
        rows = []
        for net in nets:
            for slot, info in prof.networks[net].slots.items():
                curve = prof.slot_curve(net, slot)
                steps = curve.steps()
                rows.append({"network": net, "slot": slot, "width": info.width, "optimal": steps.usable,
                             "step": steps.step, "step_from_network": not steps.clear and not steps.flat,
                             "spikes": steps.spikes, "grid": curve.lattice,
                             "noisy_points": sum(curve.noisy), "ms_at_full": curve.at(info.width)})
        if args.json:
            _print_json(rows)
            return 0
        print(format_table(["network", "slot", "width", "step", "usable", "spikes", "noisy", "usable widths"],
                           [[r["network"], r["slot"], r["width"],
                             f"{r['step']}{' (network)' if r['step_from_network'] else ''}", len(r["optimal"]),
                             _short(r["spikes"], 6) or "-", r["noisy_points"], _short(r["optimal"])] for r in rows]))
        for net in nets:
            grid = prof.networks[net].grid
            print(f"\n{net}: swept every {grid} widths; the network's step is {prof.network_step(net)} (its slots' "
                  f"step tests pooled; '(network)': it decided a slot whose own curve left it unclear). A step "
                  f"equal to the grid means every multiple of it is usable at its own cost (a ramp); spikes are "
                  f"widths clearly slower than both neighbours, never used")
        return 0


def _short(values: list[int], limit: int = 12) -> str:
    text = ",".join(map(str, values[:limit]))
    return text + (f",... ({len(values)})" if len(values) > limit else "")


class PredictCommand(Command):
    """Predict a network's latency from a profile (the teacher's, or a student spec's)."""

    name = "predict"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("profile", metavar="PROFILE", help="a profile file")
        _model_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")

    def run(self, args: argparse.Namespace) -> int:
        from .profile.prediction import LatencyModel
        from .profile.store import Profile, network_key

        prof = Profile.load(args.profile)
        resolved = _resolve(args)
        key = network_key(resolved.architecture.name, resolved.architecture.input_size)
        widths = {} if resolved.spec is None else {
            n: w for n, w in resolved.spec.widths.items() if w != resolved.spec.teacher_widths[n]}
        p = LatencyModel(prof, key).predict(widths)
        result = {"model": args.model, "network": key, "predicted_ms": p.median_ms, "spread_ms": p.spread_ms,
                  "teacher_ms": p.teacher_ms, "backend": prof.fingerprint.get("backend")}
        if args.json:
            _print_json(result)
        else:
            print(f"{args.model}: {p.median_ms:.4f} ms +- {p.spread_ms:.4f} predicted "
                  f"({p.median_ms / p.teacher_ms:.1%} of the teacher's {p.teacher_ms:.4f} ms) on {result['backend']}")
        return 0


class MeasureCommand(Command):
    """Time a whole network end to end on a backend: a model, a spec, or an exported .onnx / .xml file.

    It is measured at least three times in a row, and again while those disagree by more than
    10%: the median is reported with the range, and a machine too disturbed to settle is flagged."""

    name = "measure"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .profile.backends import BackendSettings

        _model_arguments(parser, "zoo name, package.module:factory, a student spec, or an exported .onnx / "
                                 "OpenVINO .xml file")
        add_arguments(parser, BackendSettings)
        parser.add_argument("--json", action="store_true", help="print JSON")

    def run(self, args: argparse.Namespace) -> int:
        from .profile.backends import BackendSettings
        from .profile.timing import measure_repeated

        backend = from_args(BackendSettings, args).make_backend()
        if args.model.endswith((".onnx", ".xml")):
            run = backend.prepare_file(args.model)
        else:
            resolved = _resolve(args)
            run = backend.prepare_model(resolved.model.eval(), resolved.architecture.input_size)
        m = measure_repeated(backend, run)
        fp = backend.fingerprint()
        result = {"model": args.model, "median_ms": m.median_ms, "low_ms": m.low_ms, "high_ms": m.high_ms,
                  "measurements": len(m.runs), "iqr_ms": statistics.median(r.iqr_ms for r in m.runs[-3:]),
                  "noisy": m.noisy, **{k: fp[k] for k in ("backend", "device", "threads", "precision", "batch")}}
        if args.json:
            _print_json(result)
            return 0
        print(f"{args.model}: {m.median_ms:.4f} ms (median of 3 measurements, {m.low_ms:.4f}-{m.high_ms:.4f}) on "
              f"{backend.name}/{backend.device}, {backend.threads} threads, {backend.precision}, batch {backend.batch}")
        if m.noisy:
            print(f"warning: after {len(m.runs)} measurements the last three still ranged {m.spread:.0%}: the machine "
                  "is disturbed; measure again when it is quiet", file=sys.stderr)
        return 0


class PruneCommand(Command):
    """Prune a trained teacher (Fisher or L1) to a target; write its widths and saliency."""

    name = "prune"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .design.prune import PruneSettings

        add_arguments(parser, PruneSettings)
        parser.add_argument("--json", action="store_true", help="print the widths file")

    def run(self, args: argparse.Namespace) -> int:
        from .design.prune import PruneSettings, prune

        pruned = prune(from_args(PruneSettings, args), log=_log(args), warn=_warn)
        run = pruned.run
        if args.json:
            _print_json(pruned.to_dict())
        else:
            print(f"{args.out}: {sum(pruned.widths.values())} channels in {len(pruned.widths)} slots after "
                  f"{run['steps']} steps ({run['seconds']:.0f} s), {len(pruned.removed)} removed; target "
                  f"{run['target']} {'reached' if run['reached'] else 'NOT reached'}")
        return 0 if run["reached"] else 3


class RankCommand(Command):
    """Score every channel of a trained network in one pass (Fisher, Taylor, L1): a widths file for design --inherit."""

    name = "rank"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .design.rank import RankSettings

        add_arguments(parser, RankSettings)

    def run(self, args: argparse.Namespace) -> int:
        from .design.rank import RankSettings, rank

        rank(from_args(RankSettings, args))
        return 0


class DesignCommand(Command):
    """Design students from a profile: snap widths to the staircase, or the best for a latency."""

    name = "design"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .design.job import DesignSettings

        add_arguments(parser, DesignSettings)
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace) -> int:
        from .design.job import DesignSettings, design

        result = design(from_args(DesignSettings, args), log=_log(args), warn=_warn)
        rows = result.rows()
        if args.json:
            _print_json({"teacher_ms": result.teacher_ms, "students": rows})
        else:
            _print_designs(result, rows)
        student = result.student
        if not student.met:
            how = "measured" if student.measured_ms is not None else "is predicted at"
            _warn(f"the closest design {how} {student.judged_ms:.3f} ms at the profile's speed, "
                  f"{student.judged_ms - result.target_ms:.3f} ms over the target {result.target_ms} ms")
            return 3
        return 0


def _warn(message: str) -> None:
    print(f"staircase: warning: {message}", file=sys.stderr)


def _print_designs(result, rows: list[dict]) -> None:
    """The design command's table, the files it wrote and the slots held at the minimum width."""
    from .design.measured import RatioInterval
    from .table import format_table

    def ms(v):
        return "-" if v is None else f"{v:.3f}"

    def over(r):
        return "-" if r["over_student"] is None else RatioInterval.from_dict(r["over_student"]).text()

    teacher = f"{result.designer.arch.name} (teacher)"
    table = [[teacher, "-", "-", ms(result.teacher_ms), "-", ms(result.teacher_ms), "-", "-", "-"]]
    table += [[r["student"], r["params"], r["macs"], ms(r["predicted_ms"]),
               "-" if r["measured_ms"] is None else f"{r['measured_ms']:.3f} +- {r['measured_iqr_ms']:.3f}",
               ms(r["at_profile_speed_ms"]), "-" if r["retained_saliency"] is None else f"{r['retained_saliency']:.1%}",
               over(r), {True: "yes", False: "NO"}.get(r["matched"], "-")] for r in rows]
    print(format_table(["network", "params", "MACs", "predicted ms", "measured ms (IQR)", "at profile speed",
                        "saliency kept", "x student [95%]", "matched (3%)"], table))
    print("(at profile speed: measured beside the teacher, scaled by the teacher's time in the profile; targets are "
          "checked against it. x student: the baseline's time over the student's, timed together pass by pass; "
          "matched: within 3% of 1)")
    for r in rows:
        print(f"wrote {r['spec']}: {r['method']}")
    student = result.student.spec
    held = student.provenance.notes.get("at_minimum_width")
    if held:
        print(f"{len(held)} slot(s) of {student.name} at the minimum width "
              f"({result.designer.min_widths[held[0]]} channels; --min-width): {', '.join(held[:6])}"
              + (" ..." if len(held) > 6 else ""))


def _load_teacher_weights(resolved, path: str):
    """The resolved model with weights from a checkpoint (a state dict, or a dict with 'model')."""
    from .train.checkpoint import load_weights

    return load_weights(resolved.model, path, resolved.architecture.name)


class TrainCommand(Command):
    """Train a teacher, or a student with attention transfer / distillation from its teacher."""

    name = "train"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .train.trainer import TrainConfig

        add_arguments(parser, TrainConfig)
        parser.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def run(self, args: argparse.Namespace) -> int:
        from .train.trainer import TrainConfig, train

        config = from_args(TrainConfig, args)
        check_writable(config.out, folder=True)
        summary = train(config, resume=args.resume, log=_log(args))
        if summary is None:  # a distributed run's other processes
            return 0
        if args.json:
            _print_json(summary.to_dict())
        else:
            print(f"done: final top-1 {summary.final_top1:.2f}%, best {summary.best_top1:.2f}%; "
                  f"checkpoints in {summary.run}/last.pt and best.pt")
        return 0


class EvaluateCommand(Command):
    """Top-1 / top-5 accuracy and loss of a checkpoint on a dataset's test split."""

    name = "evaluate"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .train.data import DATA_HELP, HeldOutSettings

        parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by `staircase train`")
        parser.add_argument("--data", required=True, help=DATA_HELP)
        add_arguments(parser, HeldOutSettings, helps={"val_split": "evaluate on this held-out share of the training "
                                                                   "images (the validation split) instead of the test set"})
        parser.add_argument("--batch-size", type=int, default=256)
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument("--workers", type=int, default=None,
                            help="data-loading processes (default: 2 for image folders, none for data in memory)")
        parser.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from .train.evaluate import evaluate_checkpoint

        if args.threads:
            torch.set_num_threads(args.threads)
        result = {"checkpoint": args.checkpoint,
                  **evaluate_checkpoint(args.checkpoint, args.data, args.val_split, args.split_seed, args.batch_size,
                                        args.workers)}
        if args.json:
            _print_json(result)
        else:
            print(f"{args.checkpoint} on {result['data']} ({result['images']} images): top-1 {result['top1']:.2f}%, "
                  f"top-5 {result['top5']:.2f}%, loss {result['loss']:.4f}")
        return 0


class ExportCommand(Command):
    """Export a checkpoint for deployment: ONNX (checked with ONNX Runtime) or OpenVINO IR."""

    name = "export"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .train.export import FORMATS

        parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by `staircase train`")
        parser.add_argument("--format", choices=FORMATS, default="onnx")
        parser.add_argument("--out", default=None, help="file to write (default: beside CKPT, .onnx or .xml)")
        parser.add_argument("--half", action="store_true", help="OpenVINO: store the weights as f16")
        parser.add_argument("--no-check", action="store_true", help="skip running the export against torch")
        parser.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        from .train.checkpoint import model_from_checkpoint
        from .train.export import export_onnx, export_openvino

        model, arch, _ = model_from_checkpoint(args.checkpoint)
        out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx" if args.format == "onnx" else ".xml")
        check_writable(out)
        if args.format == "onnx":
            result = export_onnx(model, arch.input_size, out, check=not args.no_check)
        else:
            result = export_openvino(model, arch.input_size, out, check=not args.no_check, half=args.half)
        if args.json:
            _print_json(result.to_dict())
        else:
            c = result.check
            check = "" if c is None else (
                f"; {c.checked_with}: max |torch - export| = {c.max_abs_diff:.2e}, "
                f"{'within' if c.within_tolerance else 'OVER'} the tolerance of {c.tolerance:.1e} for outputs up "
                f"to {c.output_scale:.3g}")
            print(f"wrote {result.path}{check}")
        if result.check is not None and not result.check.within_tolerance:
            _warn("the exported network's outputs differ from torch's by more than the tolerance; do not deploy it "
                  "before finding out why (an unsupported op, a precision setting)")
            return 3
        return 0


class SearchCommand(Command):
    """Search a pruning schedule's sparsities with Optuna: latency and top-1 together (a Pareto front)."""

    name = "search"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .search import SearchSettings

        add_arguments(parser, SearchSettings)
        parser.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        from .search import SearchSettings, run_search

        check_writable(args.out, folder=True)
        summary = run_search(from_args(SearchSettings, args), log=_log(args))
        if args.json:
            _print_json(summary)
        return 0


class CompareCommand(Command):
    """Compare channel pruning, weight pruning and quantisation of a trained network on this device (resumable)."""

    name = "compare"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .compare.comparison import CompareSettings

        add_arguments(parser, CompareSettings)

    def run(self, args: argparse.Namespace) -> int:
        from .compare.comparison import CompareSettings, Comparison
        from .compare.report import points_table

        check_writable(args.out, folder=True)
        points = Comparison(from_args(CompareSettings, args)).run()
        print(points_table(points))
        print(f"{args.out}/compare.json, compare.md, compare-latency.png, compare-size.png")
        return 0


class DemoCommand(Command):
    """Run the three jobs end to end on the built-in default (what `make demo` runs)."""

    name = "demo"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .demo import DemoSettings

        add_arguments(parser, DemoSettings)

    def run(self, args: argparse.Namespace) -> int:
        from .demo import DemoSettings, run_demo

        return run_demo(from_args(DemoSettings, args))


COMMANDS: tuple[type[Command], ...] = (ModelsCommand, SlotsCommand, StudentCommand, ImportCommand, ProfileCommand,
                                      StepsCommand, PredictCommand, MeasureCommand, PruneCommand, RankCommand,
                                      DesignCommand, TrainCommand, EvaluateCommand, ExportCommand, SearchCommand, CompareCommand, DemoCommand)


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
