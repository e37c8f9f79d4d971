"""Each run's state from three witnesses: the scheduler (its latest job), the run's own status.json,
and — for failures — the job's error. A run whose status.json says completed is completed, whatever
happened to its job afterwards; a job that ended without the run completing is never "completed"."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.records import load_groups
from jobs.state import SlurmStates
from jobs.submission import Submitted, group_states
from sweeps import store

STATES = ("pending", "running", "completed", "failed", "timeout", "preempted", "cancelled")
SCHED = {
    "PENDING": "pending",
    "RUNNING": "running",
    "COMPLETING": "running",
    "CONFIGURING": "running",
    "SIGNALING": "running",
    "STAGE_OUT": "running",
    "RESIZING": "running",
    "SUSPENDED": "preempted",
    "STOPPED": "preempted",
    "PREEMPTED": "preempted",
    "PREEMPTED_FINAL": "preempted",
    "REQUEUED": "preempted",
    "REQUEUE_HOLD": "preempted",
    "REQUEUE_FED": "preempted",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "OUT_OF_MEMORY": "failed",
    "NODE_FAIL": "failed",
    "BOOT_FAIL": "failed",
    "KILLED": "failed",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "CANCELLED": "cancelled",
}
ACTIVE = {"pending", "running", "preempted"}  # preempted: requeued, waiting to run again
WHY = {
    "OUT_OF_MEMORY": "out of memory (raise executor.mem_gb)",
    "NODE_FAIL": "node failure",
    "BOOT_FAIL": "node failed to boot",
    "KILLED": "killed without a result (scancel, OOM killer or a crash)",
    "TIMEOUT": "hit the time limit (raise executor.time_min; it resumes from its checkpoint)",
    "DEADLINE": "past its deadline",
    "CANCELLED": "cancelled",
}


@dataclass
class RunState:
    id: str
    index: int
    params: dict[str, Any]
    state: str
    reason: str = ""
    job_id: str | None = None
    attempts: int = 0
    restarts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # trial number, worker (bayes)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def latest_jobs(folder: Path) -> dict[str, tuple[Submitted, str]]:
    """label → (its latest submission, job id)."""
    out: dict[str, tuple[Submitted, str]] = {}
    if not (folder / "jobs.json").is_file():
        return out
    for group in load_groups(folder):
        sub = Submitted(folder, group)
        for lab, jid in zip(group.labels or [], group.job_ids, strict=False):
            out[lab] = (sub, jid)
    return out


def job_states(jobs: dict[str, tuple[Submitted, str]]) -> dict[str, str]:
    """label → scheduler state, one query per submission."""
    slurm = SlurmStates()
    by_group: dict[int, tuple[Submitted, list[str]]] = {}
    for lab, (sub, _) in jobs.items():
        by_group.setdefault(id(sub.group), (sub, []))[1].append(lab)
    out = {}
    for sub, labels in by_group.values():
        states = group_states(sub.group, slurm)
        for lab in labels:
            out[lab] = states.get(jobs[lab][1], "PENDING")
    return out


def pending_reasons(job_ids: list[str]) -> dict[str, str]:
    import subprocess

    if not job_ids:
        return {}
    bases = sorted({j.split("_")[0] for j in job_ids})
    try:
        r = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%r", "-j", ",".join(bases)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    rows = dict(line.split("|", 1) for line in r.stdout.splitlines() if "|" in line)
    return {j: rows[j] for j in job_ids if j in rows}


def _failure(sub: Submitted, jid: str) -> str:
    """The last line of the job's traceback from submitit's result pickle."""
    import pickle

    from submitit.core.utils import JobPaths

    p = JobPaths(Path(sub.group.folder), job_id=jid).result_pickle
    try:
        with p.open("rb") as f:
            status, payload = pickle.load(f)
    except Exception:
        return ""
    lines = [ln for ln in str(payload).strip().splitlines() if ln.strip()]
    return lines[-1][:300] if status != "success" and lines else ""


def run_states(folder: str | Path) -> list[RunState]:
    folder = Path(folder)
    record = store.read(folder)
    jobs = latest_jobs(folder)
    sched = job_states(jobs)
    params = {r["id"]: r.get("params", {}) for r in record.get("runs", [])}
    rows = []
    for i, rid in enumerate(store.run_ids(folder, record)):
        d = store.run_dir(folder, rid)
        st = store.read_json(d / "status.json")
        restarts = len(store.read_json(d / "meta.json").get("restarts", []))
        label = st.get("worker") or rid  # bayes runs are done by workers
        job = jobs.get(label)
        row = RunState(
            rid,
            i,
            params.get(rid) or store.read_json(d / "params.json"),
            "pending",
            job_id=job[1] if job else None,
            attempts=int(st.get("attempts", 0)),
            restarts=restarts,
            extra={k: st[k] for k in ("trial", "worker") if k in st},
        )
        own, s = st.get("state"), sched.get(label)
        mapped = SCHED.get(s or "", "pending")
        if own == "completed":
            row.state = "completed"
        elif st.get("worker"):  # a bayes trial, run inside a worker job
            if own == "failed":
                row.state, row.reason = "failed", st.get("error") or ""
            elif s is None:
                row.state, row.reason = "failed", "interrupted; no worker on record"
            elif mapped == "running":
                row.state = "running"
            elif mapped in ACTIVE:
                row.state, row.reason = "preempted", "its worker was requeued; the trial resumes"
            else:
                row.state, row.reason = mapped, f"worker {row.job_id} {s} mid-trial"
                if mapped == "completed":  # cannot happen unless status.json was lost
                    row.state = "failed"
        elif own == "failed" and mapped not in ACTIVE:
            row.state, row.reason = "failed", st.get("error") or ""
        elif s is None:
            row.state, row.reason = (
                ("failed", "interrupted; no job on record") if own else ("pending", "not submitted")
            )
        else:
            row.state = mapped
            if mapped == "pending" and (restarts or row.attempts):
                row.state, row.reason = "preempted", "requeued; waiting to run again"
            elif mapped == "completed":  # the job ended but the run never recorded its end
                row.state, row.reason = "failed", "the job ended without the run completing"
            elif mapped in ("failed", "timeout", "cancelled"):
                row.reason = (job and _failure(*job)) or WHY.get(s, s)
        rows.append(row)
    waiting = [r.job_id for r in rows if r.state == "pending" and r.job_id and not r.reason]
    if waiting:
        reasons = pending_reasons(waiting)
        for r in rows:
            if r.state == "pending" and r.job_id in reasons:
                why = reasons[r.job_id]
                r.reason = "throttle (array %N)" if why == "JobArrayTaskLimit" else why
    return rows


def counts(rows: list[RunState]) -> dict[str, int]:
    out = {s: 0 for s in STATES}
    for r in rows:
        out[r.state] = out.get(r.state, 0) + 1
    return {k: v for k, v in out.items() if v}
