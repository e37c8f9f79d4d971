"""Generation throughput on the tiny model: HF one request at a time (baseline) vs HF batched vs vLLM.

On a CPU with a ~2 M-parameter model this measures per-request overheads (preprocessing, Python,
scheduling), not GPU kernels; benchmarks/gpu.py (issue 11) measures a real model on a GPU.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

N_REQUESTS = int(os.environ.get("BENCH_REQUESTS", "16"))
NEW_TOKENS = 32


def main() -> None:
    from cxr.config import DemoConfig, load_config
    from cxr.data.synthetic import synthetic_cxr
    from cxr.inference import Request, make_backend
    from cxr.model import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny(Path(tmp) / "tiny", seed=0)
        cfg = load_config(
            DemoConfig,
            overrides=[f"generate.model.path={model}", f"generate.sampling.max_new_tokens={NEW_TOKENS}"],
        ).generate
        reqs = [
            Request(synthetic_cxr(288, 320, seed=i), "Is there a pleural effusion?", id=str(i))
            for i in range(N_REQUESTS)
        ]
        variants = [
            ("hf, batch 1 (baseline)", dataclasses.replace(cfg, batch_size=1)),
            ("hf, batch 8", dataclasses.replace(cfg, batch_size=8)),
            ("vllm (in-process engine)", dataclasses.replace(cfg, backend="vllm")),
        ]
        rows, base = [], None
        for name, c in variants:
            t0 = time.perf_counter()
            with make_backend(c) as be:
                start = time.perf_counter() - t0
                be.generate(reqs[:2])  # warm-up
                t1 = time.perf_counter()
                gens = be.generate(reqs)
                dt = time.perf_counter() - t1
            tokens = sum(len(g.token_ids) for g in gens)
            base = base or dt
            rows.append(
                {
                    "variant": name,
                    "start s": start,
                    "generate s": dt,
                    "tokens/s": tokens / dt,
                    "speed-up vs baseline": base / dt,
                }
            )
    report(
        "generate",
        rows,
        f"{N_REQUESTS} requests, {NEW_TOKENS} new tokens each, greedy, "
        f"tiny Qwen2.5-VL on {os.cpu_count()} CPU cores",
    )


if __name__ == "__main__":
    main()
