"""Stages 1–2: TRL SFTTrainer on the VLM, from the records of `cxr build-data`.

The same function trains the tiny model on a laptop and Qwen2.5-VL-7B on GPU nodes: precision,
DeepSpeed JSON and the process layout come from the config and the ``jobs/`` launcher. Checkpoints
every ``save_steps`` into the run folder; a rerun resumes from the latest *complete* checkpoint (one
whose trainer_state.json was written — HF writes it last), so a job killed mid-save resumes from
the one before. The final model is exported with ``save_pretrained`` (canonical keys, safetensors)
to RUN/export, written under a temporary name and renamed.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from cxr.config.runinfo import RunRecord
from cxr.config.schema import SftConfig
from cxr.model import load_model, load_processor
from cxr.train.callbacks import MetricsLog
from cxr.train.records import SftRecords, as_hf_dataset


def latest_complete_checkpoint(out: Path) -> str | None:
    steps = []
    for d in out.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / "trainer_state.json").is_file():
            steps.append((int(m.group(1)), d))
    return str(max(steps)[1]) if steps else None


def vision_tower(model):
    for owner in (model, getattr(model, "model", None)):
        vis = getattr(owner, "visual", None) if owner is not None else None
        if vis is not None:
            return vis
    return None


def load_policy(cfg, padding_side: str):
    """Processor and trainable model from a stage config's model / image / precision / freeze_vision
    (stages 1–3); also whether this runs on a GPU and in bf16."""
    import torch

    on_gpu = torch.cuda.is_available()
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and on_gpu)
    processor = load_processor(
        cfg.model.path,
        min_pixels=cfg.image.min_pixels,
        max_pixels=cfg.image.max_pixels,
        padding_side=padding_side,
    )
    model = load_model(
        cfg.model.path,
        dtype="bfloat16" if bf16 else "float32",
        device="cpu",
        attn_implementation=cfg.model.attn_implementation,
    )
    model.train()
    if cfg.freeze_vision and (vis := vision_tower(model)) is not None:
        for p in vis.parameters():
            p.requires_grad_(False)
    return processor, model, on_gpu, bf16


def trainer_args(cfg, out: Path, *, on_gpu: bool, bf16: bool) -> dict:
    """TrainingArguments every stage sets the same way from its config. TensorBoard writes to
    RUN/logs: transformers 5 takes that from the environment, set (not defaulted) per run so a
    process that trains twice, or starts later runs, never logs into an earlier run's folder."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "logs")
    return dict(
        output_dir=str(out),
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        use_cpu=not on_gpu,
        report_to=list(cfg.report_to),
        gradient_checkpointing=cfg.gradient_checkpointing,
        deepspeed=cfg.deepspeed or None,
        dataloader_num_workers=0,
        remove_unused_columns=False,  # the datasets are record positions turned into rows on access
        disable_tqdm=True,
    )


def build_trainer(cfg: SftConfig, callbacks=()):
    from trl import SFTConfig, SFTTrainer

    processor, model, on_gpu, bf16 = load_policy(cfg, padding_side="right")
    peft_config = None
    if cfg.lora.enabled:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules),
            task_type="CAUSAL_LM",
        )
    out = Path(cfg.out)
    extra = {}
    if cfg.deepspeed:
        from cxr.train import cpu_deepspeed

        extra = cpu_deepspeed.prepare()
    args = SFTConfig(
        **trainer_args(cfg, out, on_gpu=on_gpu, bf16=bf16),
        weight_decay=cfg.weight_decay,
        max_length=None,  # None: never cut image tokens (stack.md)
        **extra,
    )
    train = as_hf_dataset(SftRecords(cfg.data, cfg.shards, stage=cfg.stage, split="train"))
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[MetricsLog(cfg.out), *callbacks],
    )
    return trainer, processor


def export(trainer, processor, out: Path) -> Path:
    """save_pretrained → RUN/export (canonical HF safetensors), atomically; rank 0 writes."""
    model = trainer.model
    final = out / "export"
    if getattr(trainer, "is_deepspeed_enabled", False):
        # ZeRO-3 partitions every weight across ranks: rank 0's module holds empty tensors. Gather the
        # full state dict (a collective: every rank calls it) and load it into a normally built model,
        # so save_pretrained writes canonical keys that from_pretrained and vLLM both load.
        state = trainer.accelerator.get_state_dict(trainer.deepspeed)
        if not trainer.is_world_process_zero():
            return final
        from transformers import AutoModelForImageTextToText
        from transformers.integrations import deepspeed as hf_ds

        unwrapped = trainer.accelerator.unwrap_model(model)
        # Build it outside ZeRO-3: with the HF DeepSpeed config registered, from_config would
        # partition it under zero.Init, a collective that the other ranks (already done) never join.
        saved = hf_ds._hf_deepspeed_config_weak_ref
        hf_ds._hf_deepspeed_config_weak_ref = None
        try:
            fresh = AutoModelForImageTextToText.from_config(unwrapped.config)
        finally:
            hf_ds._hf_deepspeed_config_weak_ref = saved
        missing, unexpected = fresh.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if "lm_head" not in k]:
            raise RuntimeError(f"ZeRO-3 export: {len(missing)} missing / {len(unexpected)} unexpected keys")
        model = fresh
    if hasattr(model, "merge_and_unload"):  # LoRA: ship merged weights
        model = model.merge_and_unload()
    if not trainer.is_world_process_zero():
        return final
    tmp = out / f".export.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def run_sft(cfg: SftConfig, callbacks=()) -> str | None:
    """Train (resuming from the latest complete checkpoint) and export; None when a callback
    stopped training early for a requeue (the checkpoint is written; the next run resumes)."""
    out = Path(cfg.out)
    with RunRecord(out, cfg, kind=f"sft-{cfg.stage}") as meta:
        trainer, processor = build_trainer(cfg, callbacks)
        resume = latest_complete_checkpoint(out)
        meta["resumed_from"] = Path(resume).name if resume else None
        result = trainer.train(resume_from_checkpoint=resume)
        meta.update(global_step=trainer.state.global_step, train_loss=float(result.training_loss))
        if any(getattr(cb, "stopped", False) for cb in callbacks):
            meta["stopped_for_requeue"] = True
            return None
        path = export(trainer, processor, out)
    return str(path)
