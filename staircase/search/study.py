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
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import StaircaseError
from .executors import InlineExecutor, executor_for
from .front import write_report
from .schedule import Schedule, apply_schedule, schedule_widths
from .settings import DEFAULT_BOUNDS, SearchSettings
from .trial import run_trial, snapper

__all__ = ["run_search"]


def _optuna():
    try:
        import optuna
    except ImportError:
        raise StaircaseError("staircase search needs Optuna: pip install 'staircase[search]'") from None
    return optuna


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
    search = _Search(s, log)
    started = time.perf_counter()
    search.run()
    return write_report(search.study, search.schedule, s, search.retrain, search.reference_ms,
                        time.perf_counter() - started, search.out, log)


class _Search:
    """The driver: opens (or resumes) the study, asks it for trials, hands them to the
    executor and tells it their results."""

    def __init__(self, s: SearchSettings, log: Callable[[str], None]):
        from ..profile.timing import TIMINGS
        from ..train.checkpoint import model_from_checkpoint

        if s.timing not in TIMINGS:
            raise StaircaseError(f"--timing {s.timing!r} is not one of {', '.join(TIMINGS)}")
        if s.workers < 1:
            raise StaircaseError(f"--workers {s.workers} must be at least 1")
        self.s, self.log = s, log
        self.TrialState = _optuna().trial.TrialState
        self.schedule = Schedule.load(s.schedule)
        self.teacher, self.arch, _ = model_from_checkpoint(s.checkpoint)
        if self.schedule.model is not None and self.schedule.model != self.arch.name:
            raise StaircaseError(f"schedule {self.schedule.path} is for {self.schedule.model} but {s.checkpoint} "
                                 f"holds a {self.arch.name}")
        apply_schedule(copy.deepcopy(self.teacher), tuple(self.arch.input_size), self.schedule)  # names checked now
        self.out = Path(s.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.study, storage = _study(s, self.schedule, self.out)
        self._fail_interrupted()
        self.reference_ms = self._reference_ms(TIMINGS[s.timing].network)
        if not self.study.trials:
            self.study.enqueue_trial(self.schedule.sparsities(), user_attrs={"baseline": True})
        self.retrain = s.retrain(self.schedule)
        self.snapper = snapper(s, self.arch) if s.profile is not None else None
        log(f"study {s.study_name!r} in {storage}: {self.arch.name} unpruned {self.reference_ms:.3f} ms on "
            f"{s.backend}; {len(self.schedule.pruners)} pruners; retraining {self.retrain['epochs']} epochs at lr "
            f"{self.retrain['lr']}")

    def _fail_interrupted(self) -> None:
        TrialState = self.TrialState  # noqa: N806 - Optuna's enum
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            if t.state == TrialState.RUNNING:  # in flight when the last search was killed
                self.study.tell(t.number, state=TrialState.FAIL)
                self.log(f"trial {t.number} was in flight when the search stopped: marked failed, it will be replaced")

    def _reference_ms(self, protocol) -> float:
        """The unpruned network's time, measured once per study: trials are ratios to it."""
        from ..profile.backends import get_backend
        from ..profile.timing import measure_network

        if "reference_ms" not in self.study.user_attrs:
            backend = get_backend(self.s.backend, self.s.backend_device, threads=self.s.threads)
            self.study.set_user_attr("reference_ms", measure_network(backend, self.teacher.eval(),
                                                                     self.arch.input_size, protocol).median_ms)
        return self.study.user_attrs["reference_ms"]

    def _trials(self, *states) -> list:
        return self.study.get_trials(deepcopy=False, states=states)

    def done(self) -> int:
        return len(self._trials(self.TrialState.COMPLETE, self.TrialState.PRUNED))

    def same_network(self, trial_schedule: Schedule, snapped: bool) -> dict | None:
        """A finished trial (not itself a copy) that trained exactly these widths, if any."""
        widths = schedule_widths(self.teacher, tuple(self.arch.input_size), trial_schedule,
                                 self.snapper if snapped else None)
        for t in self._trials(self.TrialState.COMPLETE, self.TrialState.PRUNED):
            r = t.user_attrs.get("result")
            if r is not None and "duplicate_of" not in r and r["widths"] == widths and r["snapped"] == snapped:
                return r
        return None

    def run(self) -> None:
        s = self.s
        executor = executor_for(s, self.log)
        pending: dict[Any, Any] = {}
        settings = asdict(s)  # what each trial gets: the CPU threads are shared out among the workers
        if s.workers > 1 and s.threads:
            settings["threads"] = max(1, s.threads // s.workers)
        try:
            while self.done() + len(pending) < s.trials or pending:
                while len(pending) < max(1, s.workers) and self.done() + len(pending) < s.trials:
                    self._ask(executor, pending, settings)
                complete, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
                for future in complete:
                    self._tell(pending.pop(future), future)
        finally:
            for future in pending:
                future.cancel()
            executor.shutdown(wait=False)

    def _ask(self, executor, pending: dict, settings: dict) -> None:
        """Ask the study for a trial: answer it from a twin, or start it."""
        trial = self.study.ask()
        sparsities = {p.name: trial.suggest_float(p.name, *(p.bounds or DEFAULT_BOUNDS)) for p in self.schedule.pruners}
        snapped = self.s.profile is not None and not trial.user_attrs.get("baseline")
        twin = self.same_network(self.schedule.with_sparsities(sparsities), snapped)
        if twin is not None:  # snapping maps many sparsities onto one network: no need to train it again
            result = {**twin, "number": trial.number, "sparsities": sparsities, "duplicate_of": twin["number"],
                      "epochs_run": 0, "seconds": 0.0, "retrain_seconds": 0.0}
            self._record(trial, result)
            self.log(f"trial {trial.number}: the same network as trial {twin['number']}; its result, no training")
            return
        finished = [t.user_attrs["result"] for t in self._trials(self.TrialState.COMPLETE)]
        job = {"number": trial.number, "sparsities": sparsities, "settings": settings,
               "dir": str(self.out / f"trial-{trial.number:04d}"), "reference_ms": self.reference_ms,
               "finished": finished, "snap": snapped}
        pending[executor.submit(run_trial, job)] = trial
        if not isinstance(executor, InlineExecutor):
            self.log(f"trial {trial.number} started: sparsities "
                     + ", ".join(f"{k} {v:.2f}" for k, v in sparsities.items()))

    def _record(self, trial, result: dict) -> None:
        trial.set_user_attr("result", result)
        if result["stopped"]:
            self.study.tell(trial, state=self.TrialState.PRUNED)
        else:
            self.study.tell(trial, [result["latency_ms"], result["top1"]])

    def _tell(self, trial, future) -> None:
        try:
            result = future.result()
        except StaircaseError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed trial does not end the search
            self.study.tell(trial, state=self.TrialState.FAIL)
            self.log(f"trial {trial.number} failed: {type(exc).__name__}: {exc}")
            return
        self._record(trial, result)
        self.log(f"trial {trial.number}: {result['latency_ms']:.3f} ms, top-1 {result['top1']:.2f}% after "
                 f"{result['epochs_run']}/{self.retrain['epochs']} epochs"
                 + (" (stopped early: a faster trial was ahead)" if result["stopped"] else "")
                 + f", {result['params']:,} params")
