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
from .profile.steps import DEFAULT_GRID
from .settings import add_arguments, from_args

__all__ = ["main"]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _log(args: argparse.Namespace):
    """Where progress messages go: stderr when stdout carries ``--json``, else stdout."""
    return (lambda m: print(m, file=sys.stderr)) if args.json else print


def _model_arguments(model_help: str = "zoo name, package.module:factory, or a student spec file"
                     ) -> argparse.ArgumentParser:
    """Flags shared by every command that takes a MODEL."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("model", metavar="MODEL", help=model_help)
    _model_flags(p)
    return p


def _model_flags(p) -> None:
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's own)")
    p.add_argument("--input-shape", default=None, metavar="C,H,W",
                   help="input size for models that do not declare one (default: the model's own)")


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
    parents = (_model_arguments(),)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
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
    narrowed slot keeps the trained teacher's most important channels (Fisher saliency from a
    widths file of `staircase prune`, else the L1 norm of their filters) and their weights,
    written beside the spec (S.json -> S.pt) for `train student --init`, `evaluate` and `export`."""

    name = "student"
    parents = (_model_arguments(),)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--widths", metavar="FILE.json",
                         help="JSON object {slot: width}, or any file with a 'widths' object (a spec, a pruning result)")
        src.add_argument("--scale", type=float, help="scale every default slot by this factor (uniform baseline)")
        parser.add_argument("--out", required=True, metavar="SPEC.json", help="where to write the spec")
        parser.add_argument("--name", default=None, help="the student's name (default: the output file's stem)")
        parser.add_argument("--inherit", metavar="TEACHER_CKPT", default=None,
                            help="start from this trained teacher's weights (writes SPEC.pt beside SPEC.json)")
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
            save_student(spec, inherited_student(teacher, spec, args.inherit, widths_file), args.out)
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


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    """Each named numeric argument, when given, is a finite number above zero."""
    import math

    for name in names:
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise StaircaseError(f"--{name.replace('_', '-')} must be a positive number, got {value}")


