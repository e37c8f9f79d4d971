"""Small real jobs: a cluster probe users run before a big job, and a resumable counter.

``allreduce_probe`` is what ``cxr jobs probe`` submits: every task joins the job's process group
through ``jobs.distributed`` and all-reduces its rank, which proves the node list, rendezvous and
backend work on that allocation. The tests use both on the Slurm testbed.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from jobs.checkpoint import CheckpointableJob


def allreduce_probe() -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    from jobs.distributed import init_distributed

    env = init_distributed()
    t = torch.tensor([float(env.rank)])
    dist.all_reduce(t)
    out = {
        **env.to_dict(),
        "host": socket.gethostname(),
        "backend": dist.get_backend(),
        "rank_sum": float(t.item()),
    }
    dist.barrier()
    dist.destroy_process_group()
    return out


class CountingJob(CheckpointableJob):
    """Counts to ``total``, one step per ``step_s`` seconds, appending each step to RUN/progress.txt."""

    kind = "counting"

    def __init__(self, total: int, step_s: float = 1.0):
        super().__init__()
        self.total, self.step_s = total, step_s

    def initial_state(self) -> dict[str, Any]:
        return {"count": 0}

    def run(self) -> int:
        import os

        restart = os.environ.get("SLURM_RESTART_COUNT", "0")
        progress = Path(self.run_dir) / "progress.txt"
        while self.state["count"] < self.total:
            time.sleep(self.step_s)
            self.state = {"count": self.state["count"] + 1}
            with progress.open("a") as f:
                f.write(f"{self.state['count']} {restart}\n")
        self.save()
        return self.state["count"]


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def timestamps(x: int, seconds: float) -> tuple[int, float, float]:
    t0 = time.time()
    time.sleep(seconds)
    return x, t0, time.time()
