"""Executor from config: ``ExecutorConfig`` → a submitit executor (slurm, local, debug).

The one place that maps config fields to sbatch flags, so the dry-run preview (``sbatch_script``)
and real submissions can never drift apart: both go through ``slurm_parameters``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm import slurm as _slurm

from cxr.config.schema import ExecutorConfig, ExecutorKind
from cxr.errors import ConfigError
from jobs.local import ThrottledLocalExecutor

# Slurm sends the time-limit signal once, to job steps only, at its first limit check (every
# LIMIT_CHECK_S) after end - signal_delay - LIMIT_CHECK_S; one sent before the step runs is lost and
# the job ends TIMEOUT without saving (measured on the testbed). Leave the job MIN_START_S to start.
LIMIT_CHECK_S = 30  # slurmctld's PERIODIC_TIMEOUT
MIN_START_S = 30


def slurm_parameters(cfg: ExecutorConfig, *, dependency: str | None = None) -> dict[str, Any]:
    """submitit SlurmExecutor parameters (names as in ``_make_sbatch_string``)."""
    earliest = cfg.time_min * 60 - cfg.signal_delay_s - LIMIT_CHECK_S
    most = cfg.time_min * 60 - LIMIT_CHECK_S - MIN_START_S
    if earliest < MIN_START_S:
        raise ConfigError(
            f"executor.signal_delay_s={cfg.signal_delay_s} with executor.time_min={cfg.time_min}: Slurm may "
            f"send the time-limit USR2 {max(earliest, 0)} s after the job starts, before its step runs, "
            f"and then the signal is lost; use signal_delay_s <= {most}"
        )
    p: dict[str, Any] = {
        "job_name": cfg.job_name,
        "time": cfg.time_min,
        "nodes": cfg.nodes,
        "ntasks_per_node": cfg.tasks_per_node,
        "cpus_per_task": cfg.cpus_per_task,
        "signal_delay_s": cfg.signal_delay_s,
        "array_parallelism": cfg.array_parallelism,
    }
    for key in ("partition", "account", "qos"):
        if getattr(cfg, key):
            p[key] = getattr(cfg, key)
    if cfg.gpus_per_node:
        p["gpus_per_node"] = cfg.gpus_per_node
    if cfg.mem_gb:
        p["mem"] = _slurm._convert_mem(cfg.mem_gb)
    if cfg.setup:
        p["setup"] = list(cfg.setup)
    if cfg.additional:
        p["additional_parameters"] = {str(k).replace("_", "-"): v for k, v in cfg.additional.items()}
    if dependency:
        p["dependency"] = dependency
    return p


def make_executor(
    cfg: ExecutorConfig, folder: str | Path, *, dependency: str | None = None
) -> submitit.Executor:
    folder = Path(folder)
    kind = ExecutorKind(cfg.kind)
    if kind is ExecutorKind.slurm:
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=cfg.max_num_timeout)
        ex.update_parameters(**slurm_parameters(cfg, dependency=dependency))
        return ex
    if kind is ExecutorKind.debug:
        return submitit.DebugExecutor(folder=folder)
    ex = ThrottledLocalExecutor(
        folder=folder, max_num_timeout=cfg.max_num_timeout, parallelism=cfg.array_parallelism
    )
    params: dict[str, Any] = {
        "timeout_min": cfg.time_min,
        "tasks_per_node": cfg.tasks_per_node,
        "signal_delay_s": cfg.signal_delay_s,
    }
    if cfg.gpus_per_node:
        params["gpus_per_node"] = cfg.gpus_per_node
    if cfg.setup:
        params["setup"] = list(cfg.setup)
    ex.update_parameters(**params)
    return ex


def sbatch_script(
    cfg: ExecutorConfig,
    folder: str | Path,
    *,
    array_size: int | None = None,
    dependency: str | None = None,
    python: str | None = None,
) -> str:
    """The sbatch file that ``make_executor(cfg, folder)`` would submit (``--dry-run``)."""
    python = python or shlex.quote(sys.executable)
    command = " ".join([python, "-u -m submitit.core._submit", shlex.quote(str(Path(folder)))])
    params = slurm_parameters(cfg, dependency=dependency)
    if array_size:
        params["array_parallelism"] = min(cfg.array_parallelism, array_size)
    return _slurm._make_sbatch_string(command=command, folder=Path(folder), map_count=array_size, **params)
