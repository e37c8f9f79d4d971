"""Turn a Slurm (or submitit-local) task into a torch.distributed member.

One task per GPU, started by srun (submitit does it): no torchrun inside srun, no ssh, no hostfile.
Every task derives the same rendezvous from the job: MASTER_ADDR = the first host of the job's node
list, MASTER_PORT = a port computed from the job id (so two jobs sharing a node do not collide).
gloo on CPU, NCCL on GPU. DeepSpeed and HF Trainer read the same env variables.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

PORT_BASE, PORT_SPAN = 20000, 20000


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    num_nodes: int
    master_addr: str
    master_port: int
    job_id: str

    def export(self) -> None:
        """Set the env variables torch, DeepSpeed and accelerate read."""
        os.environ.update(
            {
                "RANK": str(self.rank),
                "WORLD_SIZE": str(self.world_size),
                "LOCAL_RANK": str(self.local_rank),
                "LOCAL_WORLD_SIZE": str(self.local_world_size),
                "NODE_RANK": str(self.node_rank),
                "MASTER_ADDR": self.master_addr,
                "MASTER_PORT": str(self.master_port),
            }
        )

    def to_dict(self) -> dict:
        return asdict(self)


def port_for_job(job_id: str) -> int:
    digits = "".join(c for c in str(job_id) if c.isdigit()) or "0"
    return PORT_BASE + int(digits) % PORT_SPAN


def dist_env() -> DistEnv:
    """The distributed layout of the current task: submitit's job environment when inside a
    submitit job (Slurm or local), else the raw SLURM_* variables of an srun task, else one process."""
    try:
        import submitit

        env = submitit.JobEnvironment()
        hosts = list(env.hostnames)
        job_id = str(env.job_id)
        tasks_per_node = max(1, env.num_tasks // max(1, env.num_nodes))
        return DistEnv(
            env.global_rank,
            env.num_tasks,
            env.local_rank,
            tasks_per_node,
            env.node,
            env.num_nodes,
            hosts[0] if hosts else "127.0.0.1",
            port_for_job(job_id),
            job_id,
        )
    except RuntimeError:  # not inside a submitit job
        pass
    e = os.environ
    if "SLURM_PROCID" in e:
        from submitit.slurm.slurm import _parse_node_list

        hosts = _parse_node_list(e.get("SLURM_JOB_NODELIST", "127.0.0.1"))
        n_nodes = int(e.get("SLURM_JOB_NUM_NODES", "1"))
        world = int(e.get("SLURM_NTASKS", "1"))
        job_id = e.get("SLURM_JOB_ID", "0")
        return DistEnv(
            int(e["SLURM_PROCID"]),
            world,
            int(e.get("SLURM_LOCALID", "0")),
            max(1, world // n_nodes),
            int(e.get("SLURM_NODEID", "0")),
            n_nodes,
            hosts[0],
            port_for_job(job_id),
            job_id,
        )
    return DistEnv(0, 1, 0, 1, 0, 1, "127.0.0.1", port_for_job(str(os.getpid())), "local")


def init_distributed(backend: str | None = None, timeout_s: int = 600) -> DistEnv:
    """Join the job's process group (idempotent). NCCL when CUDA is there, gloo otherwise."""
    import datetime

    import torch
    import torch.distributed as dist

    env = dist_env()
    env.export()
    if dist.is_initialized():
        return env
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=env.rank,
        world_size=env.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    return env
