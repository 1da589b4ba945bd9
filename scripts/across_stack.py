"""Across the stack on this CPU: channel pruning, weight pruning and INT8 quantisation of one
trained network, on ONNX Runtime and on OpenVINO, as accuracy / latency / size / memory
Pareto curves (after Turner et al., *Characterising Across-Stack Optimisations for Deep
Convolutional Neural Networks*).

The network is the CIFAR-10 experiment's teacher (``docs/results_cifar/teacher``, the same
teacher as docs/RESULTS.md, so no budget goes to training another); its Fisher saliency from
that experiment's pruning run (``docs/results_cifar/fisher-widths.json``) ranks the
channels, and every pruned point is fine-tuned with the recipe that experiment chose on its
validation split. Each backend is one ``staircase compare`` run into
``runs/across_stack/<backend>`` (resumable point by point); after every point its
``compare.json`` is copied to ``docs/across_stack/<backend>.json`` and
``docs/ACROSS_STACK.md`` is rendered from what is there, with conclusions computed from the
numbers and set beside the paper's findings. Usage:

    python scripts/across_stack.py                        # ../shared/data, both backends
    python scripts/across_stack.py --data digits --teacher T.pt --widths "" --epochs 1 --lr 0.01 \\
        --targets 0.5 --sparsities 0.9 --out runs/smoke --docs runs/smoke    # minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from staircase.compare.comparison import CompareSettings, Comparison
from staircase.compare.point import Point
from staircase.compare.report import in_table_order, pareto, plot_points, points_table
from staircase.design.measured import MATCH_WITHIN, no_slower
from staircase.files import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
NO_SPEEDUP = 0.10  # a weight-pruned network within this share of the dense one's time: no speed-up
MIN_POINTS = 4  # channel-pruned students per backend: a curve, not a pair of points
CHANNEL_PRUNED = ("channel", "channel+int8")  # the staircase students, alone or quantised
KEEP_CHANNELS = ("weight", "int8")  # compressions that keep every channel: the paper's rivals to (2)
RULER = 0.03  # two latency ratios closer than this share are not told apart


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="cifar10:../shared/data")
    ap.add_argument("--teacher", default=str(ROOT / "docs" / "results_cifar" / "teacher" / "last.pt"))
    ap.add_argument("--widths", default=str(ROOT / "docs" / "results_cifar" / "fisher-widths.json"),
                    help="a prune run's widths file ('' for none: L1 ranking)")
    ap.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"])
    ap.add_argument("--epochs", type=int, default=None,
                    help="fine-tuning per pruned point (default: the CIFAR experiment's choice on its validation split)")
    ap.add_argument("--lr", type=float, default=None, help="its learning rate (default: likewise)")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.35, 0.5, 0.7, 0.85])
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.75, 0.9, 0.95])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "across_stack")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    ap.add_argument("--render", action="store_true", help="only render the page from docs/across_stack/*.json")
    args = ap.parse_args()
    if args.render:
        render(load(args.docs, args.backends), args.docs)
        return 0
    epochs, lr = chosen_recipe(args.epochs, args.lr, args.docs / "results_cifar.json")
    say(f"fine-tuning every pruned point {epochs} epochs at lr {lr}")
    started = time.perf_counter()
    for backend in args.backends:
        say(f"[{backend}] staircase compare {args.teacher} --data {args.data} --backend {backend}")
        share_weight_runs(args.out / args.backends[0], args.out / backend)
        settings = CompareSettings(teacher=args.teacher, data=args.data, out=str(args.out / backend), backend=backend,
                                   widths=args.widths or None, targets=args.targets, sparsities=args.sparsities,
                                   epochs=epochs, lr=lr, threads=args.threads, single_thread=True)
        lowest = Comparison(settings, log=lambda m: say(f"      {m}")).lowest_target()
        targets = reachable_targets(args.targets, lowest)
        if set(targets) - set(args.targets):
            say(f"      channel pruning reaches down to {lowest:.0%} of the latency on {backend}'s steps: targets "
                f"{', '.join(f'{t:.0%}' for t in targets)} added to the {MIN_POINTS}-point curve")
        settings = replace(settings, targets=sorted(set(args.targets) | set(targets)))
        Comparison(settings, log=lambda m: say(f"      {m}")).run(
            on_point=lambda _point: _collect(args.out, args.docs, args.backends))
        _collect(args.out, args.docs, args.backends)
    say(f"done in {(time.perf_counter() - started) / 60:.0f} min -> {args.docs / 'ACROSS_STACK.md'}")
    return 0


def chosen_recipe(epochs: int | None, lr: float | None, results: Path) -> tuple[int, float]:
    """The fine-tuning recipe: as given, else what the CIFAR experiment chose on its validation
    split (``validation.recipe.chosen`` in ``results``), so that no choice here is made on the
    test images the page reports."""
    if epochs is not None and lr is not None:
        return epochs, lr
    try:
        chosen = json.loads(results.read_text())["validation"]["recipe"]["chosen"]
    except (OSError, ValueError, KeyError):
        raise SystemExit(f"{results} holds no fine-tuning recipe chosen on validation; run "
                         "scripts/reproduce_cifar.py first, or give --epochs and --lr") from None
    return (chosen["epochs"] if epochs is None else epochs), (chosen["lr"] if lr is None else lr)


def reachable_targets(targets: list[float], lowest: float, want: int = MIN_POINTS) -> list[float]:
    """The ``targets`` a channel-pruned student reaches (3% above ``lowest``, the narrowest
    student's predicted share), topped up to ``want`` with that floor (when under the highest
    target asked) and then the middle of the widest gap between neighbours: a backend with
    coarse steps still gets its curve."""
    start = round(lowest * (1 + RULER) + 0.005, 2)
    kept = sorted(t for t in targets if t >= start)
    if len(kept) < want and start < max(targets) and all(abs(t - start) > 0.02 for t in kept):
        kept = [start, *kept]
    while len(kept) < want and len(kept) > 1:
        gap, at = max((b - a, i) for i, (a, b) in enumerate(zip(kept, kept[1:], strict=False)))
        if gap < 0.04:
            break
        kept.insert(at + 1, round((kept[at] + kept[at + 1]) / 2, 2))
    return kept


def share_weight_runs(first: Path, other: Path) -> None:
    """The weight-pruned fine-tuning runs do not depend on the backend (same network, mask,
    recipe and seed): a later backend's comparison reuses the first one's."""
    if first == other or not (first / "train").exists():
        return
    for run in (first / "train").glob("weight-*"):
        mine = other / "train" / run.name
        if (run / "summary.json").exists() and not mine.exists():
            mine.parent.mkdir(parents=True, exist_ok=True)
            mine.symlink_to(run.resolve(), target_is_directory=True)


def _collect(out: Path, docs: Path, backends: list[str]) -> None:
    """Copy each backend's finished points into docs (with the teacher's architecture, which
    the page names) and render the page from them."""
    from staircase.train.checkpoint import read_checkpoint

    for backend in backends:
        src = out / backend / "compare.json"
        if src.exists():
            doc = json.loads(src.read_text())
            teacher = doc["settings"]["teacher"]
            doc["network"] = read_checkpoint(teacher).get("architecture", {}).get("name", Path(teacher).name)
            atomic_write_json(docs / "across_stack" / f"{backend}.json", doc)
    found = load(docs, backends)
    if found:
        render(found, docs)


def load(docs: Path, backends) -> dict[str, dict]:
    """Each backend's committed comparison in ``docs/across_stack``, its points as Points."""
    found = {}
    for backend in backends:
        path = docs / "across_stack" / f"{backend}.json"
        if path.exists():
            doc = json.loads(path.read_text())
            found[backend] = {**doc, "points": [Point.from_dict(p) for p in doc["points"]]}
    return found


