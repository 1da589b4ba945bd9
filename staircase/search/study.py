"""``staircase search``: an Optuna study over a schedule's sparsities, with two objectives.

Each trial takes a sparsity per pruner (within the schedule's ``search:`` bounds), prunes
the trained network for real (``apply_schedule``; optionally each width snapped to a
device profile's optimal widths), measures its latency on the backend beside the
unpruned network (the ratio, times the unpruned network's time at the study's start:
drift and neighbours cancel), retrains it from the pruned weights and reports top-1.
The study minimises latency and maximises top-1: its result is a Pareto front.

- The schedule's own sparsities are the first trial: the off-the-shelf point to beat.
- Early stopping: Optuna's pruners need one objective, so a multi-objective rule is used.
  Latency is known before retraining; a trial is stopped when a finished trial that is at
  least as fast was already more accurate at the same epoch by ``margin`` points (it is
  heading for a dominated point). The epochs saved are reported.
- A trial whose widths (after snapping, which maps many sparsities onto one network) equal
  a finished trial's is answered with that trial's result and not trained again.
- Storage defaults to SQLite in the output folder: a killed search resumes, and trials
  that were in flight are marked failed and replaced. A study holds one schedule's search
  space (refused otherwise).
- Trials run in this process (``workers`` 1), in ``workers`` processes, or as Ray tasks on
  a cluster (``ray_address``); the driver asks and tells the study, so all three give the
  same study and results.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import StaircaseError
from ..files import atomic_write_json, atomic_write_text
from ..table import format_table
from .schedule import Schedule, apply_schedule, schedule_widths

__all__ = ["SearchSettings", "run_search", "run_trial", "hopeless", "pareto_front", "plot_fronts"]

DEFAULT_BOUNDS = (0.0, 0.9)


@dataclass
class SearchSettings:
    schedule: str  # a schedule file, or the name of a shipped one
    checkpoint: str  # the trained, unpruned network (a staircase checkpoint)
    data: str
    out: str = "runs/search"
    trials: int = 20
    backend: str = "onnxruntime"
    backend_device: str | None = None
    threads: int | None = None
    timing: str = "standard"  # a --timing preset for the whole-network measurements
    epochs: int | None = None  # default: the schedule's retrain settings
    lr: float | None = None
    batch_size: int | None = None
    train_images: int | None = None
    train_device: str = "auto"
    storage: str | None = None  # default sqlite:///OUT/study.db
    study_name: str = "staircase-search"
    workers: int = 1
    ray_address: str | None = None
    profile: str | None = None  # snap each trial's widths to this profile's optimal widths
    snap: str = "up"
    early_stop: bool = True
    margin: float = 1.0  # top-1 points behind a faster trial at the same epoch that stop a trial
    min_epochs: int = 1  # epochs every trial trains before it may be stopped
    seed: int = 0
    progress: bool = False

    def retrain(self, schedule: Schedule) -> dict[str, Any]:
        r = {"epochs": 10, "lr": 0.01, "batch_size": 128, "schedule": "cosine", "momentum": 0.9,
             "weight_decay": 5e-4, **schedule.retrain}
        for key in ("epochs", "lr", "batch_size"):
            if getattr(self, key) is not None:
                r[key] = getattr(self, key)
        return r


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


# -- one trial (runs in this process, a worker process or a Ray task) --------------------------

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
    snap = _snapper(s, arch) if job.get("snap") else None
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
            "top1": summary["final_top1"], "curve": curve, "epochs_run": len(curve),
            "stopped": "stopped_after" in summary, "params": spec.params, "macs": spec.macs,
            "widths": {k: widths[k] for k in touched}, "spec": str(spec_path),
            "checkpoint": str(out / "retrain" / "last.pt"), "seconds": time.perf_counter() - trial_started,
            "retrain_seconds": time.perf_counter() - retrain_started,
            "snapped": bool(snap)}


def _snapper(s: SearchSettings, arch) -> Callable[[str, int], int]:
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

def _executor(s: SearchSettings, log):
    if s.ray_address:
        return _RayExecutor(s.ray_address, s, log)
    if s.workers > 1:
        return cf.ProcessPoolExecutor(s.workers, mp_context=multiprocessing.get_context("spawn"))
    return _InlineExecutor()


class _InlineExecutor:
    def submit(self, fn, *args):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed back to the driver like a worker's error
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


class _RayExecutor:
    """Trials as Ray tasks on an existing cluster (a GPU each where the cluster has them)."""

    def __init__(self, address: str, s: SearchSettings, log):
        try:
            import ray
        except ImportError:
            raise StaircaseError("--ray needs Ray: pip install 'staircase[ray]'") from None
        self.ray = ray
        _check_reachable(address)
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False if address == "local" else None)
        except Exception as exc:  # noqa: BLE001 - Ray raises several kinds for an unreachable cluster
            raise StaircaseError(f"cannot reach the Ray cluster at {address!r} ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); start one with "
                                 "`ray start --head` and pass its address, or leave out --ray") from None
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and s.train_device != "cpu" else 0
        self.task = ray.remote(num_cpus=max(1, s.threads or 1), num_gpus=gpus)(run_trial)
        log(f"Ray: {address}, {ray.cluster_resources().get('CPU', 0):g} CPUs, "
            f"{ray.cluster_resources().get('GPU', 0):g} GPUs")

    def submit(self, fn, job):
        return self.task.remote(job).future()

    def shutdown(self, wait: bool = True) -> None:
        self.ray.shutdown()


def _optuna():
    try:
        import optuna
    except ImportError:
        raise StaircaseError("staircase search needs Optuna: pip install 'staircase[search]'") from None
    return optuna


def _check_reachable(address: str) -> None:
    """One quick connection attempt, so an unreachable cluster fails at once (Ray itself
    retries for a minute)."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise StaircaseError(f"--ray {address!r} is not an address: give host:port, ray://host:port, auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise StaircaseError(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start one with "
                             "`ray start --head` and pass its address, or leave out --ray") from None


