"""Operations on a run or sweep folder's submissions, from any shell: status, cancel, requeue, rerun."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from cxr.config.schema import ExecutorConfig, ExecutorKind
from cxr.errors import UserError
from jobs.state import ACTIVE, TERMINAL
from jobs.submission import Submitted


@dataclass
class JobRow:
    group: str
    job_id: str
    state: str


def status(run_dir: str | Path) -> list[JobRow]:
    rows = []
    for sub in Submitted.load(run_dir):
        rows += [JobRow(sub.group.name, j, s) for j, s in sub.states().items()]
    return rows


def cancel(run_dir: str | Path) -> list[JobRow]:
    """Cancel every job of the folder that is not finished; returns the states after."""
    for sub in Submitted.load(run_dir):
        active = [j for j, s in sub.states().items() if s not in TERMINAL]
        if not active:
            continue
        if sub.group.kind == ExecutorKind.slurm:
            sub.slurm.cancel(active)
        elif sub.group.kind == ExecutorKind.local:
            for pid in active:
                (Path(sub.group.folder) / f"{pid}.cancelled").touch()
                try:
                    os.kill(int(pid), signal.SIGINT)  # what submitit's LocalJob.cancel sends
                except (ProcessLookupError, ValueError):
                    pass
    return status(run_dir)


def requeue(run_dir: str | Path) -> list[str]:
    """Checkpoint-and-requeue running Slurm jobs (USR2, as at preemption). ``scontrol requeue``
    would send no USR2 and the job would lose its work since the last save."""
    sent = []
    for sub in Submitted.load(run_dir):
        if sub.group.kind != ExecutorKind.slurm:
            continue
        running = [j for j, s in sub.states().items() if s == "RUNNING"]
        if running:
            sub.slurm.signal(running, "USR2")
            sent += running
    return sent


def rerun_failed(run_dir: str | Path) -> list[Submitted]:
    """Resubmit the failed items of every submission whose items failed (each alone, same call)."""
    out = []
    for sub in Submitted.load(run_dir):
        if sub.group.name.endswith("-rerun") or not sub.group.executor:
            continue
        cfg = _executor_from(sub.group.executor)
        new = sub.rerun_failed(cfg)
        if new is not None:
            out.append(new)
    return out


def _executor_from(data: dict) -> ExecutorConfig:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ExecutorConfig), data))
    except Exception as e:  # a jobs.json from another version
        raise UserError(f"jobs.json: executor settings cannot be read: {e.__class__.__name__}") from None


def summary(rows: list[JobRow]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    active = sum(n for s, n in counts.items() if s in ACTIVE)
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + (
        f" ({active} active)" if active else ""
    )