def render(found: dict[str, dict], docs: Path) -> None:
    """ACROSS_STACK.md, its plots and across_stack/summary.json from ``found`` (``load``)."""
    atomic_write_text(docs / "ACROSS_STACK.md", page(found, docs))
    atomic_write_json(docs / "across_stack" / "summary.json", {b: findings(d["points"]) for b, d in found.items()})


def page(found: dict[str, dict], docs: Path) -> str:
    """The page's text; its plots are drawn into ``docs/across_stack``."""
    network = next(iter(found.values()))["network"]
    sections = []
    for backend, doc in found.items():
        points, s = doc["points"], doc["settings"]
        if not points:
            continue
        title = f"{network} on {s['data'].split(':')[0]}, {backend}"
        plots = [plot_points(points, "ratio", docs / "across_stack" / f"{backend}-latency.png", title),
                 plot_points(points, "size_bytes", docs / "across_stack" / f"{backend}-size.png", title)]
        sections.append(f"## {backend}\n\n{len(points)} points; fine-tuning {s['epochs']} epochs at lr {s['lr']} "
                        f"per pruned point; channel-pruned students designed with the "
                        f"{s.get('allocation', 'fisher')} allocation; {s['calibration_images']} calibration images.\n\n"
                        f"```\n{points_table(points)}\n```\n\n"
                        + "".join(f"![{p.stem}](across_stack/{p.name})\n" for p in plots)
                        + "\n" + "\n".join(findings(points) + not_made(doc.get("skipped", []))) + "\n")
    across = across_backends(found)
    return f"""# Across the stack: channel pruning, weight pruning and INT8 on this CPU

Written by `scripts/across_stack.py` from `across_stack/<backend>.json` (one `staircase
compare` run per backend, the weight-pruned networks' fine-tuning shared between them; how
each point is made and measured: [compare.md](compare.md)).
Latency ratio [95%]: the network's time measured block by block beside the unmodified
network on the same runtime (batch 1), every point of a runtime in the same passes (one
measurement run, each pass in a new order): the passes' median and its 95% interval. Two
points are set beside each other at one latency by one's time over the other's pass by
pass; "run +MB": the resident memory loading and running it adds to a fresh process. The
paper's findings (Turner et al.): (1) sparse networks are very hard to accelerate; (2)
channel pruning is best for accuracy and speed; (3) large older networks compress better
than hand-crafted efficient ones. Each finding below is checked
against the numbers; the sentences are computed, not written in advance. One seed per
point: a difference is told only where its 95% interval excludes 0.

{chr(10).join(sections)}
## Across the two runtimes

{chr(10).join(across) or "One runtime so far."}

(3) is not tested here: the study compresses one network ({network}), not a large older
one beside a hand-crafted efficient one.
"""


