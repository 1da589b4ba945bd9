"""`staircase demo`: the main job on the built-in default, for a newcomer's first run.

Today it exercises the width-adjustable zoo end to end: finds the teacher's slots, designs
uniform-width students at three scales, writes their specs, rebuilds each from its file
alone and checks it. Results that already exist are reused unless ``fresh``.
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


def run_demo(model_name: str, out: Path, fresh: bool = False) -> int:
    start = time.perf_counter()
    if fresh and out.exists():
        shutil.rmtree(out)
    resolved = resolve_model(model_name)
    teacher, arch = resolved.model, resolved.architecture
    graph = SlotGraph(teacher, arch.input_size)
    inner = graph.selected()
    print(f"[1/3] {model_name}: {len(graph.slots)} slots, {len(inner)} in the default prunable set "
          f"(input {'x'.join(map(str, arch.input_size))})")

    print(f"[2/3] uniform students at {', '.join(f'{s:.0%}' for s in SCALES)} of the inner widths -> {out}/students")
    rows = [["teacher", count_params(teacher), count_macs(teacher, arch.input_size), "-"]]
    for scale in SCALES:
        path = out / "students" / f"{model_name}-uniform{int(scale * 100)}.json"
        if path.exists():
            spec = StudentSpec.load(path)
            print(f"      reusing {path}")
        else:
            spec, _ = StudentSpec.create(arch, uniform_widths(inner, scale), path.stem, Provenance(method=f"uniform x{scale}"))
            spec.save(path)
            print(f"      wrote {path}")
        rows.append([spec.name, spec.params, spec.macs, str(path)])

    print("[3/3] rebuilding every student from its spec file alone")
    for row in rows[1:]:
        spec = StudentSpec.load(row[3])
        student = spec.build().eval()
        with torch.no_grad():
            logits = student(torch.randn(2, *arch.input_size))
        if logits.shape != (2, spec.num_classes):
            raise RuntimeError(f"{spec.name}: rebuilt student gives logits {tuple(logits.shape)}")
    print()
    print(format_table(["network", "params", "MACs", "spec"], rows))
    print(f"\ndone in {time.perf_counter() - start:.1f} s; specs in {out}/students")
    return 0
