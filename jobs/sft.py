"""Training jobs: `cxr train sft` submits ``cxr.train.sft.run_sft`` through the configured executor
(one task per GPU; multi-node via jobs.distributed) and waits for it; USR2 → checkpoint → requeue
is shared with stage 3 (``jobs.grpo``)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from cxr.config.schema import SftConfig
from cxr.errors import UserError
from jobs.submission import submit


def run_requeueable(cfg, run) -> str | None:
    """What each training task runs: join the job's process layout (RANK, WORLD_SIZE, MASTER_* from
    Slurm or the local executor; HF Trainer, accelerate and DeepSpeed read them), then ``run(cfg,
    callbacks)`` (``run_sft`` / ``run_grpo``).

    Preemption and time limits: Slurm sends USR2 to every task. Instead of submitit's handler (which
    would requeue at once, mid-step), the signal only asks the Trainer to save at the next step end
    and stop; then rank 0 requeues the job, which reruns this same call and resumes from that
    checkpoint, in the same run folder."""
    import signal

    from cxr.train.callbacks import SaveAndStopOnRequest
    from jobs.distributed import dist_env

    env = dist_env()
    if env.world_size > 1:
        env.export()
    stop = SaveAndStopOnRequest()
    if os.environ.get("SLURM_JOB_ID"):
        signal.signal(signal.SIGUSR2, lambda *_: stop.request())
    started = time.time()
    path = run(cfg, callbacks=[stop])
    if path is None:  # stopped for a requeue
        if env.rank == 0 and os.environ.get("SLURM_JOB_ID"):
            count_timeout(
                Path(cfg.out), time.time() - started, cfg.executor.time_min, cfg.executor.max_num_timeout
            )
            subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=True, timeout=60)
        raise SystemExit(0)  # no result pickle: the requeued job will write it
    return path


def sft_task(cfg: SftConfig) -> str | None:
    from cxr.train.sft import run_sft

    return run_requeueable(cfg, run_sft)


def wait_for_model(sub, cfg) -> str:
    """Wait for a training job; its exported model path, or a one-line error naming the logs."""
    sub.wait()
    (outcome,) = sub.outcomes()
    if not outcome.ok:
        last = (outcome.error or outcome.state).strip().splitlines()[-1:]
        raise UserError(
            f"training job {outcome.job_id} {outcome.state}: {' '.join(last)} "
            f"(logs in {cfg.out}/jobs/; rerun the same command to resume)"
        )
    return outcome.value


def count_timeout(run_dir: Path, elapsed_s: float, time_min: int, budget: int) -> None:
    """submitit's rule: a USR2 after min(0.8·T, T − 10 min) of the limit T is a time-out (else a
    preemption). Time-outs are counted in RUN/timeouts.json; past ``budget`` the job fails instead of
    requeueing forever (its checkpoint stays; rerun the command to go on)."""
    limit = time_min * 60
    if elapsed_s < min(0.8 * limit, limit - 600):
        return
    path = run_dir / "timeouts.json"
    n = (json.loads(path.read_text())["count"] if path.is_file() else 0) + 1
    path.write_text(json.dumps({"count": n}))
    if n > budget:
        raise RuntimeError(f"timed out {n} times, more than executor.max_num_timeout={budget}; not requeued")


def train_sft(cfg: SftConfig) -> str:
    return wait_for_model(
        submit(sft_task, cfg, cfg=cfg.executor, run_dir=cfg.out, name=f"sft-{cfg.stage}"), cfg
    )
