"""Fixture folders for the tables, report and notebook tests (conftest.py imports them): a real toy sweep,
a real small score folder (tiny model), and synthetic eval/arena folders written in the formats `cxr eval` /
`cxr arena` promise (so these tests do not depend on those commands). The score rows get a few planted
boxes: the random tiny model states none."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, small_shards

CANARY = "CANARY-PHI-7f3a"
FINDINGS = ["Atelectasis", "Cardiomegaly", "Edema", "Pleural Effusion"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="session")
def toy_sweep(tmp_path_factory):
    """12 toy runs (4 learning rates × 3 seeds), launched and collected by the real `cxr sweep`."""
    out = tmp_path_factory.mktemp("sweep") / "toy"
    spec = os.path.join(REPO, "configs", "sweeps", "toy-lr.yaml")
    for args in (["launch", spec, f"out={out}"], ["collect", str(out)]):
        r = subprocess.run(
            [sys.executable, "-m", "cli.main", "sweep", *args], env=env(), capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def report_shards(tmp_path_factory, deid_key):
    """6 studies of real preprocessed shards; a canary planted where PHI lives (index ids, private/)."""
    root = small_shards(tmp_path_factory.mktemp("tables"), seed=3, studies=6, extra=("studies_per_shard=4",))
    index = pd.read_parquet(root / "index.parquet")
    index["patient_id"] = CANARY + "-patient"
    index["accession_id"] = CANARY + "-accession"
    index.to_parquet(root / "index.parquet", index=False)
    (root / "private" / "canary.txt").write_text(CANARY)
    return root


@pytest.fixture(scope="session")
def scores(tmp_path_factory, report_shards, tiny_model):
    """A real `cxr score` folder (tiny model, 2 tasks); then one predicted box per `findings` row."""
    from cxr.config import load_config
    from cxr.config.schema import ScoreConfig
    from jobs.score import score

    out = tmp_path_factory.mktemp("scores") / "scores"
    cfg = load_config(
        ScoreConfig,
        overrides=[
            f"shards={report_shards}",
            f"model.path={tiny_model}",
            f"out={out}",
            "backend=hf",
            "tasks=[report,findings]",
            "sampling.temperature=0",
            "sampling.max_new_tokens=16",
            "image.max_pixels=12544",
            "batch_size=16",
        ],
    )
    score(cfg, log=lambda s: None)
    index = pd.read_parquet(report_shards / "index.parquet").set_index("image_id")
    for part in sorted(out.glob("part-*.parquet")):
        df = pd.read_parquet(part)
        full = [
            [[0, 0, int(index.at[i, "orig_w"]), int(index.at[i, "orig_h"])]] if t == "findings" else []
            for i, t in zip(df["image_id"], df["task"], strict=True)
        ]
        df["boxes_original"] = full  # the whole original image: drawn, it must frame the stored content
        df.to_parquet(part, index=False)
    return out


@pytest.fixture(scope="session")
def references(tmp_path_factory, report_shards, scores):
    """A `build-data`-style split: boxes JSON in model-input pixels with input_w/input_h."""
    s = pd.read_parquet(scores)
    ids = sorted(s["image_id"].unique())
    rows = [
        {
            "image_id": i,
            "patient_id": CANARY,  # build-data splits carry it; a report must not show it
            "boxes": json.dumps([{"label": "Cardiomegaly", "box": [10, 20, 60, 80]}]),
            "input_w": 112,
            "input_h": 112,
        }
        for i in ids
    ]
    path = tmp_path_factory.mktemp("refs") / "test.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def eval_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "eval"
    out.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    metrics = [("bleu_4", "report"), ("rouge_l", "report"), ("chexpert_rule.f1.micro", "report")]
    metrics += [(f"chexpert_rule.f1.{f}", "report") for f in FINDINGS] + [("vqa.accuracy", "vqa_closed")]
    for metric, task in metrics:
        for sl, sv in [("all", "all"), ("view", "PA"), ("view", "AP"), ("sex", "F")]:
            v = float(rng.uniform(0.2, 0.8))
            rows.append(
                {
                    "metric": metric,
                    "task": task,
                    "slice": sl,
                    "slice_value": sv,
                    "value": v,
                    "ci_low": v - 0.1,
                    "ci_high": v + 0.1,
                    "n": 20,
                }
            )
    pd.DataFrame(rows).to_parquet(out / "metrics.parquet", index=False)
    (out / "summary.json").write_text(json.dumps({"scores": "x", "n_images": 20, "bleu_4": rows[0]["value"]}))
    (out / "config.yaml").write_text("scores: x\n")
    return out


@pytest.fixture(scope="session")
def arena_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("arena") / "arena"
    out.mkdir()
    models = ["sft", "grpo", "tiny"]
    pd.DataFrame(
        {
            "model": models,
            "strength": [0.0, 0.8, -0.5],
            "ci_low": [-0.2, 0.5, -0.9],
            "ci_high": [0.2, 1.1, -0.1],
            "wins": [5, 9, 2],
            "ties": [2, 1, 1],
            "losses": [5, 2, 9],
            "n": [12, 12, 12],
        }
    ).to_parquet(out / "ratings.parquet", index=False)
    wr = pd.DataFrame(
        [[np.nan, 0.3, 0.7], [0.7, np.nan, 0.9], [0.3, 0.1, np.nan]], columns=models, index=models
    )
    wr.index.name = "model"  # as `cxr arena` writes it: row model against column model
    wr.to_parquet(out / "winrate.parquet")
    pd.DataFrame(
        {"model_a": ["sft"], "model_b": ["grpo"], "image_id": ["i0"], "winner": ["b"], "order": ["ab"]}
    ).to_parquet(out / "judgments.parquet", index=False)
    (out / "summary.json").write_text(json.dumps({"judge": "tiny", "pairs": 3}))
    return out


def copy_of(folder, dest):
    shutil.copytree(folder, dest)
    return dest
