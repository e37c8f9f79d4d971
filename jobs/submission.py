"""Submit one job or an array through any executor kind; states, per-item outcomes, reruns.

Every submission gets its own submitit folder ``RUN/jobs/<name>-<n>`` (a reused folder can hand
back stale result pickles once Slurm restarts job ids) and a line in ``RUN/jobs.json``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from submitit.core.utils import DelayedSubmission, JobPaths

from cxr.config.load import to_container
from cxr.config.schema import ExecutorConfig, ExecutorKind
from jobs.executor import make_executor
from jobs.records import RECORD, JobGroup, add_group, load_groups
from jobs.state import TERMINAL, SlurmStates, result_marker, wait_for

DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize


@dataclass
class Outcome:
    index: int
    job_id: str
    state: str
    ok: bool
    value: Any = None
    error: str | None = None  # the job's traceback, or why it has none (CANCELLED, KILLED, TIMEOUT …)


def site_max_array_size() -> int:
    """MaxArraySize from ``scontrol show config`` (array indices must stay below it)."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return DEFAULT_MAX_ARRAY_SIZE
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.M)
    return int(m.group(1)) if m else DEFAULT_MAX_ARRAY_SIZE


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    # a zombie child is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def group_states(group: JobGroup, slurm: SlurmStates | None = None) -> dict[str, str]:
    if group.kind == ExecutorKind.slurm:
        return (slurm or SlurmStates()).query(group.job_ids, group.folder)
    out = {}
    for jid in group.job_ids:
        marker = result_marker(group.folder, jid)
        if marker:
            out[jid] = marker
        elif (Path(group.folder) / f"{jid}.cancelled").exists():
            out[jid] = "CANCELLED"
        elif group.kind == ExecutorKind.local:
            out[jid] = "RUNNING" if _pid_alive(jid) else "KILLED"
        else:
            out[jid] = "PENDING"  # debug jobs run when their result is asked for
    return out


class Submitted:
    """Handle on one submission (a job or an array). Rebuilt from ``jobs.json`` by ``Submitted.load``."""

    def __init__(self, run_dir: Path, group: JobGroup, jobs: list | None = None):
        self.run_dir, self.group, self.jobs = Path(run_dir), group, jobs or []
        self.slurm = SlurmStates()

    @property
    def job_ids(self) -> list[str]:
        return self.group.job_ids

    def states(self) -> dict[str, str]:
        if self.group.kind == ExecutorKind.debug and self.jobs:
            # the debug executor runs a job in this process, when its result is first asked for
            return {str(j.job_id): "COMPLETED" if j.exception() is None else "FAILED" for j in self.jobs}
        return group_states(self.group, self.slurm)

    def wait(self, timeout_s: float | None = None, max_poll_s: float = 30.0) -> dict[str, str]:
        if self.group.kind == ExecutorKind.debug:
            return self.states()
        return wait_for(
            lambda _ids: self.states(),
            self.job_ids,
            timeout_s=timeout_s,
            first_s=0.5 if self.group.kind == ExecutorKind.local else 1.0,
            max_s=max_poll_s,
        )

    def outcomes(self) -> list[Outcome]:
        import pickle

        states = self.states()
        if self.group.kind == ExecutorKind.debug and self.jobs:
            return [
                Outcome(
                    i,
                    str(j.job_id),
                    states[str(j.job_id)],
                    j.exception() is None,
                    j.result() if j.exception() is None else None,
                    None if j.exception() is None else repr(j.exception()),
                )
                for i, j in enumerate(self.jobs)
            ]
        out = []
        for i, jid in enumerate(self.job_ids):
            st = states[jid]
            p = JobPaths(Path(self.group.folder), job_id=jid).result_pickle
            if st in TERMINAL and p.is_file():
                with p.open("rb") as f:
                    status, payload = pickle.load(f)
                ok = status == "success"
                out.append(
                    Outcome(
                        i,
                        jid,
                        "COMPLETED" if ok else "FAILED",
                        ok,
                        payload if ok else None,
                        None if ok else str(payload),
                    )
                )
            else:
                out.append(Outcome(i, jid, st, False, error=st if st in TERMINAL else None))
        return out

    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes() if o.state in TERMINAL and not o.ok]

    def rerun_failed(self, cfg: ExecutorConfig) -> Submitted | None:
        """Resubmit only the failed items (their original pickled calls) as a new submission."""
        bad = self.failed()
        if not bad:
            return None
        delayed = [
            DelayedSubmission.load(JobPaths(Path(self.group.folder), job_id=o.job_id).submitted_pickle)
            for o in bad
        ]
        labels = self.group.labels
        return _submit_delayed(
            delayed,
            cfg,
            self.run_dir,
            f"{self.group.name}-rerun",
            labels=[labels[o.index] for o in bad] if labels else None,
        )

    @classmethod
    def load(cls, run_dir: str | Path) -> list[Submitted]:
        return [cls(Path(run_dir), g) for g in load_groups(run_dir)]


