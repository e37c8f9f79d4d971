"""``DIR/jobs.json``: what was submitted for a run or sweep folder, so that ``cxr jobs status`` and
``cxr jobs cancel`` work from any later shell (submitit's handles live only in the submitting process)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cxr.errors import UserError

RECORD = "jobs.json"


@dataclass
class JobGroup:
    """One submission: a single job, or an array (one id per item), or one link of a chain."""

    name: str
    kind: str  # slurm | local | debug
    folder: str  # submitit's folder (pickles, logs, result markers)
    job_ids: list[str]
    submitted_at: float = field(default_factory=time.time)
    dependency: str | None = None
    executor: dict | None = None  # the ExecutorConfig it ran with, for reruns from another shell
    labels: list[str] | None = None  # what each job runs (a sweep's run ids), same order as job_ids


def load_groups(run_dir: str | Path) -> list[JobGroup]:
    p = Path(run_dir) / RECORD
    if not p.is_file():
        raise UserError(f"{run_dir} has no {RECORD}: nothing was submitted from this folder")
    try:
        return [JobGroup(**g) for g in json.loads(p.read_text())["groups"]]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{p} is not a valid jobs record: {e.__class__.__name__}") from None


def add_group(run_dir: str | Path, group: JobGroup) -> None:
    """Append a submission to RUN/jobs.json (locked: a sweep may submit from several processes)."""
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    p = run_dir / RECORD
    with (run_dir / f".{RECORD}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        groups = [asdict(g) for g in load_groups(run_dir)] if p.is_file() else []
        groups.append(asdict(group))
        tmp = p.with_name(f".{RECORD}.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"groups": groups}, indent=2))
        os.replace(tmp, p)