def _backend_arguments() -> argparse.ArgumentParser:
    """Flags shared by every command that runs a backend."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--backend", default="onnxruntime", help="torch, onnxruntime or openvino (default: onnxruntime)")
    p.add_argument("--backend-device", default=None, help="the backend's device (default: cpu; CPU for openvino)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default: 1)")
    p.add_argument("--precision", default="f32", help="f32, bf16, f16 or int8 where the backend runs it (int8: onnxruntime and openvino, ops quantised to QDQ; default: f32)")
    return p


def _backend(args: argparse.Namespace):
    from .profile.backends import get_backend

    return get_backend(args.backend, args.backend_device, args.threads, args.batch, args.precision)


class ProfileCommand(Command):
    """Profile a device: sweep every slot's width, time it, and find the staircase (resumable)."""

    name = "profile"
    parents = (_model_arguments(), _backend_arguments())

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", default=None, help="profile file (default: profiles/<device>-<backend>.json)")
        parser.add_argument("--all", action="store_true", help="also profile coupled residual/concat/stem slots")
        parser.add_argument("--grid", type=int, default=DEFAULT_GRID,
                            help="sweep every N-th width (the lattice), probing between grid widths below each step's "
                                 f"edge; 1 sweeps every width (default: {DEFAULT_GRID})")
        parser.add_argument("--rounds", type=int, default=1,
                            help="interleaved rounds per lattice width before the uncertain ones are measured again "
                                 "(default: 1)")
        parser.add_argument("--timing", choices=("quick", "standard", "careful"), default="standard",
                            help="how hard uncertain widths are measured again: quick (one short pass), standard "
                                 "(two), careful (three, longer, and longer lattice rounds: noisy machines) "
                                 "(default: standard)")
        parser.add_argument("--budget-minutes", type=float, default=None, help="stop after this long; rerun to continue")
        parser.add_argument("--seed", type=int, default=0, help="order of the shuffled sweep (default: 0)")
        parser.add_argument("--recalibrate", action="store_true",
                            help="time the full network and the calibration students again, keeping the op "
                                 "measurements (when the machine was disturbed while they were taken)")
        parser.add_argument("--plots", default=None, help="folder for the plots (default: beside the profile)")
        parser.add_argument("--allow-other-device", action="store_true", help="extend a profile measured elsewhere")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument("--json", action="store_true", help="print a JSON summary")

    def run(self, args: argparse.Namespace) -> int:
        from .modelref import parse_input_shape
        from .profile.calibration import disturbed_whole_network
        from .profile.plots import plot_profile
        from .profile.prediction import LatencyModel
        from .profile.sweep import profile_network

        backend = _backend(args)
        out = Path(args.out) if args.out else Path("profiles") / f"{_device_tag(backend)}-{backend.name}.json"
        check_writable(out)
        log = _log(args)
        result = profile_network(args.model, backend, out, input_size=parse_input_shape(args.input_shape),
                                 num_classes=args.num_classes, include_all=args.all, grid=args.grid,
                                 rounds=args.rounds, timing=args.timing, recalibrate=args.recalibrate,
                                 budget_minutes=args.budget_minutes, seed=args.seed,
                                 allow_other_device=args.allow_other_device,
                                 progress=not (args.json or args.no_progress), log=log)
        plots = []
        if result.complete:
            plots = plot_profile(result.profile, result.network, args.plots or out.with_suffix("") / result.network)
        summary = {"profile": str(out), "network": result.network, "measured": result.measured,
                   "reused": result.reused, "complete": result.complete, "noisy_points": result.noisy_points,
                   "seconds": round(result.seconds, 1),
                   "phases": {name: round(sec, 1) for name, sec in result.phases.items()}, "plots": str(plots[-1]) if plots else None}
        disturbed = disturbed_whole_network(result.profile, result.network) if result.complete else None
        summary["whole_network_warning"] = disturbed
        if args.json:
            _print_json(summary)
        else:
            phases = ", ".join(f"{name} {sec:.0f} s" for name, sec in result.phases.items())
            print(f"{out}: {result.measured} points measured, {result.reused} reused in {result.seconds:.0f} s"
                  + (f" ({phases})" if phases else "") + (f"; plots in {plots[-1].parent}" if plots else ""))
            if result.noisy_points:
                print(f"warning: {result.noisy_points} points stayed noisy (spread above the protocol's target); "
                      "their steps are less certain: see `staircase steps`")
            if disturbed:
                print(f"warning: {disturbed}")
            few = LatencyModel(result.profile, result.network).few_steps() if result.complete else None
            if few:
                print(f"warning: {few}")
        return 0 if result.complete else 3


