"""What DeepSpeed + HF Trainer need on a CPU-only machine (tests, laptops); no-ops on GPUs.

- accelerate records one process per rank on CPU and its batch-size check then fails
  (``AssertionError: … 2 != 2 * 1 * 2``): create ``PartialState(backend="gloo")`` with
  ``ACCELERATE_USE_DEEPSPEED=true`` before the TrainingArguments, and let the Trainer use it
  (``accelerator_config={"use_configured_state": True}``).
- ``deepspeed.init_distributed`` on the CPU accelerator JIT-builds ``deepspeed_shm_comm`` (~45 s to
  minutes on 2 cores) although gloo is used; skip it by replacing ``build_shm_op`` in the module
  object (``import deepspeed.comm.torch as m`` would bind the torch package instead).
See ../shared/notes/stack.md.
"""

from __future__ import annotations

import os
import sys


def prepare() -> dict:
    """Call before building TrainingArguments; returns extra TrainingArguments kwargs."""
    import torch

    if torch.cuda.is_available():
        return {}
    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed.comm.torch  # noqa: F401

    sys.modules["deepspeed.comm.torch"].build_shm_op = lambda: None
    from accelerate import PartialState

    PartialState(backend="gloo")
    return {"accelerator_config": {"use_configured_state": True}}
