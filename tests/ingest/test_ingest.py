"""cxr ingest on small fixtures in each dataset's published layout: ingest → shards → instruction records."""

from __future__ import annotations

import json
import stat

import pandas as pd
import pytest

from cxr.data.instructions import build_records
from cxr.errors import UserError
from cxr.format import ResizeRecord, smart_resize_record
from tests.ingest.layouts import (
    CANARY,
    chexpert_layout,
    ingest,
    ingest_cfg,
    leaks,
    mimic_layout,
)
from tests.ingest.layouts_boxes import ms_cxr_layout, padchest_layout, vindr_layout

TASKS = ["report", "vqa_closed", "vqa_choice", "vqa_open", "findings", "grounding"]
PIX = {"min_pixels": 3136, "max_pixels": 512 * 512}


def run(dataset, root, shards, *extra):
    manifest = ingest(ingest_cfg(dataset, root, shards, *extra), log=lambda s: None)
    index = pd.read_parquet(shards / "index.parquet")
    records = pd.read_parquet(shards / "records.parquet")
    recs = build_records(index, records, tasks=TASKS, fractions=[0.6, 0.2, 0.2], seed=0, **PIX)
    return manifest, index, records, recs


def no_patient_in_two_splits(recs: pd.DataFrame) -> None:
    assert (recs.groupby("patient_id")["split"].nunique() == 1).all()


def check_contract(shards, manifest, index, ids) -> None:
    assert (shards / "shard-00000.h5").is_file()
    assert stat.S_IMODE((shards / "private").stat().st_mode) == 0o700
    assert set(manifest["status"]) <= {"ok", "rejected", "skipped"}
    assert len(index) == (manifest["status"] == "ok").sum()
    assert leaks(shards, [CANARY, str(shards.parent.name), *ids]) == []
    private = pd.read_parquet(shards / "private" / "ids.parquet")  # the only way back
    assert set(ids) <= set(private["patient"]) | set(private["study"]) | set(private["image"])


def to_original(box, shard_rec, input_rec) -> list[float]:
    """The exact inverse of original → letterbox → model input (no rounding)."""
    sx, sy = shard_rec.scale_x * input_rec.scale_x, shard_rec.scale_y * input_rec.scale_y
    ox = shard_rec.pad_left * input_rec.scale_x + input_rec.pad_left
    oy = shard_rec.pad_top * input_rec.scale_y + input_rec.pad_top
    return [(box[0] - ox) / sx, (box[1] - oy) / sy, (box[2] - ox) / sx, (box[3] - oy) / sy]


def roundtrip(recs, index, truth_boxes, *, key) -> int:
    """Grounding boxes (model-input pixels) mapped back to the original are within one pixel."""
    n = 0
    rows = index.set_index("image_id")
    for r in recs[recs["task"] == "grounding"].itertuples():
        row = rows.loc[r.image_id]
        shard_rec = ResizeRecord.from_row(row)
        input_rec = smart_resize_record(int(row["size"]), int(row["size"]), **PIX)
        (b,) = json.loads(r.boxes)
        back = to_original(b["box"], shard_rec, input_rec)
        want = truth_boxes[(r.image_id, b.get("reader"), b["label"])]
        assert max(abs(x - y) for x, y in zip(back, want, strict=True)) <= 1, (back, want)
        n += 1
    return n


@pytest.fixture(scope="module")
def mimic(canary_root, deid_key):
    root = canary_root / "mimic-cxr-jpg"
    truth = mimic_layout(root)
    shards = canary_root.parent / "mimic-shards"
    return root, truth, shards, *run("mimic-cxr-jpg", root, shards, f"reports={root}")


def test_mimic_jpg(mimic):
    root, truth, shards, manifest, index, records, recs = mimic
    assert (manifest["status"] == "ok").sum() == len(truth["images"])
    check_contract(shards, manifest, index, truth["ids"])
    assert set(index["view"]) == {"PA", "LAT"} and set(index["decode_path"]) == {"jpg"}
    assert index["study_id"].nunique() == 9 and index["patient_id"].nunique() == 6
    # report sections, CheXpert labels (1.0 only; uncertain and No Finding dropped)
    assert set(records["findings"]) == {"There is a small left pleural effusion. The heart size is normal."}
    assert set(records["impression"]) == {"Small left pleural effusion."}
    assert {tuple(x) for x in records["labels"]} == {("Pleural Effusion",), ()}
    # the official split, mapped to train/val/test, decides build-data's split
    assert set(recs["split"]) == {"train", "val", "test"}
    no_patient_in_two_splits(recs)
    assert set(recs["task"]) == {"report", "vqa_closed", "vqa_choice", "vqa_open", "findings"}