def not_made(skipped: list[dict]) -> list[str]:
    """The points a comparison could not make, grouped by the reason it gave."""
    by_why: dict[str, list[str]] = {}
    for item in skipped:
        by_why.setdefault(item["why"], []).append(f"{item['method']} {item['setting']}")
    return [f"- not made: {', '.join(names)}: {why}" for why, names in by_why.items()]


def findings(points: list[Point]) -> list[str]:
    """What the points say about the paper's findings (1) and (2), and about INT8."""
    points = in_table_order(points)
    by = {}
    for p in points:
        by.setdefault(p.method, []).append(p)
    lines = []
    teacher = by.get("teacher", [None])[0]
    weight = by.get("weight", [])
    if weight:
        ratios = [p.ratio for p in weight]
        faster = [p for p in weight if p.ratio < 1 - NO_SPEEDUP]
        slower = [p for p in weight if p.ratio > 1 + NO_SPEEDUP]
        best = max(weight, key=lambda p: float(p.setting.rstrip("%")))
        if faster:
            verdict = (f"a speed-up at {', '.join(p.setting for p in faster)}, which the paper did not find: "
                       "find out which kernel skips zeros before trusting it")
        else:
            verdict = ("no speed-up (none more than 10% faster), in line with the paper's (1): the runtime's "
                       "kernels are dense" + (f"; {', '.join(p.setting for p in slower)} measured more than 10% slower "
                                  "(zeros do not slow a dense kernel: measure it again on a quiet machine)"
                                  if slower else ""))
        lines.append(f"- (1) weight pruning: {', '.join(p.setting for p in weight)} zeros measured "
                     f"{_span(ratios)} of the dense network's time: {verdict}; at {best.setting} the file is "
                     f"{best.size_bytes / 1e6:.2f} MB ({best.compressed_bytes / 1e6:.2f} MB gzip-compressed), "
                     f"top-1 {best.top1:.1f}%.")
    front = pareto(points, "ratio")
    on_front = [points[i] for i in sorted(front, key=lambda i: points[i].ratio)]
    lines.append("- Pareto front of top-1 against latency: "
                 + ", ".join(f"{p.method} {p.setting} ({p.top1:.1f}% at {p.ratio:.2f})" for p in on_front)
                 + ".")
    channel = [p for p in points if p.method in CHANNEL_PRUNED]
    if channel and teacher is not None:
        lines += channel_against_rivals(channel, [p for p in points if p.method in KEEP_CHANNELS])
    pairs = [(c, u) for c in by.get("channel", []) for u in by.get("channel-unsnapped", [])
             if u.setting == c.setting]
    if pairs:
        lines.append("- the staircase students against the same targets' pruned widths unsnapped: "
                     + "; ".join(f"{c.setting}: {_points(c, u)} at {_times(c, u)}" for c, u in pairs)
                     + ".")
    int8 = by.get("int8", [])
    if int8 and teacher is not None:
        ratios = [p.ratio for p in int8]
        drops = [teacher.top1 - p.top1 for p in int8]
        best = min(int8, key=lambda p: (teacher.top1 - p.top1, p.ratio))
        lines.append(f"- INT8 of the whole network: {statistics.median(ratios):.2f} of the float time (median over "
                     f"{len(int8)} settings, {_span(ratios)}), top-1 change "
                     f"{-max(drops):+.1f} to {-min(drops):+.1f} points; the most accurate setting is {best.setting}; "
                     f"its file is {best.size_bytes / teacher.size_bytes:.2f} of the float file's size.")
    both = by.get("channel+int8", [])
    if both and by.get("channel"):
        pairs = [(c, q) for c in by["channel"] for q in both if q.setting == c.setting]
        lines.append("- channel + INT8 against channel alone: "
                     + "; ".join(f"{c.setting}: {_times(q, c)}, {_points(q, c)}" for c, q in pairs)
                     + ".")
    return lines


