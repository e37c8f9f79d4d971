"""`make demo` end to end: `cxr demo OUT` runs every stage on the embedded default (synthetic archive,
tiny model, local executor) and ends with the summary and the report; a rerun redoes nothing."""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest

from tests.analysis.test_notebooks import pngs
from tests.analysis.test_notebooks import run as run_notebook

STAGES = ["preprocess", "build_data", "sft", "coldstart", "grpo", "score", "eval"]


@pytest.mark.slow
@pytest.mark.vllm
def test_demo_runs_the_whole_pipeline_and_a_rerun_redoes_nothing(cxr_bin, tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "CXR_DEID_KEY"}  # as on a fresh machine
    env["COLUMNS"] = "200"
    r = subprocess.run(
        [cxr_bin, "demo", str(out)], capture_output=True, text=True, timeout=1800, env=env, cwd=tmp_path
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = " ".join(r.stdout.split())
    for stage in STAGES:
        assert f"{stage}: completed" in text, stage
        assert json.loads((out / "pipeline" / f"{stage}.done.json").read_text())["stage"] == stage
    assert f"report: {out / 'report' / 'index.html'}" in text
    assert (out / "report" / "review.html").is_file()
    metrics = pd.read_parquet(out / "eval" / "metrics.parquet")
    assert {"bleu_4", "format_ok_rate", "accuracy"} <= set(metrics["metric"])
    manifest = pd.read_parquet(out / "shards" / "manifest.parquet")
    assert (manifest["status"] == "rejected").any() and (
        manifest["status"] == "ok"
    ).any()  # bad files kept, named
    # no PHI outside the archive and private/ (the synthetic archive plants canaries in every identifier)
    for f in out.rglob("*"):
        rel = f.relative_to(out).parts
        if f.is_file() and rel[0] != "archive" and "private" not in rel and f.stat().st_size < 50_000_000:
            assert b"CANARY-PHI" not in f.read_bytes(), f
    # the review notebook on what the demo wrote (the other notebooks need a sweep / an arena: their tests)
    plots = run_notebook("review_scores.ipynb", tmp_path, CXR_SCORES=out / "scores", CXR_NB_IMAGES=3)
    assert pngs(plots / "review_scores") == {"scores_overview.png", "review_images.png"}
    again = subprocess.run(
        [cxr_bin, "demo", str(out)], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert " ".join(again.stdout.split()).count("done before (same config)") == len(STAGES)