def _device_tag(backend) -> str:
    import re

    name = backend.device if backend.device.lower() != "cpu" else backend.device_name()
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "device"


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
            print(f"\n{net}: swept every {grid} widths; the network's step is {prof.period(net)} (its slots' "
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
        parser.add_argument("model", metavar="MODEL", help="zoo name, package.module:factory, or a student spec file")
        _model_flags(parser)
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
    parents = (_model_arguments("zoo name, package.module:factory, a student spec, or an exported .onnx / "
                                "OpenVINO .xml file"), _backend_arguments())

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")

    def run(self, args: argparse.Namespace) -> int:
        from .profile.timing import measure_repeated

        backend = _backend(args)
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
    parents = (_model_arguments(),)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--checkpoint", default=None, help="the trained teacher's weights")
        parser.add_argument("--data", default=None, help="digits, cifar10:PATH, cifar100:PATH or folder:PATH")
        parser.add_argument("--method", choices=("fisher", "l1"), default="fisher")
        parser.add_argument("--target-channels", type=int, default=None, help="total channels of the pruned slots")
        parser.add_argument("--target-params", type=float, default=None, help="parameters (e.g. 1.2e6)")
        parser.add_argument("--target-ms", type=float, default=None, help="predicted latency (needs --profile)")
        parser.add_argument("--profile", default=None, help="device profile for --target-ms and --latency-aware")
        parser.add_argument("--latency-aware", action="store_true",
                            help="rank channels by saliency per millisecond their slot saves (needs --profile)")
        parser.add_argument("--schedule", choices=("fast", "reference"), default="fast",
                            help="fast: 4 channels every 10 steps; reference: 1 every 100 (Crowley et al.)")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--max-steps", type=int, default=None, help="stop fine-tuning after this many steps")
        parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
        parser.add_argument("--out", required=True, help="widths file to write (JSON)")
        parser.add_argument("--json", action="store_true", help="print the widths file")

    def run(self, args: argparse.Namespace) -> int:
        from .design.prune import Target, run_prune

        _check_positive(args, "target_channels", "target_params", "target_ms")
        check_writable(args.out)
        resolved = _resolve(args)
        if args.checkpoint:
            _load_teacher_weights(resolved, args.checkpoint)
        elif args.method == "fisher":
            print("staircase: warning: no --checkpoint: pruning an untrained network", file=sys.stderr)
        predicted = cost = None
        if args.profile:
            latency = _latency_model(args.profile, resolved)
            predicted, cost = latency.predicted_ms, latency.channel_cost
        elif args.latency_aware:
            raise StaircaseError("--latency-aware needs --profile PROFILE")
        target = Target(args.target_channels, int(args.target_params) if args.target_params else None,
                        args.target_ms, predicted)
        log = _log(args)
        doc = run_prune(resolved, args.method, target, Path(args.out), args.data, args.schedule, args.batch_size,
                        args.max_steps, cost if args.latency_aware else None, args.threads, log)
        if args.json:
            _print_json(doc)
        else:
            print(f"{args.out}: {sum(doc['widths'].values())} channels in {len(doc['widths'])} slots after "
                  f"{doc['steps']} steps ({doc['seconds']:.0f} s), {len(doc['removed'])} removed; target "
                  f"{doc['target']} {'reached' if doc['reached'] else 'NOT reached'}")
        return 0 if doc["reached"] else 3


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
            _warn(f"the closest design measured {student.judged_ms:.3f} ms at the profile's speed, "
                  f"{student.judged_ms - result.target_ms:.3f} ms over the target {result.target_ms} ms")
            return 3
        return 0


def _warn(message: str) -> None:
    print(f"staircase: warning: {message}", file=sys.stderr)


def _print_designs(result, rows: list[dict]) -> None:
    """The design command's table, the files it wrote and the slots held at the minimum width."""
    from .table import format_table

    def ms(v):
        return "-" if v is None else f"{v:.3f}"

    teacher = f"{result.designer.arch.name} (teacher)"
    table = [[teacher, "-", "-", ms(result.teacher_ms), "-", ms(result.teacher_ms), "-", "-"]]
    table += [[r["student"], r["params"], r["macs"], ms(r["predicted_ms"]),
               "-" if r["measured_ms"] is None else f"{r['measured_ms']:.3f} +- {r['measured_iqr_ms']:.3f}",
               ms(r["at_profile_speed_ms"]), "-" if r["retained_saliency"] is None else f"{r['retained_saliency']:.1%}",
               {True: "yes", False: "NO"}.get(r["matched"], "-")] for r in rows]
    print(format_table(["network", "params", "MACs", "predicted ms", "measured ms (IQR)", "at profile speed",
                        "saliency kept", "matched (3%)"], table))
    print("(at profile speed: measured beside the teacher, scaled by the teacher's time in the profile; "
          "targets are checked against it)")
    for r in rows:
        print(f"wrote {r['spec']}: {r['method']}")
    student = result.student.spec
    held = student.provenance.notes.get("at_minimum_width")
    if held:
        print(f"{len(held)} slot(s) of {student.name} at the minimum width "
              f"({result.designer.min_widths[held[0]]} channels; --min-width): {', '.join(held[:6])}"
              + (" ..." if len(held) > 6 else ""))


def _latency_model(profile_path: str, resolved):
    from .profile.prediction import LatencyModel
    from .profile.store import Profile, network_key

    arch = resolved.architecture
    return LatencyModel(Profile.load(profile_path), network_key(arch.name, arch.input_size))


def _load_teacher_weights(resolved, path: str):
    """The resolved model with weights from a checkpoint (a state dict, or a dict with 'model')."""
    from .train.checkpoint import load_weights

    return load_weights(resolved.model, path, resolved.architecture.name)


class TrainCommand(Command):
    """Train a teacher, or a student with attention transfer / distillation from its teacher."""

    name = "train"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .train.data import DATA_KINDS

        parser.add_argument("role", choices=("teacher", "student"), help="what is trained")
        parser.add_argument("model", metavar="MODEL_OR_SPEC",
                            help="teacher: zoo name or package.module:factory; student: a student spec (or any model)")
        parser.add_argument("--data", required=True, help=", ".join(DATA_KINDS))
        parser.add_argument("--out", default=None, help="run directory (default: runs/<role>-<model>)")
        parser.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
        g = parser.add_argument_group("distillation (student)")
        g.add_argument("--teacher", default=None, metavar="CKPT", help="the teacher's checkpoint")
        g.add_argument("--at-beta", type=float, default=None,
                       help="attention-transfer weight (default 1e3 with --teacher, as the reference)")
        g.add_argument("--kd-alpha", type=float, default=0.0, help="knowledge-distillation weight (0 = off)")
        g.add_argument("--kd-T", type=float, default=4.0, help="distillation temperature")
        g.add_argument("--student-points", default=None, metavar="A,B,..", help="attention points by module path")
        g.add_argument("--teacher-points", default=None, metavar="A,B,..", help="the teacher's, paired in order")
        g.add_argument("--allow-other-teacher", action="store_true",
                       help="distil from a teacher other than the one the spec was designed from")
        g.add_argument("--init", default=None, metavar="CKPT",
                       help="start from these weights instead of at random (fine-tuning, e.g. a pruned network)")
        g.add_argument("--sparsity", type=float, default=0.0, metavar="S",
                       help="with --init: set this share of the weights (the smallest magnitudes, ranked over "
                            "every convolution and linear layer) to zero and hold them there (default: 0)")
        g = parser.add_argument_group("recipe (defaults: the attention-transfer reference)")
        g.add_argument("--epochs", type=int, default=200)
        g.add_argument("--batch-size", type=int, default=128)
        g.add_argument("--lr", type=float, default=0.1)
        g.add_argument("--momentum", type=float, default=0.9)
        g.add_argument("--weight-decay", type=float, default=5e-4)
        g.add_argument("--schedule", choices=("step", "cosine"), default="step",
                       help="step: lr x0.2 at 30/60/80%% of the epochs; cosine: cosine annealing to 0")
        g.add_argument("--warmup-epochs", type=int, default=0,
                       help="epochs at lr/10 before the schedule (deep ResNets from scratch)")
        g.add_argument("--train-images", type=int, default=None, help="train on this many images only")
        g.add_argument("--val-split", type=float, default=0.0, help="hold out this share of train as the test set")
        g.add_argument("--seed", type=int, default=0)
        g.add_argument("--deterministic", action="store_true",
                       help="deterministic algorithms: a killed and resumed run ends with the same weights")
        g = parser.add_argument_group("hardware")
        g.add_argument("--train-device", default="auto",
                       help="where it trains: auto, cpu, cuda or cuda:N (torchrun: one GPU per process; default: auto)")
        g.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
        g.add_argument("--workers", type=int, default=0, help="data-loading processes")
        g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                       help="mixed precision (default: on for CUDA)")
        g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                       help="channels-last memory format (default: on for CUDA)")
        g.add_argument("--tensorboard", action="store_true", help="also log to RUN/tensorboard")
        g.add_argument("--no-progress", action="store_true", help="no progress bars")
        parser.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the data's)")
        parser.add_argument("--input-shape", default=None, metavar="C,H,W", help="input size for models without one")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def run(self, args: argparse.Namespace) -> int:
        from .modelref import parse_input_shape
        from .train.trainer import TrainConfig, train

        points = {k: getattr(args, k).split(",") if getattr(args, k) else None
                  for k in ("student_points", "teacher_points")}
        shape = parse_input_shape(args.input_shape)
        stem = Path(args.model).stem if args.model.endswith(".json") else args.model.replace(":", "-").replace(".", "_")
        check_writable(args.out or "runs", folder=True)
        config = TrainConfig(
            model=args.model, data=args.data, out=args.out or f"runs/{args.role}-{stem}", role=args.role,
            teacher=args.teacher, init=args.init, sparsity=args.sparsity, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
            weight_decay=args.weight_decay, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
            at_beta=(1e3 if args.teacher else 0.0) if args.at_beta is None else args.at_beta,
            kd_alpha=args.kd_alpha, kd_T=args.kd_T, allow_other_teacher=args.allow_other_teacher,
            num_classes=args.num_classes, input_shape=list(shape) if shape else None,
            train_images=args.train_images, val_split=args.val_split, seed=args.seed,
            deterministic=args.deterministic, device=args.train_device, threads=args.threads, workers=args.workers,
            amp=args.amp, channels_last=args.channels_last, tensorboard=args.tensorboard,
            progress=not args.no_progress, **points)
        log = _log(args)
        summary = train(config, resume=args.resume, log=log)
        if args.json:
            _print_json(summary)
        elif summary:
            print(f"done: final top-1 {summary['final_top1']:.2f}%, best {summary['best_top1']:.2f}%; "
                  f"checkpoints in {summary['run']}/last.pt and best.pt")
        return 0


