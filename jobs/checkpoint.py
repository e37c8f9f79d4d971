"""Long jobs that survive preemption and time limits: save at USR2, requeue, resume in place.

Slurm sends USR2 ``signal_delay_s`` before the time limit (``--signal=USR2@N``) or at preemption
(``preempt_send_user_signal``); submitit catches it in global rank 0 and calls ``checkpoint``, which
saves the job's ``state`` into its run folder (temp file + rename: a kill mid-write leaves the last
good checkpoint) and requeues the *same call*, so the job resumes with the same run id and folder.
``meta.json`` keeps the first start and lists every restart.

``scontrol requeue`` sends no USR2 (only TERM, then KILL): the job restarts from its last saved
checkpoint, losing what it did since. To checkpoint first, use ``cxr jobs requeue RUN`` (which sends
``scancel --signal=USR2``) instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import submitit

from cxr.config.runinfo import RunRecord

STATE_FILE = "checkpoint.json"


def save_state(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` to RUN/checkpoint.json (rank 0 only; other ranks return)."""
    from jobs.distributed import dist_env

    path = Path(run_dir) / STATE_FILE
    if dist_env().rank != 0:
        return path
    tmp = path.with_name(f".{STATE_FILE}.tmp{os.getpid()}")
    with tmp.open("w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_state(run_dir: str | Path) -> dict[str, Any] | None:
    p = Path(run_dir) / STATE_FILE
    return json.loads(p.read_text()) if p.is_file() else None


class CheckpointableJob(submitit.helpers.Checkpointable):
    """Subclass and implement ``initial_state`` and ``run``. ``run`` must keep ``self.state``
    current as it works (that is what ``checkpoint`` saves); call ``self.save()`` at natural points too.

    Submit the *instance* with the run folder as first argument: ``submit(job, run_dir, …)``.
    """

    kind = "job"

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.run_dir: Path | None = None

    def initial_state(self) -> dict[str, Any]:
        return {}

    def run(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> Any:
        """A config dataclass to write as config.yaml (None: the job has none)."""
        return None

    def save(self) -> None:
        if self.run_dir is not None:
            save_state(self.run_dir, self.state)

    def __call__(self, run_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
        self.run_dir = Path(run_dir)
        self.state = load_state(self.run_dir) or self.initial_state()
        with RunRecord(self.run_dir, self.config(), kind=self.kind):
            return self.run()

    def checkpoint(
        self, run_dir: str | Path, *args: Any, **kwargs: Any
    ) -> submitit.helpers.DelayedSubmission:
        self.run_dir = Path(run_dir)
        self.save()
        return super().checkpoint(run_dir, *args, **kwargs)
