"""The SFT job: `cxr train sft` submits ``cxr.train.sft.run_sft`` through the configured executor
(one task per GPU; multi-node via jobs.distributed) and waits for it."""

from __future__ import annotations

from cxr.config.schema import SftConfig
from cxr.errors import UserError
from jobs.submission import submit


def sft_task(cfg: SftConfig) -> str:
    """What each task runs: join the job's process layout (RANK, WORLD_SIZE, MASTER_* from Slurm or
    the local executor; HF Trainer/accelerate/DeepSpeed read them), then train."""
    from cxr.train.sft import run_sft
    from jobs.distributed import dist_env

    env = dist_env()
    if env.world_size > 1:
        env.export()
    return run_sft(cfg)


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