class EvaluateCommand(Command):
    """Top-1 / top-5 accuracy and loss of a checkpoint on a dataset's test split."""

    name = "evaluate"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by `staircase train`")
        parser.add_argument("--data", required=True, help="digits, cifar10:PATH, cifar100:PATH or folder:PATH")
        parser.add_argument("--val-split", type=float, default=0.0, help="evaluate on this held-out share of train")
        parser.add_argument("--seed", type=int, default=0, help="the seed of the held-out split")
        parser.add_argument("--batch-size", type=int, default=256)
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from .train.checkpoint import model_from_checkpoint
        from .train.data import load_data
        from .train.evaluate import evaluate

        if args.threads:
            torch.set_num_threads(args.threads)
        model, arch, _ = model_from_checkpoint(args.checkpoint)
        data = load_data(args.data, arch.input_size, val_split=args.val_split, seed=args.seed, augment=False)
        result = {"checkpoint": args.checkpoint, "data": data.name,
                  **evaluate(model, data.test, args.batch_size, "cuda" if torch.cuda.is_available() else "cpu")}
        if args.json:
            _print_json(result)
        else:
            print(f"{args.checkpoint} on {data.name} ({result['images']} images): top-1 {result['top1']:.2f}%, "
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
            _print_json(result)
        else:
            check = ""
            if "max_abs_diff" in result:
                verdict = "within" if result["within_tolerance"] else "OVER"
                check = (f"; {result['checked_with']}: max |torch - export| = {result['max_abs_diff']:.2e}, "
                         f"{verdict} the tolerance of {result['tolerance']:.1e} for outputs up to "
                         f"{result['output_scale']:.3g}")
            print(f"wrote {result['path']}{check}")
        if result.get("within_tolerance") is False:
            print("staircase: warning: the exported network's outputs differ from torch's by more than the tolerance; "
                  "do not deploy it before finding out why (an unsupported op, a precision setting)", file=sys.stderr)
            return 3
        return 0


class SearchCommand(Command):
    """Search a pruning schedule's sparsities with Optuna: latency and top-1 together (a Pareto front)."""

    name = "search"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("schedule", metavar="SCHEDULE", help="a Distiller-style YAML schedule, or a shipped "
                                                                 "one's name (resnet56_cifar10)")
        parser.add_argument("--checkpoint", required=True, help="the trained, unpruned network (`staircase train`)")
        parser.add_argument("--data", required=True, help="digits, cifar10:PATH, cifar100:PATH or folder:PATH")
        parser.add_argument("--trials", type=int, default=20, help="finished trials the study should hold")
        parser.add_argument("--out", default="runs/search", help="folder for the study, trials and front")
        parser.add_argument("--backend", default="onnxruntime", help="where latency is measured")
        parser.add_argument("--backend-device", default=None, help="the backend's device (e.g. CPU, GPU for OpenVINO)")
        parser.add_argument("--threads", type=int, default=None, help="CPU threads (shared out among --workers)")
        parser.add_argument("--timing", choices=("quick", "standard", "careful"), default="standard",
                            help="how long each latency measurement takes")
        parser.add_argument("--epochs", type=int, default=None, help="retraining epochs (default: the schedule's)")
        parser.add_argument("--lr", type=float, default=None, help="retraining learning rate (default: the schedule's)")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--train-images", type=int, default=None, help="retrain on this many images only")
        parser.add_argument("--train-device", default="auto", help="where trials retrain: auto, cpu, cuda (default: auto)")
        parser.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite in --out)")
        parser.add_argument("--study-name", default="staircase-search")
        parser.add_argument("--workers", type=int, default=1, help="trials at once, each in its own process")
        parser.add_argument("--ray", default=None, metavar="ADDRESS",
                            help="run trials as Ray tasks on this cluster (auto, ray://host:10001, or local)")
        parser.add_argument("--profile", default=None, help="snap each trial's widths to this profile's optimal widths")
        parser.add_argument("--snap", choices=("nearest", "up", "down"), default="up")
        parser.add_argument("--no-early-stop", action="store_true", help="retrain every trial for all its epochs")
        parser.add_argument("--margin", type=float, default=1.0,
                            help="stop a trial when a faster finished trial led by this many top-1 points at the "
                                 "same epoch")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        from .search import SearchSettings, run_search

        check_writable(args.out, folder=True)
        settings = SearchSettings(
            schedule=args.schedule, checkpoint=args.checkpoint, data=args.data, out=args.out, trials=args.trials,
            backend=args.backend, backend_device=args.backend_device, threads=args.threads, timing=args.timing,
            epochs=args.epochs,
            lr=args.lr, batch_size=args.batch_size, train_images=args.train_images, train_device=args.train_device,
            storage=args.storage, study_name=args.study_name, workers=args.workers, ray_address=args.ray,
            profile=args.profile, snap=args.snap, early_stop=not args.no_early_stop, margin=args.margin,
            seed=args.seed)
        log = _log(args)
        summary = run_search(settings, log=log)
        if args.json:
            _print_json(summary)
        return 0