def _new_folder(run_dir: Path, name: str) -> Path:
    n = len(load_groups(run_dir)) if (run_dir / RECORD).is_file() else 0
    return run_dir / "jobs" / f"{name}-{n}"


def _submit_delayed(
    delayed: Sequence[DelayedSubmission],
    cfg: ExecutorConfig,
    run_dir: str | Path,
    name: str,
    dependency: str | None = None,
    labels: Sequence[str] | None = None,
) -> Submitted:
    run_dir = Path(run_dir)
    folder = _new_folder(run_dir, name)
    kind = ExecutorKind(cfg.kind)
    chunk = len(delayed)
    if kind is ExecutorKind.slurm and len(delayed) > 1:
        chunk = min(len(delayed), cfg.max_array_size or site_max_array_size())
    jobs: list = []
    dep = dependency
    for start in range(0, len(delayed), chunk):
        ex = make_executor(cfg, folder, dependency=dep)
        part = list(delayed[start : start + chunk])
        jobs += ex._internal_process_submissions(part)  # submitit's own array/single path
        if kind is ExecutorKind.slurm and start + chunk < len(delayed):
            # the next split waits for this one to end: the %N throttle then holds across splits
            dep = f"afterany:{jobs[-1].job_id.split('_')[0]}"
    group = JobGroup(
        name=name,
        kind=str(kind),
        folder=str(folder),
        job_ids=[str(j.job_id) for j in jobs],
        dependency=dependency,
        executor=to_container(cfg),
        labels=list(labels) if labels is not None else None,
    )
    add_group(run_dir, group)
    return Submitted(run_dir, group, jobs)


def submit(
    fn: Callable,
    *args: Any,
    cfg: ExecutorConfig,
    run_dir: str | Path,
    name: str = "job",
    dependency: str | None = None,
    **kwargs: Any,
) -> Submitted:
    """One job (``nodes × tasks_per_node`` tasks) running ``fn(*args, **kwargs)``."""
    return _submit_delayed([DelayedSubmission(fn, *args, **kwargs)], cfg, run_dir, name, dependency)


def map_array(
    fn: Callable,
    items: Sequence[Any],
    *,
    cfg: ExecutorConfig,
    run_dir: str | Path,
    name: str = "array",
    dependency: str | None = None,
    labels: Sequence[str] | None = None,
) -> Submitted:
    """``fn(item)`` for every item as one throttled array (split past the site's MaxArraySize);
    ``labels`` (one per item) are kept with the job ids in jobs.json, to find an item's job later."""
    if not items:
        raise ValueError("map_array: no items")
    if labels is not None and len(labels) != len(items):
        raise ValueError("map_array: one label per item")
    delayed = [DelayedSubmission(fn, item) for item in items]
    return _submit_delayed(delayed, cfg, run_dir, name, dependency, labels)
