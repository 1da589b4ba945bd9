"""A comparison's points as a table, Pareto fronts and plots (top-1 against latency and
against size, one line per method)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..table import format_table
from .point import Point

__all__ = ["in_table_order", "pareto", "points_table", "plot_points", "write_report"]

MARKERS = {"teacher": "*", "channel": "o", "channel-unsnapped": "v", "weight": "s", "int8": "D",
           "channel+int8": "P", "bf16": "X", "f16": "X"}


def pareto(points: Sequence[Point], cost: str) -> set[int]:
    """Indices of the points no other point beats: as accurate or more at ``cost`` as low or
    lower, better in one of the two."""
    front = set()
    for i, p in enumerate(points):
        if not any(q.cost(cost) <= p.cost(cost) and q.top1 >= p.top1 and (q.cost(cost) < p.cost(cost) or q.top1 > p.top1)
                   for j, q in enumerate(points) if j != i):
            front.add(i)
    return front


def points_table(points: Sequence[Point]) -> str:
    fast, small = pareto(points, "ratio"), pareto(points, "size_bytes")
    one_thread = any(p.ratio_1_thread is not None for p in points)
    rows = []
    for i in _table_order(points):
        p = points[i]  # i: its place in ``points``, which the fronts name
        rows.append([p.method, p.setting, f"{p.top1:.2f}", p.ratio_text(),
                     *([f"{p.ratio_1_thread:.3f}" if p.ratio_1_thread is not None else "-"] if one_thread else []),
                     f"{p.size_bytes / 1e6:.3f}", f"{p.compressed_bytes / 1e6:.3f}",
                     f"{p.peak_memory_bytes / 1e6:.1f}", "yes" if i in fast else "",
                     "yes" if i in small else ""])
    return format_table(["method", "setting", "top-1 %", "latency ratio [95%]", *(["ratio 1 thread"] if one_thread else []),
                         "size MB", "gzip MB", "run +MB", "front: latency", "front: size"], rows)


def in_table_order(points: Sequence[Point]) -> list[Point]:
    """The points as the table lists them."""
    return [points[i] for i in _table_order(points)]


def _table_order(points: Sequence[Point]) -> list[int]:
    """The points' indices as the table lists them: each method's points together (methods
    in the order they first came), targets and sparsities ascending, other settings in the
    order made."""
    methods = {m: k for k, m in enumerate(dict.fromkeys(p.method for p in points))}

    def share(setting: str) -> float:
        number = setting[:-1]
        return float(number) if setting.endswith("%") and number.replace(".", "", 1).isdigit() else 0.0

    return sorted(range(len(points)), key=lambda i: (methods[points[i].method], share(points[i].setting), i))


def plot_points(points: Sequence[Point], cost: str, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale, label = ((1.0, "latency measured beside the network (ratio)") if cost == "ratio"
                    else (1e-6, "size on disk (MB)"))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    methods = list(dict.fromkeys(p.method for p in points))
    for i, method in enumerate(methods):
        mine = sorted((p.cost(cost) * scale, p.top1) for p in points if p.method == method)
        ax.plot([m[0] for m in mine], [m[1] for m in mine], marker=MARKERS.get(method, "o"),
                linestyle="-" if len(mine) > 1 else "none", color=f"C{i % 10}", label=method)
    front = sorted((points[i].cost(cost) * scale, points[i].top1) for i in pareto(points, cost))
    ax.step([f[0] for f in front], [f[1] for f in front], where="post", color="k", lw=0.6, ls=":",
            label="Pareto front")
    if cost == "size_bytes":
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: Path, points: Sequence[Point], settings: dict[str, Any],
                 skipped: Sequence[dict[str, str]] = ()) -> list[Path]:
    """``compare.md`` (the table, and the points that could not be made) and the two plots
    in ``out``; their paths."""
    title = f"{Path(settings['teacher']).parent.name or settings['teacher']} on {settings['data'].split(':')[0]}, " \
            f"{settings['backend']}"
    plots = [plot_points(points, "ratio", out / "compare-latency.png", title),
             plot_points(points, "size_bytes", out / "compare-size.png", title)]
    text = (f"# Compression compared on this device: {title}\n\n"
            "Latency ratio: each network's time measured block by block beside the unmodified one "
            "(batch 1); once every point is made, all of them are timed so in the same passes (each in a new "
            "order), and the ratio is the passes' median with its 95% interval. Run +MB: the resident memory "
            "loading and running it adds to a fresh process.\n\n"
            f"```\n{points_table(points)}\n```\n\n"
            + "".join(f"- not made: {x['method']} {x['setting']}: {x['why']}\n" for x in skipped)
            + ("\n" if skipped else "") + "".join(f"![{p.stem}]({p.name})\n" for p in plots))
    atomic_write_text(out / "compare.md", text)
    return [out / "compare.md", *plots]
