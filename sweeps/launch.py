"""Launch a sweep (one throttled array through ``jobs/``), preview it, resume what did not complete.

Every run is resolved and validated before anything is submitted: a bad axis value or key is one
error naming the run, and nothing is queued. ``launch`` returns once the array is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from cxr.config.load import _parse_override, to_container
from cxr.config.schema import ExecutorConfig
from cxr.errors import ConfigError, UserError
from jobs.executor import sbatch_script
from jobs.registry import get
from jobs.state import TERMINAL
from jobs.submission import Submitted, map_array
from sweeps import bayes, store
from sweeps.expand import check_space, expand
from sweeps.spec import SweepMode, SweepSpec
from sweeps.status import ACTIVE, run_states
from sweeps.task import SweepRun, executor_of


@dataclass
class Launched:
    folder: Path
    runs: int  # runs (grid/random) or workers (bayes) submitted
    submission: Submitted | None


def _spec_data(spec: SweepSpec) -> dict:
    return to_container(spec)


def workers(spec: SweepSpec) -> list[str]:
    return [f"worker-{i}" for i in range(min(spec.bayes.parallelism, spec.bayes.trials))]


def preview(spec: SweepSpec, first: int = 3) -> str:
    """What --dry-run prints: the count, the first runs' settings and config ids, the sbatch file."""
    kind = get(spec.job)
    spec = replace(spec, out=str(spec.folder.resolve()))
    lines = []
    if spec.mode == SweepMode.bayes:
        check_space(spec, kind)
        items = workers(spec)
        lines.append(
            f"sweep {spec.name}: bayes (TPE), {spec.bayes.trials} trials by {len(items)} worker task(s), "
            f"job {kind.name}, objective {spec.metric.mode} {spec.metric.name}"
        )
    else:
        runs = expand(spec, kind)
        items = [r.id for r in runs]
        lines.append(f"sweep {spec.name}: {len(runs)} run(s) of job {kind.name} ({spec.mode})")
        for r in runs[:first]:
            lines.append(f"  {r.id}  " + " ".join(f"{k}={v}" for k, v in r.params.items()))
        if len(runs) > first:
            lines.append(f"  … {len(runs) - first} more")
    lines.append(f"folder: {spec.folder}")
    if spec.executor.kind == "slurm":
        lines.append("sbatch script (one array; split past MaxArraySize):")
        lines.append(sbatch_script(spec.executor, spec.folder / "jobs" / "sweep-0", array_size=len(items)))
    else:
        lines.append(f"executor: {spec.executor.kind}, {spec.executor.array_parallelism} at a time")
    return "\n".join(lines)


def launch(spec: SweepSpec) -> Launched:
    kind = get(spec.job)
    folder = spec.folder.resolve()
    spec = replace(spec, out=str(folder))  # spec.yaml then works from any directory
    if (folder / store.SWEEP).is_file():
        raise UserError(
            f"{folder} already holds a sweep: `cxr sweep resume {folder}` reruns what did not complete, "
            "or give another out="
        )
    record: dict[str, Any] = {"name": spec.name, "job": kind.name, "mode": str(spec.mode)}
    record["executor"] = to_container(spec.executor)
    if spec.mode == SweepMode.bayes:
        check_space(spec, kind)  # before anything is written
        items = workers(spec)
        store.create(folder, _spec_data(spec), {**record, "runs": []})
        bayes.create(folder, spec)
        sub = map_array(
            bayes.BayesWorker(str(folder), spec),
            items,
            cfg=spec.executor,
            run_dir=folder,
            name="sweep",
            labels=items,
        )
        return Launched(folder, len(items), sub)
    runs = expand(spec, kind)  # every run resolves, or nothing is written
    store.create(
        folder, _spec_data(spec), {**record, "runs": [{"id": r.id, "params": r.params} for r in runs]}
    )
    for r in runs:
        store.write_config(folder, r.id, r.config, r.params)
    return Launched(
        folder, len(runs), _submit(folder, kind.name, [r.id for r in runs], spec.executor, "sweep")
    )


def _submit(folder: Path, job: str, ids: list[str], executor: ExecutorConfig, name: str) -> Submitted:
    return map_array(SweepRun(str(folder), job), ids, cfg=executor, run_dir=folder, name=name, labels=ids)


def load_spec_of(folder: Path) -> SweepSpec:
    from sweeps.spec import load_spec

    return load_spec(folder / "spec.yaml")


def _split(overrides: list[str]) -> tuple[list[str], list[str]]:
    ex = [o for o in overrides if o.startswith("executor.")]
    return ex, [o for o in overrides if not o.startswith("executor.")]


