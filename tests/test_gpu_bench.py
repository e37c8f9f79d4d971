"""benchmarks/gpu.py --tiny: the GPU harness's code paths on CPU, so the script never rots between
the rare runs on a real card. Checks the figures exist (or carry a reason), never their values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.vllm
def test_gpu_benchmark_tiny_mode_runs_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["device"]["device"] == "cpu" and res["device"]["torch"]
    for which in ("sft-ours", "sft-bare"):
        s = res[which]
        assert "skipped" not in s, s
        assert s["zero3"] and s["step_s"] > 0 and s["tokens_per_s"] > 0 and s["params_vision"] > 0
        assert s["mfu"] is None and "no bf16 peak" in s["mfu_skipped"]  # a reason, never a zero
    gen = res["generate"]
    for backend in ("hf", "vllm"):
        assert gen[backend]["images_per_s"] > 0 and gen[backend]["tokens"] > 0, gen
    assert 0 < gen["hf"]["image_preprocess_share"] < 1
    assert set(res["reads"]) == {"workers_0", "workers_2"} and all(v > 0 for v in res["reads"].values())
    assert "SFT overhead" in r.stdout and "shard reads" in r.stdout
