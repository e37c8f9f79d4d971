"""What one array task of a sweep runs: one run, in its own folder, recorded in its status.json.

A failure is recorded and re-raised (the scheduler then shows that task FAILED); it never touches
another run. USR2 (preemption, time limit): training jobs save and requeue themselves
(``jobs.sft.run_requeueable``); other jobs are requeued by submitit through ``checkpoint``; either
way the same call reruns in the same folder and resumes from what it holds.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import submitit
from omegaconf import OmegaConf

from cxr.config import load_config
from cxr.config.runinfo import slurm_ids
from cxr.config.schema import ExecutorConfig
from jobs.registry import get
from sweeps import store


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def executor_of(record: dict) -> ExecutorConfig:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ExecutorConfig), record["executor"]))


def short_error(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


class SweepRun(submitit.helpers.Checkpointable):
    def __init__(self, folder: str, job: str):
        self.folder, self.job = str(folder), job

    def __call__(self, rid: str, **status: Any) -> Any:
        kind = get(self.job)
        d = store.run_dir(self.folder, rid)
        cfg = load_config(kind.config, d / "config.yaml")
        changes: dict[str, Any] = {"out": str(d)}
        if hasattr(cfg, "executor"):  # what the job's own requeue logic reads (time limit, budget)
            changes["executor"] = executor_of(store.read(self.folder))
        cfg = replace(cfg, **changes)
        previous = store.read_json(d / "status.json")
        store.update_status(
            d,
            **status,
            state="running",
            attempts=previous.get("attempts", 0) + 1,
            started=_now(),
            first_started=previous.get("first_started") or _now(),
            ended=None,
            error=None,
            slurm=slurm_ids(),
            host=os.uname().nodename,
        )
        try:
            result = kind.run(cfg)
        except Exception as e:
            store.update_status(d, state="failed", ended=_now(), error=short_error(e))
            raise
        store.update_status(d, state="completed", ended=_now(), result=_plain(result))
        return {"run": rid, "result": _plain(result)}


def _plain(x: Any) -> Any:
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return repr(x)
