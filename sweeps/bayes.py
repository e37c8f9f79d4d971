"""Bayesian sweeps: an Optuna TPE study in a journal file (``DIR/optuna.journal``; a journal file
works on NFS where SQLite does not), worked by ``parallelism`` array tasks that each ask for a trial,
run it as an ordinary sweep run (id = config hash, ``runs/<id>/``) and tell the result, until the
budget of trials is spent.

A killed worker leaves its trial RUNNING in the journal. A worker restarted by a requeue releases
its own such trials; ``cxr sweep resume`` (no worker active) releases them all. Released trials are
marked FAIL with ``stale=True`` (not counted in the budget) and their parameters enqueued again, so
the same run id is asked next and resumes from its folder's checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import submitit

from cxr.errors import ConfigError
from cxr.runfolder import value as metric_value
from jobs.registry import get
from sweeps import store
from sweeps.expand import Resolver, base_config, label, run_id
from sweeps.spec import SweepSpec
from sweeps.task import SweepRun, short_error

JOURNAL = "optuna.journal"
TrialState = optuna.trial.TrialState


def storage(folder: str | Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(Path(folder) / JOURNAL)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def create(folder: Path, spec: SweepSpec) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed, n_startup_trials=spec.bayes.startup_trials)
    return optuna.create_study(
        study_name=spec.name,
        storage=storage(folder),
        sampler=sampler,
        direction="minimize" if spec.metric.mode == "min" else "maximize",
        load_if_exists=True,
    )


def load(folder: Path, spec: SweepSpec, worker: str = "") -> optuna.Study:
    # a sampler seeded per worker: workers sharing a seed would propose the same first points
    seed = spec.sampler_seed + (int(worker.rsplit("-", 1)[-1]) + 1 if worker else 0)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.bayes.startup_trials)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=spec.name, storage=storage(folder), sampler=sampler)


def spent(study: optuna.Study) -> int:
    """Trials that count against the budget: all but the released (stale) ones."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if not (t.state == TrialState.FAIL and t.user_attrs.get("stale"))
    )


def release(study: optuna.Study, worker: str | None = None) -> int:
    """Mark RUNNING trials (of ``worker``, or all) stale and enqueue their parameters again."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if worker is not None and t.user_attrs.get("worker") != worker:
            continue
        study._storage.set_trial_user_attr(t._trial_id, "stale", True)  # no public API for another's trial
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        n += 1
    return n


def suggest(trial: optuna.Trial, key: str, axis: Any) -> Any:
    if isinstance(axis, list):
        return trial.suggest_categorical(key, axis)
    ((dist, arg),) = axis.items()
    if dist == "choice":
        return trial.suggest_categorical(key, arg)
    lo, hi = arg
    if dist == "int":
        return trial.suggest_int(key, int(lo), int(hi))
    return trial.suggest_float(key, float(lo), float(hi), log=dist == "loguniform")


class BayesWorker(submitit.helpers.Checkpointable):
    """One worker task: ask → run → tell until the study has spent its budget."""

    def __init__(self, folder: str, spec: SweepSpec):
        self.folder, self.spec = str(folder), spec

    def _ask(self, study: optuna.Study) -> optuna.Trial | None:
        from optuna.storages.journal import JournalFileOpenLock

        lock = JournalFileOpenLock(str(Path(self.folder) / "optuna.ask.lock"))
        lock.acquire()  # count-then-ask as one step: parallel workers never overshoot the budget
        try:
            return study.ask() if spent(study) < self.spec.bayes.trials else None
        finally:
            lock.release()

    def __call__(self, worker: str) -> dict:
        spec, folder = self.spec, Path(self.folder)
        kind = get(spec.job)
        resolver = Resolver(base_config(spec, kind), kind.config)
        study = load(folder, spec, worker)
        release(study, worker)  # this worker's trials from before a requeue
        done = 0
        while (trial := self._ask(study)) is not None:
            trial.set_user_attr("worker", worker)
            params = {k: suggest(trial, k, axis) for k, axis in spec.axes.items()}
            try:
                config = resolver(params, f"trial {trial.number} ({label(params)})")
            except ConfigError as e:
                trial.set_user_attr("error", str(e)[:300])
                study.tell(trial, state=TrialState.FAIL)
                continue
            rid = run_id(kind.name, config)
            store.write_config(folder, rid, config, params)
            trial.set_user_attr("run_id", rid)
            try:
                SweepRun(self.folder, spec.job)(rid, trial=trial.number, worker=worker)
            except Exception as e:
                trial.set_user_attr("error", short_error(e))
                study.tell(trial, state=TrialState.FAIL)
                continue
            m = spec.metric
            v = metric_value(store.run_dir(folder, rid), m.name, m.use, m.mode)
            if v is None or not math.isfinite(v):
                trial.set_user_attr("error", f"metric {m.name!r} not logged by the run")
                study.tell(trial, state=TrialState.FAIL)
                continue
            study.tell(trial, v)
            done += 1
        return {"worker": worker, "trials": done}
