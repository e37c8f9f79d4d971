"""Instruction records and cold-start samples built from the session's shards (issue 5, parts 1 and 2a)."""

from __future__ import annotations

import json
import re

import h5py
import hdf5plugin  # noqa: F401
import pandas as pd
import pytest

from cxr.config import load_config
from cxr.config.schema import BuildDataConfig
from cxr.data.build import build_dataset
from cxr.data.instructions import SPLITS, split_of
from cxr.errors import UserError
from cxr.format import parse_output


@pytest.fixture(scope="module")
def built(shards, tmp_path_factory):
    out_dir, _ = shards
    out = tmp_path_factory.mktemp("data")
    cfg = load_config(BuildDataConfig, overrides=[f"shards={out_dir}", f"out={out}", "split=[0.5,0.25,0.25]"])
    build_dataset(cfg)
    recs = pd.concat([pd.read_parquet(out / f"{s}.parquet") for s in SPLITS], ignore_index=True)
    cold = pd.concat([pd.read_parquet(out / f"coldstart-{s}.parquet") for s in SPLITS], ignore_index=True)
    return out_dir, out, recs, cold


def test_no_patient_in_two_splits_and_fractions_hold():
    ids = [f"p{i}" for i in range(4000)]
    splits = [split_of(i, [0.8, 0.1, 0.1], seed=0) for i in ids]
    assert abs(splits.count("train") / 4000 - 0.8) < 0.03 and abs(splits.count("test") / 4000 - 0.1) < 0.02
    assert splits == [split_of(i, [0.8, 0.1, 0.1], seed=0) for i in ids]  # deterministic


def test_records_split_by_patient_and_point_at_real_images(built):
    shards_dir, _, recs, _ = built
    assert recs.groupby("patient_id")["split"].nunique().max() == 1
    assert set(recs["split"]) <= set(SPLITS)
    for shard, group in recs.groupby("shard"):
        with h5py.File(shards_dir / f"shard-{shard:05d}.h5", "r") as f:
            assert group["index"].max() < f["images"].shape[0]
    index = pd.read_parquet(shards_dir / "index.parquet")
    assert set(recs["image_id"]) <= set(index["image_id"])
    assert "pixels" not in " ".join(recs.columns)


def test_answers_follow_the_labels(built):
    _, _, recs, _ = built
    assert {"report", "vqa_closed", "vqa_choice", "vqa_open", "findings", "grounding"} <= set(recs["task"])
    for r in recs.itertuples():
        labels = list(r.labels)
        if r.task == "vqa_closed":
            finding = re.match(r"Is there (.+) in this chest X-ray\?", r.question).group(1)
            assert r.answer == ("yes" if finding in labels else "no")
        elif r.task == "findings":
            assert r.answer == ("|".join(sorted(labels)) if labels else "none")
        elif r.task == "grounding":
            (b,) = json.loads(r.boxes)
            assert json.loads(r.answer) == b["box"] and b["label"] in labels


def test_boxes_are_in_model_input_pixels(built, archive):
    _, _, recs, _ = built
    grounding = recs[recs["task"] == "grounding"]
    assert len(grounding) > 0
    for r in grounding.itertuples():
        x1, y1, x2, y2 = json.loads(r.answer)
        assert 0 <= x1 < x2 <= r.input_w and 0 <= y1 < y2 <= r.input_h <= 512
        assert r.input_w % 28 == 0


def test_coldstart_samples_are_well_formed_and_answer_the_record(built):
    _, _, recs, cold = built
    assert len(cold) == len(recs)
    for c in cold.itertuples():
        p = parse_output(c.completion)
        assert p.format_ok and p.answer == c.answer.strip()
        assert p.boxes and all(max(b) <= 512 for b in p.boxes)  # what the seed's coordinate reward checks
        for b in json.loads(c.boxes):
            assert b["box"] in p.boxes  # every annotated box is cited


def test_building_is_deterministic(built, tmp_path):
    shards_dir, out, recs, _ = built
    cfg = load_config(
        BuildDataConfig, overrides=[f"shards={shards_dir}", f"out={tmp_path}", "split=[0.5,0.25,0.25]"]
    )
    build_dataset(cfg)
    for name in [f"{s}.parquet" for s in SPLITS] + [f"coldstart-{s}.parquet" for s in SPLITS]:
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(tmp_path / name))


def test_shards_without_records_are_refused(tmp_path):
    (tmp_path / "s").mkdir()
    pd.DataFrame({"image_id": []}).to_parquet(tmp_path / "s" / "index.parquet")
    cfg = load_config(BuildDataConfig, overrides=[f"shards={tmp_path / 's'}", f"out={tmp_path / 'o'}"])
    with pytest.raises(UserError, match="no records.parquet"):
        build_dataset(cfg)


def test_boxes_go_only_to_the_image_they_were_drawn_on(built):
    """The RIS names the image its boxes are in (a PA's boxes do not fit the lateral)."""
    out_dir, _, recs, _ = built
    on = pd.read_parquet(out_dir / "index.parquet").merge(
        pd.read_parquet(out_dir / "records.parquet"), on="accession_id"
    )
    drawn = on[on["boxes"] != "[]"]
    targets = {b["image_id"] for bs in drawn["boxes"] for b in json.loads(bs)}
    assert targets and all("image_id" in b for bs in drawn["boxes"] for b in json.loads(bs))
    with_boxes = set(recs.loc[recs["boxes"] != "[]", "image_id"])
    assert with_boxes and with_boxes <= targets
    others = set(drawn["image_id"]) - targets  # the other images of studies with boxes
    assert others, "the test archive should have a two-image study with boxes"
    assert not others & with_boxes
