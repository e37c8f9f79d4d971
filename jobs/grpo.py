"""The stage-3 job: `cxr train grpo` submits ``cxr.train.grpo.run_grpo`` like stage 1–2 (USR2 →
checkpoint → requeue, multi-node via jobs.distributed) and waits for it.

Server mode (GPU clusters): rollouts come from a dedicated vLLM server job instead of an engine in
every training process. Two jobs in the run folder:

    vllm-server  (rollout.server_executor: 1 node, tensor_parallel_size GPUs)
        writes RUN/vllm-server.json {host, port, job_id}, then runs `vllm serve` as TRL's
        `trl vllm-serve` builds it (NCCL weight-transfer engine, processed logprobs);
    grpo         (executor: N nodes), submitted with --dependency=after:<server job>
        reads RUN/vllm-server.json, waits for the server, trains; TRL pushes weights over NCCL.

The trainer cancels the server job when it ends. CPU torch cannot run that NCCL sync, so on CPUs
server mode can only be previewed (`--dry-run` prints both sbatch scripts).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from cxr.config.schema import ExecutorKind, GrpoConfig, RolloutMode
from cxr.errors import UserError
from jobs.control import cancel
from jobs.executor import sbatch_script
from jobs.sft import run_requeueable, wait_for_model
from jobs.submission import submit

ADDRESS_FILE = "vllm-server.json"


def server_command(cfg: GrpoConfig, python: str | None = None) -> list[str]:
    """The `vllm serve` command line TRL's `trl vllm-serve` would run, with our image bounds."""
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    args = ScriptArguments(
        model=cfg.model.path,
        tensor_parallel_size=cfg.rollout.tensor_parallel_size,
        host="0.0.0.0",
        port=cfg.rollout.server_port,
        gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
        max_model_len=cfg.rollout.max_model_len,
        dtype="bfloat16" if cfg.precision != "fp32" else "float32",
    )
    extra = [
        "--limit-mm-per-prompt",
        json.dumps({"image": 1, "video": 0}),
        "--mm-processor-kwargs",
        json.dumps({"min_pixels": cfg.image.min_pixels, "max_pixels": cfg.image.max_pixels}),
    ]
    cmd = build_command(args, extra)
    return [python or sys.executable, *cmd[1:]]


def vllm_server_task(cfg: GrpoConfig) -> None:
    """Runs on the server node: publish the address, then serve until cancelled."""
    address = {
        "host": socket.getfqdn(),
        "port": cfg.rollout.server_port,
        "job_id": os.environ.get("SLURM_JOB_ID"),
    }
    tmp = Path(cfg.out) / f".{ADDRESS_FILE}.tmp"
    tmp.write_text(json.dumps(address))
    os.replace(tmp, Path(cfg.out) / ADDRESS_FILE)
    subprocess.run(server_command(cfg), check=True, env={**os.environ, "VLLM_SERVER_DEV_MODE": "1"})


def read_server_address(run_dir: Path, timeout_s: float) -> tuple[str, int]:
    path = run_dir / ADDRESS_FILE
    deadline = time.time() + timeout_s
    while not path.is_file():
        if time.time() > deadline:
            raise UserError(
                f"no vLLM server address in {path} after {timeout_s:.0f} s (is the vllm-server job running?)"
            )
        time.sleep(5)
    data = json.loads(path.read_text())
    return str(data["host"]), int(data["port"])


def grpo_task(cfg: GrpoConfig) -> str | None:
    from cxr.train.grpo import run_grpo

    if RolloutMode(cfg.rollout.mode) is RolloutMode.server:
        host, port = read_server_address(Path(cfg.out), cfg.rollout.server_timeout_s)
        os.environ["CXR_VLLM_HOST"] = host
        cfg.rollout.server_port = port
    return run_requeueable(cfg, run_grpo)


def train_grpo(cfg: GrpoConfig) -> str:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if RolloutMode(cfg.rollout.mode) is not RolloutMode.server:
        return wait_for_model(submit(grpo_task, cfg, cfg=cfg.executor, run_dir=out, name="grpo"), cfg)
    (out / ADDRESS_FILE).unlink(missing_ok=True)  # a stale address from an earlier server
    server = submit(vllm_server_task, cfg, cfg=cfg.rollout.server_executor, run_dir=out, name="vllm-server")
    dependency = (
        f"after:{server.job_ids[0]}" if ExecutorKind(cfg.executor.kind) is ExecutorKind.slurm else None
    )
    try:
        return wait_for_model(
            submit(grpo_task, cfg, cfg=cfg.executor, run_dir=out, name="grpo", dependency=dependency), cfg
        )
    finally:
        cancel(out)  # the server never ends by itself


def dry_run(cfg: GrpoConfig, python: str | None = None) -> str:
    """The sbatch script(s) `train_grpo` would submit, and the server's command line in server mode."""
    out = Path(cfg.out)
    trainer = sbatch_script(cfg.executor, out / "jobs" / "grpo-N", python=python)
    if RolloutMode(cfg.rollout.mode) is not RolloutMode.server:
        return trainer
    server = sbatch_script(cfg.rollout.server_executor, out / "jobs" / "vllm-server-N", python=python)
    trainer = sbatch_script(
        cfg.executor, out / "jobs" / "grpo-N", dependency="after:<vllm-server job id>", python=python
    )
    return (
        f"# 1/2 vLLM server job; it runs:\n#   {shlex.join(server_command(cfg, python))}\n{server}\n"
        f"# 2/2 trainer job, starts once the server job has started\n{trainer}"
    )
