"""`cxr score records=…` asks build-data records their own questions (each record once, rows carry
record_id), and `cxr eval` scores those rows against the same records: the real path, tiny model."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from cxr.config import load_config
from cxr.config.schema import BuildDataConfig, ScoreConfig
from cxr.data.build import build_dataset
from cxr.format import grounded_prompt
from jobs.score import score, status
from tests.conftest import small_shards

MAX_PIXELS = 112 * 112


@pytest.fixture(scope="module")
def scored(tmp_path_factory, deid_key, tiny_model):
    root = tmp_path_factory.mktemp("eval-records")
    shards = small_shards(
        root,
        seed=11,
        studies=12,
        extra=(f"ris={root / 'archive' / 'ris' / 'ris.csv'}", "studies_per_shard=8"),
    )
    overrides = [f"shards={shards}", f"out={root / 'data'}", f"image.max_pixels={MAX_PIXELS}"]
    build_dataset(load_config(BuildDataConfig, overrides=overrides))
    # a few records of every task, from every split (the mechanics, not a benchmark)
    records = pd.concat([pd.read_parquet(p) for p in sorted((root / "data").glob("[tv]*.parquet"))])
    records = records.groupby("task", sort=True).head(5).reset_index(drop=True)
    records.to_parquet(root / "records.parquet")
    cfg = load_config(
        ScoreConfig,
        overrides=[
            f"shards={shards}",
            f"model.path={tiny_model}",
            f"out={root / 'scores'}",
            f"records={root / 'records.parquet'}",
            "backend=hf",
            "sampling.temperature=0",
            "sampling.max_new_tokens=16",
            f"image.max_pixels={MAX_PIXELS}",
            "batch_size=16",
        ],
    )
    out = score(cfg, log=lambda s: None)
    return root, cfg, out, records


def test_each_record_is_asked_its_own_question_once(scored):
    root, cfg, out, records = scored
    df = pd.read_parquet(out)
    assert len(df) == len(records) and not df["record_id"].duplicated().any()
    assert set(df["task"]) == {"report", "vqa_closed", "vqa_choice", "vqa_open", "findings", "grounding"}
    want = records.set_index("record_id")
    got = df.set_index("record_id").loc[want.index]
    assert (got["task"] == want["task"]).all() and (got["image_id"] == want["image_id"]).all()
    assert "patient_id" not in df.columns
    # the prompt id names the question asked: one per distinct question
    assert got.groupby("prompt_id")["task"].nunique().eq(1).all()
    assert df["prompt_id"].nunique() == records["question"].map(grounded_prompt).nunique()
    parts = sorted(want["shard"].unique())
    assert sorted(int(p.stem.split("-")[1]) for p in out.glob("part-*.parquet")) == parts
    assert status(out)["parts"] == len(parts) == status(out)["done"]
    marks = {p.name: p.read_text() for p in (out / "_done").glob("*.json")}
    score(cfg, log=lambda s: None)  # a rerun adds nothing
    assert {p.name: p.read_text() for p in (out / "_done").glob("*.json")} == marks
    assert len(pd.read_parquet(out)) == len(records)


def test_cxr_eval_scores_the_records_rows(scored, cxr_bin):
    root, _, out, records = scored
    r = subprocess.run(
        [
            cxr_bin,
            "eval",
            str(out),
            str(root / "eval"),
            "--references",
            str(root / "records.parquet"),
            "bootstrap=50",
            "bootstrap_corpus=5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((root / "eval" / "summary.json").read_text())
    assert summary["joined_on"] == "record_id" and summary["joined_rows"] == len(records)
    assert "same model-input pixels" in summary["boxes"]  # score and build-data used one image bound
    table = pd.read_parquet(root / "eval" / "metrics.parquet")
    per_task = table[table.slice == "all"].groupby("task")["metric"].apply(set)
    assert {"bleu_4", "cider", "chexpert_rule_f1_micro_14"} <= per_task["report"]
    assert {"accuracy"} <= per_task["vqa_closed"] & per_task["vqa_choice"] & per_task["vqa_open"]
    assert {"map", "iou_mean"} <= per_task["grounding"]
    assert {"view", "sex", "age_band"} <= set(table.slice)  # the score run's shards give the slices
    assert table["value"].notna().any() and "chexpert_rule_f1_micro_14" in r.stdout


def test_records_mode_failures_are_keyed_by_record_and_retried_up_to_the_cap(scored, tmp_path):
    """A record whose image cannot be read is a failure row with its record_id; the image's other
    records fail with it, each once; a rerun retries exactly those records."""
    from dataclasses import replace

    from cxr.score.run import load_records
    from tests.score.test_score import _corrupt_one_image

    root, cfg, _, records = scored
    bad, image_id = _corrupt_one_image(root / "shards", tmp_path)
    # only the corrupted image's shard (1) and one more keep the test short
    located = load_records(root / "records.parquet", bad)
    records = records[records["record_id"].isin(located[located["shard"] <= 1]["record_id"])]
    records.to_parquet(tmp_path / "records.parquet")
    c = replace(
        cfg,
        shards=str(bad),
        out=str(tmp_path / "s"),
        max_attempts=2,
        records=str(tmp_path / "records.parquet"),
    )
    out = score(c, log=lambda s: None)
    hit = records[records["image_id"] == image_id]
    assert len(hit), "the corrupted image must have records (seed 11 draws some)"
    fails = pd.read_parquet(out / "_failures.parquet")
    assert sorted(fails["record_id"]) == sorted(hit["record_id"]) and (fails["attempts"] == 1).all()
    assert len(pd.read_parquet(out)) == len(records) - len(hit)
    score(c, log=lambda s: None)
    fails = pd.read_parquet(out / "_failures.parquet")
    assert sorted(fails["record_id"]) == sorted(hit["record_id"]) and (fails["attempts"] == 2).all()
    assert not pd.read_parquet(out)["record_id"].duplicated().any()


def test_bad_records_are_one_line_user_errors(scored, tmp_path):
    from cxr.errors import UserError
    from cxr.score.run import load_records

    root, _, _, records = scored
    with pytest.raises(UserError, match="does not exist"):
        load_records(tmp_path / "nope.parquet", root / "shards")
    records.drop(columns=["question"]).to_parquet(tmp_path / "q.parquet")
    with pytest.raises(UserError, match="lacks column.*question"):
        load_records(tmp_path / "q.parquet", root / "shards")
    records.assign(image_id="elsewhere").to_parquet(tmp_path / "x.parquet")
    with pytest.raises(UserError, match="none of its images"):
        load_records(tmp_path / "x.parquet", root / "shards")
