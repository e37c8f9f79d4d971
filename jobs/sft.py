"""The SFT job: `cxr train sft` submits ``cxr.train.sft.run_sft`` through the configured executor
(one task per GPU; multi-node via jobs.distributed) and waits for it."""

from __future__ import annotations

import os
import subprocess

from cxr.config.schema import SftConfig
from cxr.errors import UserError
from jobs.submission import submit


def sft_task(cfg: SftConfig) -> str | None:
    """What each task runs: join the job's process layout (RANK, WORLD_SIZE, MASTER_* from Slurm or
    the local executor; HF Trainer, accelerate and DeepSpeed read them), then train.

    Preemption and time limits: Slurm sends USR2 to every task. Instead of submitit's handler (which
    would requeue at once, mid-step), the signal only asks the Trainer to save at the next step end
    and stop; then rank 0 requeues the job, which reruns this same call and resumes from that
    checkpoint, in the same run folder."""
    import signal

    from cxr.train.callbacks import SaveAndStopOnRequest
    from cxr.train.sft import run_sft
    from jobs.distributed import dist_env

    env = dist_env()
    if env.world_size > 1:
        env.export()
    stop = SaveAndStopOnRequest()
    if os.environ.get("SLURM_JOB_ID"):
        signal.signal(signal.SIGUSR2, lambda *_: stop.request())
    path = run_sft(cfg, callbacks=[stop])
    if path is None:  # stopped for a requeue
        if env.rank == 0 and os.environ.get("SLURM_JOB_ID"):
            subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=True, timeout=60)
        raise SystemExit(0)  # no result pickle: the requeued job will write it
    return path


def train_sft(cfg: SftConfig) -> str:
    sub = submit(sft_task, cfg, cfg=cfg.executor, run_dir=cfg.out, name=f"sft-{cfg.stage}")
    sub.wait()
    (outcome,) = sub.outcomes()
    if not outcome.ok:
        last = (outcome.error or outcome.state).strip().splitlines()[-1:]
        raise UserError(
            f"training job {outcome.job_id} {outcome.state}: {' '.join(last)} "
            f"(logs in {cfg.out}/jobs/; rerun the same command to resume)"
        )
    return outcome.value
