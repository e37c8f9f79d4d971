"""`cxr eval` end to end on a small synthetic score folder and references (no model): the tidy
table, slices, the summary, both joins, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from analysis.eval import evaluate
from analysis.eval.run import COLUMNS
from cxr.config import load_config
from cxr.config.schema import EvalConfig
from cxr.errors import UserError

VIEWS = ["PA", "AP", "LAT", "PA", "AP", "PA"]
REPORTS = [
    "Small left pleural effusion.",
    "Enlarged cardiac silhouette. No pneumothorax.",
    "No acute cardiopulmonary abnormality.",
    "Right lower lobe consolidation.",
    "Possible pulmonary edema.",
    "Nodule in the right upper lobe.",
]
PREDICTED = [
    "Small left pleural effusion.",
    "The heart is enlarged. No pneumothorax.",
    "No acute abnormality.",
    "No consolidation.",
    "Pulmonary edema.",
    "Normal chest.",
]
CLOSED_OK = [True, True, False, True, True, False]  # 4 / 6
BOX = [10, 10, 50, 50]


def make_inputs(root, *, with_record_ids: bool = True):
    """SHARDS/index.parquet, DATA/test.parquet and SCORES/part-00000.parquet (+ _run.json)."""
    shards, scores = root / "shards", root / "scores"
    shards.mkdir()
    scores.mkdir()
    images = [f"img{i}" for i in range(6)]
    pd.DataFrame(
        {
            "image_id": images,
            "study_id": [f"st{i}" for i in range(6)],
            "patient_id": [f"SECRET-PATIENT-{i}" for i in range(6)],
            "sex": ["F", "M", "F", "M", "F", "M"],
            "age_band": ["40-49", "40-49", "60-69", "60-69", "60-69", None],
            "view": VIEWS,
        }
    ).to_parquet(shards / "index.parquet")
    refs, rows = [], []
    for i, img in enumerate(images):
        base = {"study_id": f"st{i}", "image_id": img, "patient_id": f"SECRET-PATIENT-{i}", "split": "test"}
        truth = "yes" if i % 2 else "no"
        recs = [
            ("report", REPORTS[i], PREDICTED[i], [], []),
            ("vqa_closed", truth, truth if CLOSED_OK[i] else {"yes": "no", "no": "yes"}[truth], [], []),
            ("vqa_open", VIEWS[i], f"{VIEWS[i]} view" if i else "AP", [], []),
            # grounding: exact box for even images, a disjoint one for odd
            ("grounding", json.dumps(BOX), json.dumps(BOX if i % 2 == 0 else [60, 60, 90, 90]), [BOX], []),
        ]
        for task, answer, pred, ref_boxes, reasoning_boxes in recs:
            rid = f"{img}-{task}-0"
            boxes_json = json.dumps([{"label": "Nodule", "box": b} for b in ref_boxes])
            refs.append(
                {
                    **base,
                    "record_id": rid,
                    "task": task,
                    "question": "q",
                    "answer": answer,
                    "boxes": boxes_json,
                }
            )
            rows.append(
                {
                    "study_id": f"st{i}",
                    "image_id": img,
                    "view": VIEWS[i],
                    "shard": 0,
                    "index": i,
                    "task": task,
                    "prompt_id": f"{task}-x",
                    "raw": f"<think>look</think> \\boxed{{{pred}}}",
                    "reasoning": "look",
                    "steps": ["look"],
                    "boxes": reasoning_boxes,
                    "answer": pred,
                    "format_ok": i != 5,
                    "num_tokens": 10,
                    "finish_reason": "stop",
                    "latency_s": 0.1,
                    **({"record_id": rid} if with_record_ids else {}),
                }
            )
    data = root / "test.parquet"
    pd.DataFrame(refs).to_parquet(data)
    score_rows = pd.DataFrame(rows)
    if not with_record_ids:  # the fixed prompt set: report, view (↔ vqa_open)
        score_rows = score_rows[score_rows["task"].isin(["report", "vqa_open"])]
        score_rows["task"] = score_rows["task"].replace({"vqa_open": "view"})
    score_rows.to_parquet(scores / "part-00000.parquet")
    (scores / "_run.json").write_text(json.dumps({"hashes": {}, "config": {"shards": str(shards)}}))
    return scores, data, shards


def cfg_for(scores, data, out, *extra) -> EvalConfig:
    overrides = [f"scores={scores}", f"out={out}", "bootstrap=200", "bootstrap_corpus=20", *extra]
    return load_config(EvalConfig, overrides=overrides + ([f"references={data}"] if data else []))


def metric(table: pd.DataFrame, name: str, task: str, slice_: str = "all", value: str = "all") -> pd.Series:
    row = table[
        (table.metric == name) & (table.task == task) & (table.slice == slice_) & (table.slice_value == value)
    ]
    assert len(row) == 1, (name, task, slice_, value)
    return row.iloc[0]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    scores, data, _ = make_inputs(root)
    out = evaluate(cfg_for(scores, data, root / "out"), log=lambda s: None)
    return out, pd.read_parquet(out / "metrics.parquet")


def test_the_table_is_tidy_and_holds_every_metric_family(evaluated):
    out, table = evaluated
    assert list(table.columns) == COLUMNS
    csv = pd.read_csv(out / "metrics.csv", keep_default_na=False, na_values=[""])
    assert len(csv) == len(table) and list(csv.columns) == COLUMNS
    want = {
        "report": {
            "bleu_1",
            "bleu_4",
            "rouge_l",
            "cider",
            "meteor",
            "chexpert_rule_f1_micro_14",
            "chexpert_rule_f1_macro_5",
        },
        "vqa_closed": {"accuracy", "format_ok_rate", "boxes_per_answer"},
        "vqa_open": {"accuracy"},
        "grounding": {"iou_mean", "box_precision@0.5", "box_recall@0.5", "map", "ap50"},
    }
    for task, names in want.items():
        assert names <= set(table[table.task == task].metric), task
    assert metric(table, "accuracy", "vqa_closed").value == pytest.approx(4 / 6)
    assert metric(table, "accuracy", "vqa_open").value == pytest.approx(5 / 6)  # img0 says AP for PA
    assert metric(table, "format_ok_rate", "report").value == pytest.approx(5 / 6)
    g = {m: metric(table, m, "grounding").value for m in ("iou_mean", "box_precision@0.5", "map")}
    # COCO AP: dets TP FP TP FP TP FP (all score 1, image order), 6 references → recall 1/6 … 1/2;
    # interpolated precision 1 on recall thresholds 0–0.16 (17), 2/3 on 0.17–0.33 (17), 0.6 on 0.34–0.50 (17)
    ap = (17 * 1 + 17 * 2 / 3 + 17 * 0.6) / 101
    assert g == pytest.approx({"iou_mean": 0.5, "box_precision@0.5": 0.5, "map": ap})
    r = metric(table, "bleu_1", "report")
    assert 0 < r.value < 1 and r.ci_low <= r.value <= r.ci_high and r.n == 6
    # no identifier but the pseudonymous ones leaves the inputs
    assert "SECRET-PATIENT" not in (out / "metrics.csv").read_text() + (out / "summary.json").read_text()
    assert (out / "config.yaml").is_file() and json.loads((out / "meta.json").read_text())["status"] == "ok"


def test_slices_by_view_sex_and_age_band_partition_the_cases(evaluated):
    _, table = evaluated
    acc = table[(table.metric == "accuracy") & (table.task == "vqa_closed")]
    for slice_, values in {
        "view": {"AP", "LAT", "PA"},
        "sex": {"F", "M"},
        "age_band": {"40-49", "60-69", "unknown"},
    }.items():
        part = acc[acc.slice == slice_]
        assert set(part.slice_value) == values and part.n.sum() == 6, slice_
    # F: img0 (ok), img2 (wrong), img4 (ok)
    assert metric(table, "accuracy", "vqa_closed", "sex", "F").value == pytest.approx(2 / 3)
    assert metric(table, "accuracy", "vqa_closed", "view", "LAT").n == 1


def test_summary_has_headlines_and_says_what_was_skipped(evaluated):
    out, table = evaluated
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["joined_on"] == "record_id" and summary["joined_rows"] == 24 and summary["score_rows"] == 24
    )
    assert summary["headline"]["vqa_closed"]["accuracy"]["value"] == pytest.approx(4 / 6)
    assert summary["tokenizer"] in ("ptb", "simple")
    for name in ("radgraph_f1", "chexbert_f1"):
        assert "never downloaded" in summary["skipped"][name]


def test_fixed_prompts_join_on_image_and_task_and_no_references_gives_format_metrics(tmp_path):
    scores, data, _ = make_inputs(tmp_path, with_record_ids=False)
    out = evaluate(cfg_for(scores, data, tmp_path / "out", "slices=[view]"), log=lambda s: None)
    table = pd.read_parquet(out / "metrics.parquet")
    assert json.loads((out / "summary.json").read_text())["joined_on"] == "image_id+task"
    assert metric(table, "accuracy", "vqa_open").value == pytest.approx(5 / 6)
    assert {"report", "vqa_open", "view"} == set(table.task)  # format metrics under the prompt's own task
    assert set(table.slice) == {"all", "view"}
    bare = evaluate(cfg_for(scores, None, tmp_path / "bare", "slices=[]"), log=lambda s: None)
    table = pd.read_parquet(bare / "metrics.parquet")
    assert set(table.metric) == {"format_ok_rate", "boxes_per_answer"}
    assert "no references" in json.loads((bare / "summary.json").read_text())["skipped"]["reference metrics"]


def test_bad_input_is_a_one_line_user_error(tmp_path, cxr_bin):
    scores, data, _ = make_inputs(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        evaluate(cfg_for(tmp_path / "nope", data, tmp_path / "o"), log=lambda s: None)
    pd.DataFrame({"image_id": ["x"], "answer": ["y"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(UserError, match="lacks column"):
        evaluate(cfg_for(scores, tmp_path / "bad.parquet", tmp_path / "o"), log=lambda s: None)
    staged = tmp_path / "radgraph"
    staged.mkdir()
    with pytest.raises(UserError, match="radgraph_dir=.*no radgraph/ folder"):
        evaluate(cfg_for(scores, data, tmp_path / "o", f"radgraph_dir={staged}"), log=lambda s: None)
    other = pd.read_parquet(data).assign(record_id=lambda d: "other-" + d["record_id"], image_id="zzz")
    other.to_parquet(tmp_path / "other.parquet")
    r = subprocess.run(
        [cxr_bin, "eval", str(scores), str(tmp_path / "o"), "--references", str(tmp_path / "other.parquet")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "no score row matches a reference" in r.stderr


def test_help_explains_itself_with_an_example(cxr_bin):
    r = subprocess.run([cxr_bin, "eval", "--help"], capture_output=True, text=True, timeout=120)
    text = " ".join(r.stdout.split())
    assert r.returncode == 0 and "Example: cxr eval" in text and "--references" in text


def test_boxes_from_a_score_run_with_other_image_bounds_are_scaled_to_the_references(tmp_path):
    """A 128-px stored square is 112 px for the model at max_pixels=112*112 and 140 px at 512*512:
    a box the model states at 112 px is compared at 140/112 its size with 140-px references."""
    import numpy as np

    from analysis.eval.inputs import box_scale

    (tmp_path / "scores").mkdir()
    (tmp_path / "shards").mkdir()
    image = {"min_pixels": 56 * 56, "max_pixels": 112 * 112}
    (tmp_path / "scores" / "_run.json").write_text(json.dumps({"config": {"image": image}}))
    pd.DataFrame({"image_id": ["a", "b"], "size": [128, 128]}).to_parquet(
        tmp_path / "shards" / "index.parquet"
    )
    joined = pd.DataFrame({"image_id": ["a", "b"], "input_w": [140, 112]})
    factor, note = box_scale(joined, tmp_path / "scores", str(tmp_path / "shards"))
    assert np.allclose(factor, [140 / 112, 1.0]) and "scaled" in note
    factor, note = box_scale(joined.assign(input_w=112), tmp_path / "scores", str(tmp_path / "shards"))
    assert np.allclose(factor, 1.0) and "same model-input pixels" in note
    factor, note = box_scale(joined, tmp_path / "elsewhere", str(tmp_path / "shards"))
    assert np.allclose(factor, 1.0) and "as stated" in note