def channel_against_rivals(channel: list[Point], rivals: list[Point]) -> list[str]:
    """Finding (2), point by point: each channel-pruned student against every weight-pruned or
    INT8 point at its latency or less (its ``Point.time_over`` the student's ``no_slower``), by
    the difference of top-1 with its 95% interval (``PROPORTION_TEST``: compare.json keeps
    top-1, not each image); won or lost only where the interval excludes 0. A student no rival
    reached says so."""
    from staircase.stats import PROPORTION_TEST, proportion_difference

    lines, outcomes, compared = [], [], 0
    for c in channel:
        over = [(r, r.time_over(c)) for r in rivals]
        near = [(r, q) for r, q in over if q is not None and no_slower(q.ratio)]
        untimed = [r for r, q in over if q is None]
        head = f"  - {c.method} {c.setting} ({c.top1:.1f}% at {c.ratio:.2f}): "
        if not near:
            lines.append(head + "no rival reached this latency" + (
                f" ({len(untimed)} not timed in the same run: rerun the comparison to time them together)"
                if untimed else ""))
            continue
        compared += 1
        said = []
        for r, q in sorted(near, key=lambda rq: rq[1].ratio):
            d = proportion_difference(c.top1, r.top1, min(c.test_images, r.test_images))
            outcomes.append(d.outcome)
            said.append(f"against {r.method} {r.setting} ({r.top1:.1f}% at {q.ratio:.2f}x its time "
                        f"[{q.low:.2f}, {q.high:.2f}]) {d.mean:+.1f} points [{d.low:+.1f}, {d.high:+.1f}]: {d.outcome}")
        lines.append(head + "; ".join(said))
    counts = {o: outcomes.count(o) for o in dict.fromkeys(outcomes)}
    if not outcomes:
        reading = "the numbers do not test the paper's (2) here"
    elif counts.get("won") and not counts.get("lost"):
        reading = "in line with the paper's (2)"
    elif counts.get("lost") and not counts.get("won"):
        reading = "against the paper's (2)"
    elif counts.get("lost"):
        reading = "mixed"
    else:
        reading = "none detectable either way: the numbers do not test the paper's (2) here"
    summary = (f"- (2) channel pruning: {compared} of {len(channel)} staircase students (alone or quantised) had a "
               "weight-pruned or INT8 rival at their latency or less (its time over the student's, pass by pass in "
               f"one measurement run, at most {1 + MATCH_WITHIN:.2f} at the median)"
               + (f"; of their {len(outcomes)} pairs ({PROPORTION_TEST}, 95%): "
                  f"{', '.join(f'{n} {o}' for o, n in counts.items())}" if outcomes else "") + f"; {reading}.")
    return [summary, *lines]


