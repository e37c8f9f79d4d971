"""Trainer callbacks: stop cleanly at a step boundary, with a checkpoint, when asked (preemption)."""

from __future__ import annotations

from transformers import TrainerCallback


class SaveAndStopOnRequest(TrainerCallback):
    """``request()`` may be called from a signal handler; at the next step end every rank agrees
    (an all-reduce, so all ranks save at the same step — ZeRO-3 saves are collective), the Trainer
    writes a checkpoint and stops. ``stopped`` tells the caller not to export a half-trained model."""

    def __init__(self) -> None:
        self.requested = False
        self.stopped = False

    def request(self) -> None:
        self.requested = True

    def on_step_end(self, args, state, control, **kwargs):
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1.0 if self.requested else 0.0])
        if dist.is_available() and dist.is_initialized() and dist.get_backend() == "gloo":
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        elif dist.is_available() and dist.is_initialized():  # NCCL reduces CUDA tensors
            flag = flag.cuda()
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0:
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control


class MetricsLog(TrainerCallback):
    """Appends every Trainer log (loss, learning rate, rewards, eval metrics) to ``RUN/metrics.jsonl``
    as ``{"step": N, key: value, …}`` on the main process: the run folder's metric record, which
    sweeps and result tables read without TensorBoard. A resumed run appends again from its
    checkpoint's step; readers keep the last line per (step, key)."""

    def __init__(self, run_dir) -> None:
        from pathlib import Path

        self.path = Path(run_dir) / "metrics.jsonl"

    def on_log(self, args, state, control, logs=None, **kwargs):
        import json
        import math

        if not state.is_world_process_zero or not logs:
            return
        row = {"step": int(state.global_step)}
        for k, v in logs.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                row[k] = float(v) if math.isfinite(v) else str(v)  # JSON has no NaN/inf
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
