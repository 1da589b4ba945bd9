"""Staircase plots: latency against width per slot, with the spread and the optimal points."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

from .store import Profile


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _draw(ax, curve, chosen: int | None = None, title: str = "") -> None:
    lo = [m - s for m, s in zip(curve.median_ms, curve.spread_ms, strict=True)]
    hi = [m + s for m, s in zip(curve.median_ms, curve.spread_ms, strict=True)]
    ax.fill_between(curve.widths, lo, hi, color="tab:blue", alpha=0.2, linewidth=0)
    ax.plot(curve.widths, curve.median_ms, color="tab:blue", linewidth=1)
    opt = curve.optimal()
    ax.scatter(opt, [curve.at(w) for w in opt], color="tab:red", s=12, zorder=3, label="optimal")
    if chosen is not None:
        ax.axvline(chosen, color="tab:green", linestyle="--", linewidth=1, label=f"chosen {chosen}")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)


def plot_profile(profile: Profile, network: str, out_dir: str | Path,
                 chosen: Mapping[str, int] | None = None, per_slot: bool = True) -> list[Path]:
    """One PNG per slot and an overview grid; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slots = list(profile.network(network).slots)
    chosen = chosen or {}
    written = []
    if per_slot:
        for slot in slots:
            fig, ax = plt.subplots(figsize=(5, 3.2))
            _draw(ax, profile.slot_curve(network, slot), chosen.get(slot), slot)
            ax.set_xlabel("channels")
            ax.set_ylabel("latency (ms)")
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = out_dir / f"{_safe(slot)}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    cols = min(6, len(slots))
    rows = math.ceil(len(slots) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), squeeze=False)
    for ax, slot in zip(axes.flat, slots, strict=False):
        _draw(ax, profile.slot_curve(network, slot), chosen.get(slot), slot)
    for ax in list(axes.flat)[len(slots):]:
        ax.axis("off")
    fp = profile.fingerprint
    fig.suptitle(f"{network} on {fp.get('backend')}/{fp.get('device')} ({fp.get('threads')} threads, "
                 f"{fp.get('precision')}): latency (ms) vs channels; red = optimal widths", fontsize=9)
    fig.tight_layout()
    path = out_dir / "overview.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written
