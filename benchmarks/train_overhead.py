"""Step time of `cxr train sft` (shard-backed records, our trainer setup) vs a bare TRL SFTTrainer on
the same model and the same examples held in memory, measured in the same run (issue 5; goal ≤ 3 %).

Median interval between step ends over steps 6..N (data fetch included; the first steps warm up).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

STEPS = int(os.environ.get("BENCH_STEPS", "30"))
MAX_PIXELS = 224 * 224


def main() -> None:
    os.environ.setdefault("CXR_DEID_KEY", "benchmark-key-0123456789")
    warnings.simplefilter("ignore")
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from cxr.config import load_config
    from cxr.config.schema import BuildDataConfig, PreprocessConfig, SftConfig
    from cxr.data.build import build_dataset
    from cxr.model import build_tiny, load_model, load_processor
    from cxr.train.records import SftRecords, as_hf_dataset
    from cxr.train.sft import build_trainer
    from jobs.preprocess import preprocess
    from preprocessing.synth import SynthSpec, synth_archive

    class StepTimes(TrainerCallback):
        """Intervals between step ends: forward, backward, optimizer *and* fetching the batch."""

        def __init__(self):
            self.last, self.times = None, []

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            if self.last is not None:
                self.times.append(now - self.last)
            self.last = now

    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    model_dir = build_tiny(tmp / "tiny", seed=0)
    synth_archive(tmp / "a", SynthSpec(studies=20, seed=1, min_size=300, max_size=400, bad_share=0))
    preprocess(
        load_config(
            PreprocessConfig,
            overrides=[
                f"archive={tmp / 'a' / 'dicom'}",
                f"shards={tmp / 's'}",
                f"ris={tmp / 'a' / 'ris' / 'ris.csv'}",
            ],
        ),
        log=lambda s: None,
    )
    build_dataset(
        load_config(
            BuildDataConfig,
            overrides=[f"shards={tmp / 's'}", f"out={tmp / 'd'}", f"image.max_pixels={MAX_PIXELS}"],
        )
    )
    common = [
        "batch_size=4",
        "lr=1e-4",
        f"max_steps={STEPS}",
        "save_steps=100000",
        "logging_steps=1000",
        "report_to=[]",
        f"image.max_pixels={MAX_PIXELS}",
        f"model.path={model_dir}",
    ]

    def ours() -> list[float]:
        cfg = load_config(
            SftConfig, overrides=[f"data={tmp / 'd'}", f"shards={tmp / 's'}", f"out={tmp / 'ours'}", *common]
        )
        cb = StepTimes()
        trainer, _ = build_trainer(cfg, [cb])
        trainer.train()
        return cb.times

    def bare() -> list[float]:
        recs = SftRecords(tmp / "d", tmp / "s", stage="instruction", split="train")
        ds = as_hf_dataset(recs)  # the same data path: only the harness around TRL differs
        proc = load_processor(model_dir, max_pixels=MAX_PIXELS, padding_side="right")
        args = SFTConfig(
            output_dir=str(tmp / "bare"),
            max_steps=STEPS,
            per_device_train_batch_size=4,
            learning_rate=1e-4,
            use_cpu=True,
            bf16=False,
            max_length=None,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            disable_tqdm=True,
            gradient_checkpointing=False,  # TRL's default is True; the harness's default is False
            remove_unused_columns=False,
            seed=0,
            data_seed=0,
            warmup_steps=0.03,
        )
        model = load_model(model_dir)
        for p in model.model.visual.parameters():  # same trainable set as ours (freeze_vision default)
            p.requires_grad_(False)
        cb = StepTimes()
        SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=proc, callbacks=[cb]).train()
        return cb.times

    runs = {"bare": [], "ours": []}
    for order in (("bare", "ours"), ("ours", "bare")):  # interleaved both ways: drift and order cancel out
        for name in order:
            runs[name].append(statistics.median((bare if name == "bare" else ours)()[5:]))
    b, o = min(runs["bare"]), min(runs["ours"])
    report(
        "train_overhead",
        [
            {
                "case": f"SFT step, tiny model, batch 4, {STEPS} steps (median of steps 6+)",
                "bare TRL s/step": b,
                "cxr train sft s/step": o,
                "overhead": o / b - 1,
                "goal": "<= 0.03",
            }
        ],
        f"best of 2 runs each, interleaved in both orders, {os.cpu_count()} cores",
    )


if __name__ == "__main__":
    main()
