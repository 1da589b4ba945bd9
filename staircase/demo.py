"""`staircase demo`: the main job on the built-in default, for a newcomer's first run.

Today it runs what exists end to end: profiles this CPU for the teacher (coarse grid,
ONNX Runtime), shows its steps, designs uniform-width students at three scales and the
same snapped up to the staircase, writes their specs, rebuilds each from its file alone,
and predicts each one's latency from the profile. Results that already exist (the
profile, the specs) are reused unless ``fresh``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from ._table import format_table
from .complexity import count_macs, count_params
from .design import uniform_widths
from .modelref import resolve_model
from .slots import SlotGraph
from .spec import Provenance, StudentSpec

SCALES = (0.3, 0.5, 0.7)


def _profile(model_name: str, out: Path, grid: int, timing: str):
    from .profile.backends import get_backend
    from .profile.plots import plot_profile
    from .profile.sweep import profile_network

    backend = get_backend("onnxruntime", threads=None)
    path = out / "profile.json"
    if path.exists():
        print(f"      reusing {path} (--fresh to measure again)")
    result = profile_network(model_name, backend, path, grid=grid, rounds=2, timing=timing, progress=True, log=lambda m: print("      " + m))
    plots = plot_profile(result.profile, result.network, out / "plots", per_slot=False)
    print(f"      staircase plot: {plots[-1]}")
    return result


def run_demo(model_name: str, out: Path, fresh: bool = False, grid: int = 4, timing: str = "standard") -> int:
    start = time.perf_counter()
    if fresh and out.exists():
        shutil.rmtree(out)
    resolved = resolve_model(model_name)
    teacher, arch = resolved.model, resolved.architecture
    graph = SlotGraph(teacher, arch.input_size)
    inner = graph.selected()
    print(f"[1/4] {model_name}: {len(graph.slots)} slots, {len(inner)} in the default prunable set "
          f"(input {'x'.join(map(str, arch.input_size))})")

    print(f"[2/4] profiling this CPU for {model_name} (every {grid}th width, onnxruntime)")
    from .profile.network import predict
    from .profile.staircase import snap

    result = _profile(model_name, out, grid, timing)
    prof, net = result.profile, result.network
    optimal = {s: prof.slot_curve(net, s).optimal() for s in prof.networks[net]["slots"]}
    first = next(iter(optimal))
    print(f"      e.g. {first}: optimal widths {optimal[first]}")

    print(f"[3/4] uniform students at {', '.join(f'{s:.0%}' for s in SCALES)} of the inner widths -> {out}/students")
    rows = [["teacher", count_params(teacher), count_macs(teacher, arch.input_size), predict(prof, net, {}).median_ms, "-"]]
    for scale in SCALES:
        uniform = uniform_widths(inner, scale)
        snapped = {n: snap(w, optimal[n], "up") for n, w in uniform.items()}
        for tag, widths in (("uniform", uniform), ("snapped", snapped)):
            path = out / "students" / f"{model_name}-{tag}{int(scale * 100)}.json"
            if path.exists():
                spec = StudentSpec.load(path)
                print(f"      reusing {path}")
            else:
                method = f"uniform x{scale}" + (", snapped up to the staircase" if tag == "snapped" else "")
                p = predict(prof, net, widths)
                spec, _ = StudentSpec.create(arch, widths, path.stem, Provenance(
                    method=method, profile=str(out / "profile.json"), backend="onnxruntime", predicted_ms=p.median_ms))
                spec.save(path)
                print(f"      wrote {path}")
            rows.append([spec.name, spec.params, spec.macs, spec.provenance.predicted_ms, str(path)])

    print("[4/4] rebuilding every student from its spec file alone")
    for row in rows[1:]:
        spec = StudentSpec.load(row[4])
        student = spec.build().eval()
        with torch.no_grad():
            logits = student(torch.randn(2, *arch.input_size))
        if logits.shape != (2, spec.num_classes):
            raise RuntimeError(f"{spec.name}: rebuilt student gives logits {tuple(logits.shape)}")
    print()
    print(format_table(["network", "params", "MACs", "predicted ms", "spec"], rows))
    print(f"\ndone in {time.perf_counter() - start:.1f} s; specs in {out}/students")
    return 0
