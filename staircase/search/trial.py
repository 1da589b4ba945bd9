"""One trial of the search: prune the trained network with the trial's sparsities, measure
it beside the unpruned one, retrain it; runs in the driver, a worker process or a Ray task,
so its job and result are plain dicts."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import StaircaseError
from .front import hopeless
from .schedule import Schedule, apply_schedule
from .settings import SearchSettings

__all__ = ["run_trial", "snapper"]


def run_trial(job: dict[str, Any]) -> dict[str, Any]:
    """Prune, measure and retrain one trial; the job and the result are plain dicts so that
    they travel to processes and Ray workers."""
    import torch

    from ..profile.backends import get_backend
    from ..profile.timing import TIMINGS, time_relative
    from ..slots import slot_widths
    from ..spec import Provenance, StudentSpec
    from ..train.checkpoint import model_from_checkpoint, save_checkpoint
    from ..train.trainer import TrainConfig, train

    trial_started = time.perf_counter()
    s = SearchSettings(**job["settings"])
    out = Path(job["dir"])
    out.mkdir(parents=True, exist_ok=True)
    if s.threads:
        torch.set_num_threads(s.threads)
    schedule = Schedule.load(s.schedule).with_sparsities(job["sparsities"])
    teacher, arch, _ = model_from_checkpoint(s.checkpoint)
    model = copy.deepcopy(teacher)  # pruned in place; the teacher stays the latency reference
    size = tuple(arch.input_size)
    snap = snapper(s, arch) if job.get("snap") else None
    touched = apply_schedule(model, size, schedule, snap=snap)
    widths = slot_widths(model, size)
    prov = Provenance(method=f"schedule {Path(s.schedule).stem}, trial {job['number']}" + (
        f", snapped {s.snap} to {s.profile}" if snap else ""), notes={"sparsities": job["sparsities"]})
    spec, _ = StudentSpec.create(arch, widths, f"trial-{job['number']}", prov)
    spec_path = spec.save(out / "spec.json")
    weights = save_checkpoint(out / "pruned.pt", {"model": model.state_dict()})

    backend = get_backend(s.backend, s.backend_device, threads=s.threads)
    run = backend.prepare_model(model.eval(), size, paired=True)
    reference = backend.prepare_model(teacher.eval(), size, paired=True)
    ratio = time_relative(backend, run, reference, protocol=TIMINGS[s.timing].network).ratio
    latency = ratio * job["reference_ms"]

    retrain = s.retrain(schedule)
    curve: list[float] = []

    def on_epoch(epoch: int, row: dict) -> bool:
        curve.append(row["test_top1"])
        if not s.early_stop or epoch < s.min_epochs or epoch >= retrain["epochs"]:
            return True
        return not hopeless(latency, epoch, row["test_top1"], job["finished"], s.margin)

    config = TrainConfig(model=str(spec_path), data=s.data, out=str(out / "retrain"), role="student",
                         init=str(weights), epochs=retrain["epochs"], lr=retrain["lr"],
                         batch_size=retrain["batch_size"], schedule=retrain["schedule"],
                         momentum=retrain["momentum"], weight_decay=retrain["weight_decay"],
                         train_images=s.train_images, seed=s.seed, threads=s.threads, device=s.train_device,
                         progress=s.progress)
    retrain_started = time.perf_counter()
    summary = train(config, resume=(out / "retrain" / "config.json").exists(), log=lambda m: None,
                    on_epoch=on_epoch)
    return {"number": job["number"], "sparsities": job["sparsities"], "latency_ms": latency, "ratio": ratio,
            "top1": summary.final_top1, "curve": curve, "epochs_run": len(curve),
            "stopped": summary.stopped_after is not None, "params": spec.params, "macs": spec.macs,
            "widths": {k: widths[k] for k in touched}, "spec": str(spec_path),
            "checkpoint": str(out / "retrain" / "last.pt"), "seconds": time.perf_counter() - trial_started,
            "retrain_seconds": time.perf_counter() - retrain_started,
            "snapped": bool(snap)}


def snapper(s: SearchSettings, arch) -> Callable[[str, int], int]:
    from ..profile.prediction import LatencyModel
    from ..profile.store import Profile, network_key

    profile = Profile.load(s.profile)
    key = network_key(arch.name, arch.input_size)
    if key not in profile.networks:
        raise StaircaseError(f"profile {s.profile} does not cover {key}; profile it first "
                             f"(`staircase profile {arch.name} --out {s.profile}`)")
    latency = LatencyModel(profile, key)

    def snapper(slot: str, width: int) -> int:
        if slot not in latency.entry.slots:
            return width
        return latency.snap(slot, width, s.snap)

    return snapper


# -- the study ----------------------------------------------------------------------------------