def test_mimic_dicom(canary_root, deid_key):
    root = canary_root / "mimic-cxr"
    truth = mimic_layout(root, dicom=True, n_patients=3)
    shards = canary_root.parent / "mimic-dicom-shards"
    jpg = canary_root / "mimic-cxr-jpg-csvs"  # the labels, views and split come from the JPG release
    jpg.mkdir()
    for f in root.glob("mimic-cxr-2.0.0-*.csv.gz"):
        f.rename(jpg / f.name)
    manifest, index, records, recs = run("mimic-cxr", root, shards, f"mimic={jpg}")
    assert set(index["view"]) == {"PA", "LAT"} and set(recs["split"]) == {"train", "val"}
    assert {tuple(x) for x in records["labels"]} == {("Pleural Effusion",), ()}
    assert (manifest["status"] == "ok").sum() == len(truth["images"])
    assert set(index["decode_path"]) == {"native"}  # through the DICOM decode of `cxr preprocess`
    check_contract(shards, manifest, index, truth["ids"])
    assert (recs[recs["task"] == "report"]["answer"] != "").all() and (recs["task"] == "report").sum() == len(
        index
    )
    no_patient_in_two_splits(recs)


def test_mimic_and_jpg_share_pseudonyms(mimic, canary_root):
    index = mimic[4]
    dicom = pd.read_parquet(canary_root.parent / "mimic-dicom-shards" / "index.parquet")
    assert set(dicom["patient_id"]) <= set(index["patient_id"])


def test_chexpert(canary_root, deid_key):
    root = canary_root / "CheXpert-v1.0-small"
    truth = chexpert_layout(root)
    shards = canary_root.parent / "chexpert-shards"
    manifest, index, records, recs = run("chexpert", root, shards)
    assert (manifest["status"] == "ok").sum() == len(truth["images"])
    check_contract(
        shards, manifest, index, ["patient00001/study1", "train/patient00001/study1/view1_frontal.jpg"]
    )
    assert set(index["sex"]) == {"F", "M"} and index["age_band"].notna().all()
    assert set(index["view"]) == {"PA", "LAT"}
    assert {tuple(x) for x in records["labels"]} == {("Edema", "Support Devices"), ("Support Devices",)}
    want = {r.image_id: r.split for r in recs.itertuples()}
    assert set(want.values()) == {"train", "val"}  # train.csv / valid.csv
    no_patient_in_two_splits(recs)


@pytest.fixture(scope="module")
def vindr(canary_root, deid_key):
    root = canary_root / "vindr-cxr" / "1.0.0"
    truth = vindr_layout(root)
    return root, truth


def _truth_by_pseudonym(shards, boxes):
    ids = pd.read_parquet(shards / "private" / "ids.parquet").set_index("image")["image_id"]
    return {(ids[img], reader, label): box for img, bs in boxes.items() for label, box, reader in bs}


def test_vindr_readers(vindr, canary_root):
    root, truth = vindr
    shards = canary_root.parent / "vindr-shards"
    manifest, index, records, recs = run("vindr-cxr", root, shards)
    assert (manifest["status"] == "ok").sum() == 5
    check_contract(shards, manifest, index, truth["ids"])
    # every reader's box is kept with its reader id, in original pixels, [x1, y1, x2, y2]
    kept = [b for bs in records["boxes"] for b in json.loads(bs)]
    assert {b["reader"] for b in kept} == {"R8", "R9", "R10", "consensus"}
    assert len(kept) == sum(len(v) for v in truth["boxes"].values())
    assert roundtrip(recs, index, _truth_by_pseudonym(shards, truth["boxes"]), key="reader") == len(kept)
    # labels: marked by >= 2 of 3 readers (the nodule by one reader is not a label); test set: consensus
    assert {tuple(x) for x in records["labels"]} == {(), ("Cardiomegaly",), ("Cardiomegaly", "Nodule/Mass")}
    assert set(recs["split"]) == {"train", "test"}
    assert (
        set(index["view"]) == {"PA"}
        and set(index["sex"]) == {"F", "M"}
        and set(index["age_band"]) >= {"45-49"}
    )


