"""The search's results: the Pareto front of latency and top-1, the early-stopping rule that
reads it, and the report (table, ``front.json``, plot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import atomic_write_json, atomic_write_text
from ..table import format_table
from .schedule import Schedule
from .settings import SearchSettings

__all__ = ["hopeless", "pareto_front", "plot_fronts", "write_report"]


def hopeless(latency_ms: float, epoch: int, top1: float, finished: list[dict], margin: float) -> bool:
    """Whether a trial at ``latency_ms`` with ``top1`` after ``epoch`` epochs is heading for a
    dominated point: a finished trial at most as slow was better by ``margin`` at that epoch
    and ended no worse than that."""
    for ref in finished:
        curve = ref["curve"]
        if ref["latency_ms"] <= latency_ms and len(curve) >= epoch and curve[epoch - 1] >= top1 + margin \
                and ref["top1"] >= curve[epoch - 1]:
            return True
    return False


def pareto_front(points: list[dict]) -> list[dict]:
    """The points no other point beats on both latency (lower) and top-1 (higher)."""
    front = [p for p in points if not any(
        q["latency_ms"] <= p["latency_ms"] and q["top1"] >= p["top1"]
        and (q["latency_ms"] < p["latency_ms"] or q["top1"] > p["top1"]) for q in points)]
    return sorted(front, key=lambda p: p["latency_ms"])


def write_report(study, schedule: Schedule, s: SearchSettings, retrain: dict, reference_ms: float, seconds: float,
            out: Path, log) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if "result" in t.user_attrs]
    results = [{**t.user_attrs["result"], "state": t.state.name, "baseline": bool(t.user_attrs.get("baseline"))}
               for t in trials]
    complete = [r for r in results if r["state"] == TrialState.COMPLETE.name]
    copies = [r for r in results if "duplicate_of" in r]
    trained = [r for r in results if "duplicate_of" not in r]
    front = pareto_front([r for r in complete if "duplicate_of" not in r])  # a copy adds no point
    baseline = next((r for r in complete if r["baseline"]), None)
    beats = [r for r in complete if baseline is not None and not r["baseline"]
             and r["latency_ms"] < baseline["latency_ms"] and r["top1"] > baseline["top1"]]
    stopped = [r for r in trained if r["stopped"]]
    saved_epochs = sum(retrain["epochs"] - r["epochs_run"] for r in stopped)
    epoch_s = [r["retrain_seconds"] / max(1, r["epochs_run"]) for r in trained]
    summary = {
        "study": s.study_name, "schedule": schedule.path, "trials": len(results), "complete": len(complete),
        "stopped_early": len(stopped), "epochs_saved": saved_epochs, "same_network_as_earlier": len(copies),
        "epochs_run": sum(r["epochs_run"] for r in results),
        "seconds_saved_estimate": saved_epochs * (sum(epoch_s) / len(epoch_s) if epoch_s else 0.0),
        "reference_ms": reference_ms, "baseline": baseline, "front": front,
        "first_to_beat_baseline": min((r["number"] for r in beats), default=None), "seconds_this_session": seconds,
        "retrain": retrain,
    }
    rows = [[r["number"], f"{r['latency_ms']:.3f}", f"{r['top1']:.2f}", r["params"],
             " ".join(f"{v:.2f}" for v in r["sparsities"].values()),
             "off-the-shelf" if r["baseline"] else ("beats it" if r in beats else "")] for r in front]
    table = format_table(["trial", "latency ms", "top-1 %", "params", "sparsities", ""], rows)
    atomic_write_json(out / "front.json", {**summary, "all": results})
    atomic_write_text(out / "front.md", f"# Pareto front of {s.study_name}\n\n```\n{table}\n```\n")
    if complete:
        plot_fronts(out / "front.png", {"Pareto front": (complete, front)}, baseline)
    log(table)
    log(f"{len(complete)} trials complete, {len(stopped)} stopped early ({saved_epochs} of "
        f"{summary['epochs_run'] + saved_epochs} retraining epochs saved"
        + (f"; {len(copies)} the same network as an earlier trial, not trained again" if copies else "")
        + f"); front in {out / 'front.json'}, "
        f"{out / 'front.png'}")
    if baseline is not None:
        log("first trial to beat the off-the-shelf schedule on both latency and top-1: "
            + (f"trial {summary['first_to_beat_baseline']}" if beats else "none yet"))
    return summary


def plot_fronts(path: Path, fronts: dict[str, tuple[list[dict], list[dict]]], baseline: dict | None = None,
                unpruned: dict | None = None, xlabel: str = "measured latency (ms)") -> Path:
    """Trials (dots) and their Pareto front (a line), one colour per study, with the
    off-the-shelf schedule (a star) and the unpruned network (a diamond) when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, (points, front)) in enumerate(fronts.items()):
        ax.scatter([p["latency_ms"] for p in points], [p["top1"] for p in points], s=12, color=f"C{i}", alpha=0.4)
        ax.plot([p["latency_ms"] for p in front], [p["top1"] for p in front], "o-", color=f"C{i}", label=label)
    if baseline is not None:
        ax.scatter([baseline["latency_ms"]], [baseline["top1"]], marker="*", s=150, color="k",
                   label="off-the-shelf schedule", zorder=5)
    if unpruned is not None:
        ax.scatter([unpruned["latency_ms"]], [unpruned["top1"]], marker="D", color="k", label="unpruned")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 after retraining (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
