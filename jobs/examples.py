"""Small real jobs: a cluster probe users run before a big job, and a resumable counter.

``allreduce_probe`` is what ``cxr jobs probe`` submits: every task joins the job's process group
through ``jobs.distributed`` and all-reduces its rank, which proves the node list, rendezvous and
backend work on that allocation. The tests use both on the Slurm testbed.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxr.config.schema import ExecutorConfig
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


@dataclass
class ToyConfig:
    """A least-squares fit by minibatch SGD that finishes in seconds: the sweep machinery (arrays,
    throttles, failures, resume, tables) rehearsed without a model. Too large an ``lr`` diverges —
    a real failure, which ``clip_norm`` fixes."""

    out: str = "runs/toy"
    lr: float = 0.1
    epochs: int = 20
    batch_size: int = 32
    clip_norm: float = 0.0  # > 0: clip each step's gradient to this norm
    seed: int = 0  # initial weights and minibatch order (the data stay fixed)
    n: int = 512
    dim: int = 8
    noise: float = 0.1
    epoch_s: float = 0.0  # sleep per epoch, to stretch a run for preemption drills
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.n < 2 or self.dim < 1:
            raise ValueError("toy: epochs, batch_size, dim must be >= 1 and n >= 2")


def toy_regression(cfg: ToyConfig) -> float:
    """Train, checkpointing every epoch to RUN/toy.pt (a rerun resumes there), logging train and
    validation loss to RUN/metrics.jsonl; the final validation loss. Divergence is an error."""
    import json

    import torch

    from cxr.config.runinfo import RunRecord

    out = Path(cfg.out)
    with RunRecord(out, cfg, kind="toy"):
        data = torch.Generator().manual_seed(1234)  # same data for every run of a sweep
        x = torch.randn(cfg.n, cfg.dim, generator=data)
        w_true = torch.randn(cfg.dim, generator=data)
        y = x @ w_true + cfg.noise * torch.randn(cfg.n, generator=data)
        n_train = cfg.n * 3 // 4
        gen = torch.Generator().manual_seed(cfg.seed)
        ckpt = out / "toy.pt"
        if ckpt.is_file():
            state = torch.load(ckpt)
            w, start = state["w"], state["epoch"]
            gen.set_state(state["rng"])
        else:
            w, start = torch.randn(cfg.dim, generator=gen), 0

        def loss(lo: int, hi: int) -> float:
            return float(((x[lo:hi] @ w - y[lo:hi]) ** 2).mean())

        first = loss(0, n_train)
        for epoch in range(start, cfg.epochs):
            order = torch.randperm(n_train, generator=gen)
            for i in range(0, n_train, cfg.batch_size):
                b = order[i : i + cfg.batch_size]
                grad = 2 * x[b].T @ (x[b] @ w - y[b]) / len(b)
                norm = float(grad.norm())
                if cfg.clip_norm > 0 and norm > cfg.clip_norm:
                    grad = grad * (cfg.clip_norm / norm)
                w = w - cfg.lr * grad
            train = loss(0, n_train)
            if not train < 1e6 * max(first, 1.0):  # NaN compares False too
                raise FloatingPointError(
                    f"toy: loss diverged at epoch {epoch + 1} (lr={cfg.lr}); lower lr or set clip_norm"
                )
            with (out / "metrics.jsonl").open("a") as f:
                f.write(
                    json.dumps({"step": epoch + 1, "train_loss": train, "val_loss": loss(n_train, cfg.n)})
                    + "\n"
                )
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"w": w, "epoch": epoch + 1, "rng": gen.get_state()}, tmp)
            tmp.replace(ckpt)
            time.sleep(cfg.epoch_s)
        return loss(n_train, cfg.n)