def _times(a: Point, b: Point) -> str:
    """``a``'s time over ``b``'s, pass by pass in their measurement run, with its interval."""
    q = a.time_over(b)
    if q is None:
        return f"{a.ratio / b.ratio:.2f}x the time (not timed in the same run)"
    return f"{q.ratio:.2f}x the time [{q.low:.2f}, {q.high:.2f}]"


def _points(a: Point, b: Point) -> str:
    """``a``'s top-1 minus ``b``'s with its 95% interval and what it allows."""
    from staircase.stats import proportion_difference

    d = proportion_difference(a.top1, b.top1, min(a.test_images, b.test_images))
    return f"{d.mean:+.1f} points [{d.low:+.1f}, {d.high:+.1f}] ({d.outcome})"


def _span(values) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if round(low, 2) == round(high, 2) else f"{low:.2f}-{high:.2f}"


def across_backends(found: dict[str, dict]) -> list[str]:
    """The same method's figures on each runtime (the across-stack axis)."""
    if len(found) < 2:
        return []
    lines = []
    methods = {p.method for d in found.values() for p in d["points"]}
    for method in sorted(methods):
        parts = []
        for backend, d in found.items():
            mine = [p for p in d["points"] if p.method == method]
            if mine:
                teacher_ms = [p.teacher_ms for p in d["points"] if p.method == "teacher"]
                parts.append(f"{backend} ratios {_span([p.ratio for p in mine])}"
                             + (f" (network {teacher_ms[0]:.2f} ms)" if teacher_ms and method == "teacher" else ""))
        lines.append(f"- {method}: " + "; ".join(parts))
    one = [_one_thread(b, statistics.median(p.ratio_1_thread / p.ratio for p in d["points"] if p.ratio_1_thread is not None))
           for b, d in found.items() if any(p.ratio_1_thread is not None for p in d["points"])]
    if one:
        lines.append("- one thread against two: the median over points of (ratio at 1 thread) / (ratio at 2) — "
                     + ", ".join(one))
    return lines


def _one_thread(backend: str, median: float) -> str:
    """How a runtime's median (ratio at 1 thread) / (ratio at 2) reads: within the ruler the
    thread count changes nothing."""
    if abs(median - 1) <= RULER:
        reading = "the same saving at one thread, within 3%"
    elif median < 1:
        reading = "compression saves more when the runtime has one core"
    else:
        reading = "compression saves less when the runtime has one core"
    return f"{backend}: {median:.2f} ({reading})"


if __name__ == "__main__":
    raise SystemExit(main())