def resume(folder: str | Path, overrides: list[str] = (), executor_kind: str | None = None) -> Launched:
    """Resubmit the runs that did not complete (failed, timeout, cancelled; for bayes: the study's
    unspent budget), same ids and folders, with optional fixes: ``executor.*`` overrides change how
    they are scheduled, other overrides change their config (axis keys are refused: they are what
    the run *is*)."""
    folder = Path(folder)
    record = store.read(folder)
    spec = load_spec_of(folder)
    ex_over, job_over = _split(list(overrides))
    if executor_kind:
        ex_over.insert(0, f"executor.kind={executor_kind}")
    executor = _with(executor_of(record), ex_over)
    if spec.mode == SweepMode.bayes:
        return _resume_bayes(folder, record, spec, executor, job_over)
    rows = run_states(folder)
    active = [r for r in rows if r.state in ACTIVE]
    redo = [r for r in rows if r.state not in ACTIVE and r.state != "completed"]
    if not redo:
        return Launched(folder, 0, None)
    kind = get(record["job"])
    fixes = _check_fixes(job_over, spec)
    configs = {r.id: _fixed_config(folder, kind, r.id, fixes) for r in redo}  # all validate first
    for rid, config in configs.items():
        d = store.run_dir(folder, rid)
        if fixes:
            launch_cfg = d / "config.launch.yaml"
            if not launch_cfg.is_file():
                launch_cfg.write_bytes((d / "config.yaml").read_bytes())
            store.write_config(folder, rid, config, store.read_json(d / "params.json"))
            fixed = store.read_json(d / "status.json").get("fixes", [])
            store.update_status(d, fixes=[*fixed, job_over])
    record["executor"] = to_container(executor)
    record["resumes"] = record.get("resumes", []) + [
        {"runs": list(configs), "overrides": list(overrides), "left_active": [r.id for r in active]}
    ]
    store.write(folder, record)
    ids = list(configs)
    return Launched(folder, len(ids), _submit(folder, kind.name, ids, executor, "sweep-resume"))


def _with(executor: ExecutorConfig, overrides: list[str]) -> ExecutorConfig:
    cfg = OmegaConf.structured(executor)
    for o in overrides:
        try:
            cfg = OmegaConf.merge(cfg, _parse_override(o.removeprefix("executor.")))
            executor = OmegaConf.to_object(cfg)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"override {o!r}: {str(e).splitlines()[0]}") from None
    return executor


def _check_fixes(job_over: list[str], spec: SweepSpec) -> dict:
    fixes: dict = {}
    for o in job_over:
        key = o.split("=", 1)[0]
        if key in spec.axes or key == get(spec.job).seed_key and spec.seeds:
            raise UserError(
                f"override {o!r}: '{key}' is a sweep axis; changing it changes what the run is (launch a new sweep)"
            )
        if key == "out":
            raise UserError(f"override {o!r}: a run's folder is fixed")
        fixes = OmegaConf.to_container(OmegaConf.merge(fixes, _parse_override(o)))
    return fixes


def _fixed_config(folder: Path, kind, rid: str, fixes: dict) -> dict:
    from sweeps.expand import Resolver

    d = store.run_dir(folder, rid)
    current = yaml.safe_load((d / "config.yaml").read_text())
    if not fixes:
        return current
    base = OmegaConf.merge(OmegaConf.structured(kind.config), current)
    flat = _flatten(fixes)
    return Resolver(base, kind.config)(flat, f"run {rid}")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _resume_bayes(folder: Path, record: dict, spec: SweepSpec, executor: ExecutorConfig, job_over: list[str]):
    if job_over:
        raise UserError(
            "a bayes sweep takes only executor.* overrides on resume (its trials draw their configs)"
        )
    subs = Submitted.load(folder) if (folder / "jobs.json").is_file() else []
    live = [j for sub in subs for j, st in sub.states().items() if st not in TERMINAL]
    if live:
        raise UserError(
            f"{len(live)} worker job(s) still active ({', '.join(live)}): wait, or `cxr jobs cancel {folder}`"
        )
    study = bayes.load(folder, spec)
    bayes.release(study)  # no worker is alive: every RUNNING trial is a dead worker's
    left = spec.bayes.trials - bayes.spent(study)
    if left <= 0:
        return Launched(folder, 0, None)
    items = workers(replace(spec, bayes=replace(spec.bayes, trials=left)))
    record["executor"] = to_container(executor)
    record["resumes"] = record.get("resumes", []) + [{"workers": items, "trials_left": left}]
    store.write(folder, record)
    worker = bayes.BayesWorker(str(folder), replace(spec, executor=executor))
    sub = map_array(worker, items, cfg=executor, run_dir=folder, name="sweep-resume", labels=items)
    return Launched(folder, len(items), sub)
