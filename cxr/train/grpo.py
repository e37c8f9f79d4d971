"""Stage 3: online GRPO (TRL GRPOTrainer) with rollouts from vLLM or transformers.

Starts from stage 2's export (``model.path``), trains on build-data records with the seed's reasoning
suffix on every prompt, and scores completions with a reward mix from ``cxr.rewards`` (one TRL reward
function per component, so each is logged as ``rewards/<name>/mean``). Two additions to TRL's trainer:

- rollout log: every scored completion goes to ``RUN/rollouts/rank-R.jsonl`` (step, record id, each
  component, the text), what an analyst opens first when a reward curve looks wrong;
- weight-sync check (colocate): after every sync a fixed probe's logprobs from vLLM and from the
  policy must agree within ``rollout.weight_sync_tolerance``, else the run stops with an error
  instead of training on rollouts from stale or half-loaded weights (``cxr.train.vllm_colocate``).

Checkpoints, resume (TRL/HF restore the sampler position), export and USR2 handling are shared with
stage 1–2 (``cxr.train.sft``, ``jobs/``).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from cxr.config.runinfo import RunRecord
from cxr.config.schema import GrpoConfig, RolloutMode
from cxr.errors import UserError
from cxr.inference.base import banned_token_ids
from cxr.rewards import completion_text, resolve_mix, trl_reward_funcs
from cxr.train import vllm_colocate
from cxr.train.callbacks import MetricsLog
from cxr.train.records import SftRecords, as_hf_dataset
from cxr.train.sft import export, latest_complete_checkpoint, load_policy, trainer_args


def _trainer_class():
    from trl import GRPOTrainer

    class CxrGRPOTrainer(GRPOTrainer):
        """GRPOTrainer + rollout log + weight-sync check (see the module docstring)."""

        def __init__(self, *args, rollout_log: Path | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self._rollout_log = rollout_log
            self.last_sync_difference: float | None = None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            if self._rollout_log is not None:
                # ``rewards`` is gathered over ranks; this rank's rows are its slice, in order.
                n = len(prompts)
                start = self.accelerator.process_index * n
                mine = rewards[start : start + n].tolist()
                with open(self._rollout_log, "a") as f:
                    for example, completion, values in zip(inputs, completions, mine, strict=True):
                        row = {
                            "step": self.state.global_step,
                            "record_id": example.get("record_id"),
                            "task": example.get("task"),
                            **{
                                name: (None if v != v else v)
                                for name, v in zip(self.reward_func_names, values, strict=True)
                            },
                            "completion": completion_text(completion),
                        }
                        f.write(json.dumps(row) + "\n")
            return rewards

    return CxrGRPOTrainer


def build_trainer(cfg: GrpoConfig, callbacks=()):
    from trl import GRPOConfig

    if not Path(cfg.model.path, "config.json").is_file():
        raise UserError(f"model.path={cfg.model.path!r} is not a saved model (start from stage 2's export)")
    processor, model, on_gpu, bf16 = load_policy(cfg, padding_side="left")
    out = Path(cfg.out)
    extra: dict = {}
    if cfg.deepspeed:
        from cxr.train import cpu_deepspeed

        extra = cpu_deepspeed.prepare()
    mode = RolloutMode(cfg.rollout.mode)
    banned = banned_token_ids(processor.tokenizer)
    if mode is RolloutMode.hf:
        extra["generation_kwargs"] = {"suppress_tokens": banned}
    else:
        # vision tokens sampled as text would not match the image features in the policy's forward
        extra["generation_kwargs"] = {"logit_bias": {t: -100.0 for t in banned}}
        extra.update(
            use_vllm=True,
            vllm_mode="server" if mode is RolloutMode.server else "colocate",
            vllm_gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
            vllm_max_model_length=cfg.rollout.max_model_len,
            vllm_tensor_parallel_size=cfg.rollout.tensor_parallel_size,
            vllm_enable_sleep_mode=cfg.rollout.enable_sleep_mode,
            vllm_importance_sampling_correction=True,
        )
        if mode is RolloutMode.server:
            extra.update(
                vllm_server_host=os.environ.get("CXR_VLLM_HOST", "127.0.0.1"),
                vllm_server_port=cfg.rollout.server_port,
                vllm_server_timeout=float(cfg.rollout.server_timeout_s),
            )
        if not on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.rollout.cpu_kv_cache_gib))
    mix = resolve_mix(cfg.reward.preset, cfg.reward.weights)
    funcs, weights = trl_reward_funcs(mix, cfg.reward.iou_threshold)
    args = GRPOConfig(
        **trainer_args(cfg, out, on_gpu=on_gpu, bf16=bf16),
        num_generations=cfg.num_generations,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_completion_length=cfg.max_completion_length,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        loss_type=cfg.loss_type,
        reward_weights=weights,
        **extra,
    )
    records = SftRecords(
        cfg.data,
        cfg.shards,
        stage="instruction",
        split=cfg.split,
        grounded=True,
        tasks=list(cfg.tasks),
        max_records=cfg.max_records,
    )
    rollout_log = None
    if cfg.log_rollouts:
        (out / "rollouts").mkdir(parents=True, exist_ok=True)
        rollout_log = out / "rollouts" / f"rank-{int(os.environ.get('RANK', 0))}.jsonl"
    engine = contextlib.nullcontext()
    if mode is RolloutMode.colocate:
        engine = vllm_colocate.llm_overrides(
            dtype="bfloat16" if bf16 else "float32",
            min_pixels=cfg.image.min_pixels,
            max_pixels=cfg.image.max_pixels,
            enforce_eager=not on_gpu,
        )
    with engine:
        trainer = _trainer_class()(
            model=model,
            reward_funcs=funcs,
            args=args,
            train_dataset=as_hf_dataset(records, rl=True),
            processing_class=processor,
            callbacks=[MetricsLog(cfg.out), *callbacks],
            rollout_log=rollout_log,
        )
    if mode is RolloutMode.colocate:
        vllm_colocate.install(
            trainer,
            tokenizer=processor.tokenizer,
            tolerance=cfg.rollout.weight_sync_tolerance,
            on_cpu=not on_gpu,
        )
    return trainer, processor


def run_grpo(cfg: GrpoConfig, callbacks=()) -> str | None:
    """Train (resuming from the latest complete checkpoint) and export; None when stopped early for a
    requeue (the checkpoint is written; the next run resumes from it)."""
    out = Path(cfg.out)
    with RunRecord(out, cfg, kind="grpo") as meta:
        trainer, processor = build_trainer(cfg, callbacks)
        resume = latest_complete_checkpoint(out)
        meta["resumed_from"] = Path(resume).name if resume else None
        result = trainer.train(resume_from_checkpoint=resume)
        meta.update(global_step=trainer.state.global_step, train_loss=float(result.training_loss))
        meta["last_sync_difference"] = getattr(trainer, "last_sync_difference", None)
        rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
        if rewards:
            meta.update(first_reward=rewards[0], last_reward=rewards[-1])
        if any(getattr(cb, "stopped", False) for cb in callbacks):
            meta["stopped_for_requeue"] = True
            return None
        path = export(trainer, processor, out)
    return str(path)