class CompareCommand(Command):
    """Compare channel pruning, weight pruning and quantisation of a trained network on this device (resumable)."""

    name = "compare"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .compare.comparison import METHODS, CompareSettings
        from .design.allocations import ALLOCATIONS
        from .train.data import DATA_KINDS

        d = CompareSettings("", "", "")
        parser.add_argument("teacher", metavar="TEACHER_CKPT", help="the trained network (`staircase train teacher`)")
        parser.add_argument("--data", required=True, help=f"what it was trained on: {', '.join(DATA_KINDS)}")
        parser.add_argument("--backend", default=d.backend, choices=("onnxruntime", "openvino", "torch"),
                            help="the runtime every point is measured on (default: onnxruntime)")
        parser.add_argument("--out", required=True, help="results folder (rerun to continue)")
        parser.add_argument("--profile", default=None,
                            help="device profile for the channel-pruned students (default: made in --out)")
        parser.add_argument("--widths", default=None,
                            help="a `staircase prune` widths file: the students keep the teacher's most "
                                 "Fisher-salient channels, and its widths unsnapped are a point of their own")
        parser.add_argument("--allocation", choices=ALLOCATIONS, default=d.allocation,
                            help=f"how the channel-pruned students share their latency (default: {d.allocation}; "
                                 "see `staircase design --help`)")
        parser.add_argument("--methods", nargs="+", default=None, metavar="M",
                            help=f"of {', '.join(METHODS)} (default: all the backend runs here)")
        parser.add_argument("--targets", nargs="+", type=float, default=d.targets, metavar="SHARE",
                            help="channel pruning: latency targets as shares of the network's (default: "
                                 f"{' '.join(map(str, d.targets))})")
        parser.add_argument("--sparsities", nargs="+", type=float, default=d.sparsities, metavar="S",
                            help=f"weight pruning: shares of zeros (default: {' '.join(map(str, d.sparsities))})")
        parser.add_argument("--int8-settings", nargs="+", default=None, metavar="NAME",
                            help="quantiser settings to try (default: all the backend's; the first is used for "
                                 "channel+int8)")
        parser.add_argument("--epochs", type=int, default=d.epochs, help=f"fine-tuning per point (default: {d.epochs})")
        parser.add_argument("--lr", type=float, default=d.lr, help=f"fine-tuning learning rate (default: {d.lr})")
        parser.add_argument("--batch-size", type=int, default=d.batch_size)
        parser.add_argument("--train-images", type=int, default=None, help="fine-tune on this many images only")
        parser.add_argument("--calibration-images", type=int, default=d.calibration_images,
                            help=f"training images the INT8 ranges are measured on (default: {d.calibration_images})")
        parser.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
        parser.add_argument("--single-thread", action="store_true", help="also measure every point at one thread")
        parser.add_argument("--grid", type=int, default=d.grid, help="profiling grid when no --profile is given")
        parser.add_argument("--timing", choices=("quick", "standard", "careful"), default=d.timing,
                            help="how carefully the profile (when none is given), the designs and every point "
                                 "are timed (default: standard)")
        parser.add_argument("--seed", type=int, default=d.seed)

    def run(self, args: argparse.Namespace) -> int:
        from .compare.comparison import CompareSettings, Comparison
        from .compare.report import points_table

        check_writable(args.out, folder=True)
        settings = CompareSettings(
            teacher=args.teacher, data=args.data, out=args.out, backend=args.backend, profile=args.profile,
            widths=args.widths, allocation=args.allocation, methods=args.methods, targets=args.targets, sparsities=args.sparsities,
            int8_settings=args.int8_settings, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
            train_images=args.train_images, calibration_images=args.calibration_images, threads=args.threads,
            single_thread=args.single_thread, grid=args.grid, timing=args.timing, seed=args.seed)
        points = Comparison(settings).run()
        print(points_table(points))
        print(f"{args.out}/compare.json, compare.md, compare-latency.png, compare-size.png")
        return 0