def test_vindr_consensus(vindr, canary_root):
    root, truth = vindr
    shards = canary_root.parent / "vindr-consensus"
    manifest, index, records, recs = run("vindr-cxr", root, shards, "boxes=consensus")
    per_image = {a: json.loads(b) for a, b in zip(records["accession_id"], records["boxes"], strict=True)}
    counts = sorted(len(b) for b in per_image.values())
    assert counts == [
        0,
        0,
        1,
        1,
        2,
    ]  # train: one merged cardiomegaly, the lone nodule dropped; test: as given
    merged = [b for bs in per_image.values() for b in bs if b.get("readers") == 3]
    assert len(merged) == 2 and all(b["reader"] == "consensus" for b in merged)
    ids = pd.read_parquet(shards / "private" / "ids.parquet").set_index("image")["image_id"]
    want = {}
    for img, bs in truth["boxes"].items():
        card = [b for label, b, _ in bs if label == "Cardiomegaly"]
        want[(ids[img], "consensus", "Cardiomegaly")] = [
            sum(c[i] for c in card) / len(card) for i in range(4)
        ]
        for label, b, reader in bs:
            if reader == "consensus":
                want[(ids[img], "consensus", label)] = b
    assert roundtrip(recs, index, want, key="reader") == 4


def test_ms_cxr(mimic, canary_root, deid_key):
    mimic_root, mimic_truth = mimic[0], mimic[1]
    root = canary_root / "ms-cxr"
    truth = ms_cxr_layout(root, mimic_root, mimic_truth)
    shards = canary_root.parent / "ms-cxr-shards"
    manifest, index, records, recs = run("ms-cxr", root, shards, f"mimic={mimic_root}")
    assert len(index) == 3
    check_contract(shards, manifest, index, list(truth))
    ground = recs[recs["task"] == "grounding"]
    assert len(ground) == 3 and ground["question"].str.contains("left lower lobe opacity").all()
    # the pseudonyms are MIMIC's: the same images as in the MIMIC-CXR-JPG shards
    assert set(index["image_id"]) <= set(mimic[4]["image_id"])
    ids = pd.read_parquet(shards / "private" / "ids.parquet").set_index("image")["image_id"]
    want = {(ids[d], "ms-cxr", "Pneumonia"): b for d, b in truth.items()}
    assert roundtrip(recs, index, want, key="reader") == 3  # incl. the box declared at twice the size
    no_patient_in_two_splits(recs)


def test_padchest(canary_root, deid_key):
    root = canary_root / "padchest"
    truth = padchest_layout(root)
    shards = canary_root.parent / "padchest-shards"
    manifest, index, records, recs = run("padchest", root, shards)
    assert set(index["decode_path"]) == {"png16"}
    skipped = manifest[manifest["status"] == "skipped"]
    assert len(skipped) == 1 and "OTHER" in skipped["reason"].iloc[0]  # the COSTAL projection
    check_contract(shards, manifest, index, truth["ids"])
    assert set(index["view"]) == {"PA", "AP", "LAT"}
    assert {tuple(x) for x in records["labels"]} == {(), ("cardiomegaly", "pleural effusion")}
    no_patient_in_two_splits(recs)  # no official split: by patient pseudonym


def test_chexpert_plus_reports_and_rerun(canary_root, deid_key):
    from tests.ingest.layouts import write_csv

    root = canary_root / "CheXpert-plus"
    truth = chexpert_layout(root)
    plus = [
        {
            "path_to_image": rel,
            "section_findings": "Heart size normal.\n",
            "section_impression": "No acute process.",
        }
        for rel in truth["images"]
    ]
    write_csv(
        root / "df_chexpert_plus_240401.csv",
        plus,
        ["path_to_image", "section_findings", "section_impression"],
    )
    shards = canary_root.parent / "chexpert-plus-shards"
    _, index, records, recs = run("chexpert", root, shards)
    assert set(records["findings"]) == {"Heart size normal."}
    assert (recs["task"] == "report").sum() == len(index)
    # a rerun skips the finished shards and gives the same tables
    again = run("chexpert", root, shards)
    pd.testing.assert_frame_equal(again[1], index)
    pd.testing.assert_frame_equal(again[2], records)
    # and a rerun with another size is refused before any work
    with pytest.raises(UserError, match=r"size=\d+ \(this run: 96\)"):
        run("chexpert", root, shards, "size=96")