def _study(s: SearchSettings, schedule: Schedule, out: Path):
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = s.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.create_study(storage=storage, study_name=s.study_name, load_if_exists=True,
                                directions=["minimize", "maximize"], sampler=optuna.samplers.TPESampler(seed=s.seed))
    space = {"schedule": schedule.fingerprint(), "checkpoint": str(Path(s.checkpoint).resolve()), "data": s.data,
             "backend": s.backend, "snap": s.profile is not None and s.snap}
    held = study.user_attrs.get("space")
    if held is None:
        study.set_user_attr("space", json.loads(json.dumps(space)))
    elif held != json.loads(json.dumps(space)):
        differs = sorted(k for k in space if json.loads(json.dumps(space[k])) != held.get(k))
        raise StaircaseError(f"study {s.study_name!r} in {storage} was made for another search ({', '.join(differs)} "
                             "differ); give another --out, --storage or --study-name")
    return study, storage


def run_search(s: SearchSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the study until it holds ``trials`` finished trials; write the front."""
    TrialState = _optuna().trial.TrialState  # noqa: N806 - Optuna's enum

    from ..profile.backends import get_backend
    from ..profile.timing import TIMINGS, measure_network
    from ..train.checkpoint import model_from_checkpoint

    if s.timing not in TIMINGS:
        raise StaircaseError(f"--timing {s.timing!r} is not one of {', '.join(TIMINGS)}")
    schedule = Schedule.load(s.schedule)
    teacher, arch, _ = model_from_checkpoint(s.checkpoint)
    if schedule.model is not None and schedule.model != arch.name:
        raise StaircaseError(f"schedule {schedule.path} is for {schedule.model} but {s.checkpoint} holds a {arch.name}")
    apply_schedule(copy.deepcopy(teacher), tuple(arch.input_size), schedule)  # names checked now
    if s.workers < 1:
        raise StaircaseError(f"--workers {s.workers} must be at least 1")
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    study, storage = _study(s, schedule, out)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if t.state == TrialState.RUNNING:  # in flight when the last search was killed
            study.tell(t.number, state=TrialState.FAIL)
            log(f"trial {t.number} was in flight when the search stopped: marked failed, it will be replaced")
    if "reference_ms" not in study.user_attrs:
        backend = get_backend(s.backend, s.backend_device, threads=s.threads)
        study.set_user_attr("reference_ms", measure_network(backend, teacher.eval(), arch.input_size,
                                                            TIMINGS[s.timing].network).median_ms)
    reference_ms = study.user_attrs["reference_ms"]
    if not study.trials:
        study.enqueue_trial(schedule.sparsities(), user_attrs={"baseline": True})
    retrain = s.retrain(schedule)
    log(f"study {s.study_name!r} in {storage}: {arch.name} unpruned {reference_ms:.3f} ms on {s.backend}; "
        f"{len(schedule.pruners)} pruners; retraining {retrain['epochs']} epochs at lr {retrain['lr']}")

    def finished() -> list[dict]:
        return [t.user_attrs["result"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]

    def done() -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    snapper = _snapper(s, arch) if s.profile is not None else None

    def same_network(trial_schedule: Schedule, snapped: bool) -> dict | None:
        """A finished trial (not itself a copy) that trained exactly these widths, if any."""
        widths = schedule_widths(teacher, tuple(arch.input_size), trial_schedule, snapper if snapped else None)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            r = t.user_attrs.get("result")
            if r is not None and "duplicate_of" not in r and r["widths"] == widths and r["snapped"] == snapped:
                return r
        return None

    executor = _executor(s, log)
    pending: dict[Any, Any] = {}
    settings = asdict(s)  # what each trial gets: the CPU threads are shared out among the workers
    if s.workers > 1 and s.threads:
        settings["threads"] = max(1, s.threads // s.workers)
    started = time.perf_counter()
    try:
        while done() + len(pending) < s.trials or pending:
            while len(pending) < max(1, s.workers) and done() + len(pending) < s.trials:
                trial = study.ask()
                sparsities = {p.name: trial.suggest_float(p.name, *(p.bounds or DEFAULT_BOUNDS))
                              for p in schedule.pruners}
                snapped = s.profile is not None and not trial.user_attrs.get("baseline")
                twin = same_network(schedule.with_sparsities(sparsities), snapped)
                if twin is not None:  # snapping maps many sparsities onto one network: no need to train it again
                    result = {**twin, "number": trial.number, "sparsities": sparsities, "duplicate_of": twin["number"],
                              "epochs_run": 0, "seconds": 0.0, "retrain_seconds": 0.0}
                    trial.set_user_attr("result", result)
                    if twin["stopped"]:
                        study.tell(trial, state=TrialState.PRUNED)
                    else:
                        study.tell(trial, [twin["latency_ms"], twin["top1"]])
                    log(f"trial {trial.number}: the same network as trial {twin['number']}; its result, no training")
                    continue
                job = {"number": trial.number, "sparsities": sparsities, "settings": settings,
                       "dir": str(out / f"trial-{trial.number:04d}"), "reference_ms": reference_ms,
                       "finished": finished(), "snap": snapped}
                pending[executor.submit(run_trial, job)] = trial
                if not isinstance(executor, _InlineExecutor):
                    log(f"trial {trial.number} started: sparsities "
                        + ", ".join(f"{k} {v:.2f}" for k, v in sparsities.items()))
            complete, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for future in complete:
                trial = pending.pop(future)
                try:
                    result = future.result()
                except StaircaseError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one failed trial does not end the search
                    study.tell(trial, state=TrialState.FAIL)
                    log(f"trial {trial.number} failed: {type(exc).__name__}: {exc}")
                    continue
                trial.set_user_attr("result", result)
                if result["stopped"]:
                    study.tell(trial, state=TrialState.PRUNED)
                else:
                    study.tell(trial, [result["latency_ms"], result["top1"]])
                log(f"trial {trial.number}: {result['latency_ms']:.3f} ms, top-1 {result['top1']:.2f}% after "
                    f"{result['epochs_run']}/{retrain['epochs']} epochs"
                    + (" (stopped early: a faster trial was ahead)" if result["stopped"] else "")
                    + f", {result['params']:,} params")
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=False)
    return _report(study, schedule, s, retrain, reference_ms, time.perf_counter() - started, out, log)


def _report(study, schedule: Schedule, s: SearchSettings, retrain: dict, reference_ms: float, seconds: float,
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