class DemoCommand(Command):
    """Run the three jobs end to end on the built-in default (what `make demo` runs)."""

    name = "demo"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from .demo import DemoSettings

        d = DemoSettings()
        parser.add_argument("--model", default=d.model, help=f"teacher (default: {d.model})")
        parser.add_argument("--out", default="runs/demo", help="results folder (default: runs/demo)")
        parser.add_argument("--fresh", action="store_true", help="start over instead of reusing earlier results")
        parser.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs)
        parser.add_argument("--student-epochs", type=int, default=d.student_epochs)
        parser.add_argument("--target", type=float, default=d.target,
                            help=f"latency target as a share of the teacher's (default: {d.target})")
        parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")

    def run(self, args: argparse.Namespace) -> int:
        from .demo import DemoSettings, run_demo

        if not 0 < args.target < 1:
            raise StaircaseError(f"--target {args.target} must be a share of the teacher's latency, in (0, 1)")
        settings = DemoSettings(model=args.model, teacher_epochs=args.teacher_epochs,
                                student_epochs=args.student_epochs, target=args.target, threads=args.threads)
        check_writable(args.out, folder=True)
        return run_demo(Path(args.out), settings, fresh=args.fresh)


COMMANDS: tuple[type[Command], ...] = (ModelsCommand, SlotsCommand, StudentCommand, ProfileCommand, StepsCommand,
                                      PredictCommand, MeasureCommand, PruneCommand, DesignCommand, TrainCommand,
                                      EvaluateCommand, ExportCommand, SearchCommand, CompareCommand, DemoCommand)


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
