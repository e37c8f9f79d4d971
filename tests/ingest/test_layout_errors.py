"""Bad layouts: one-line errors naming the path and what was expected; nothing is written to SHARDS."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cxr.errors import UserError
from tests.ingest.layouts import (
    chexpert_layout,
    ingest,
    ingest_cfg,
    mimic_layout,
    write_csv,
    write_dicom,
)
from tests.ingest.layouts_boxes import ms_cxr_layout, padchest_layout, vindr_layout


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    mimic_truth = mimic_layout(base / "mimic", n_patients=3)
    chexpert_layout(base / "chexpert")
    vindr_layout(base / "vindr")
    padchest_layout(base / "padchest")
    ms_cxr_layout(base / "ms-cxr", base / "mimic", mimic_truth)
    return base


def fails(dataset, root, shards, *extra) -> str:
    with pytest.raises(UserError) as e:
        ingest(ingest_cfg(dataset, root, shards, *extra), log=lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg
    assert (
        not list(shards.glob("shard-*.h5")) and not (shards / "records.parquet").exists()
    )  # no partial ingest
    return msg


def copy(layouts, name, tmp_path):
    dst = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(layouts / name, dst)
    return dst


def test_wrong_root(layouts, tmp_path, deid_key):
    msg = fails("mimic-cxr-jpg", layouts / "chexpert", tmp_path / "s")
    assert str(layouts / "chexpert") in msg and "files/pXX/pNNNNNNNN/sNNNNNNNN/" in msg
    msg = fails("chexpert", layouts / "mimic", tmp_path / "s")
    assert "train.csv: missing" in msg and "CheXpert" in msg
    assert "is not a folder" in fails("padchest", tmp_path / "nowhere", tmp_path / "s")
    assert "unknown dataset 'nih'" in fails("nih", layouts / "mimic", tmp_path / "s")


def test_missing_csv(layouts, tmp_path, deid_key):
    root = copy(layouts, "mimic", tmp_path)
    (root / "mimic-cxr-2.0.0-chexpert.csv.gz").unlink()
    msg = fails("mimic-cxr-jpg", root, tmp_path / "s")
    assert str(root / "mimic-cxr-2.0.0-chexpert.csv") in msg and "missing" in msg
    root = copy(layouts, "vindr", tmp_path)
    (root / "annotations" / "annotations_train.csv").unlink()
    assert "annotations_train.csv: missing; expected VinDr-CXR boxes" in fails(
        "vindr-cxr", root, tmp_path / "s"
    )
    assert "MS_CXR_Local_Alignment_v*.csv: missing" in fails("ms-cxr", layouts / "padchest", tmp_path / "s")


def test_missing_column(layouts, tmp_path, deid_key):
    root = copy(layouts, "vindr", tmp_path)
    csv = root / "annotations" / "annotations_train.csv"
    pd.read_csv(csv).drop(columns=["x_max"]).to_csv(csv, index=False)
    msg = fails("vindr-cxr", root, tmp_path / "s")
    assert str(csv) in msg and "no column 'x_max'" in msg
    root = copy(layouts, "chexpert", tmp_path)
    pd.read_csv(root / "valid.csv").drop(columns=["AP/PA"]).to_csv(root / "valid.csv", index=False)
    assert "valid.csv: no column 'AP/PA'" in fails("chexpert", root, tmp_path / "s")


def test_mismatched_counts(layouts, tmp_path, deid_key):
    root = copy(layouts, "vindr", tmp_path)
    write_dicom(root / "train" / "extra0000.dicom", 100, 100, seed=1)  # a file no CSV lists
    msg = fails("vindr-cxr", root, tmp_path / "s")
    assert "image_labels_train.csv: lists 3 images but" in msg and "holds 4 .dicom files" in msg
    root = copy(layouts, "mimic", tmp_path)
    victim = sorted((root / "files").rglob("*.jpg"))[0]
    victim.unlink()
    msg = fails("mimic-cxr-jpg", root, tmp_path / "s")
    assert str(victim) in msg and "1 of" in msg and "not on disk" in msg
    root = copy(layouts, "mimic", tmp_path)
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz", dtype=str)
    write_csv(
        root / "mimic-cxr-2.0.0-split.csv", split.iloc[1:].to_dict("records"), list(split.columns), gz=True
    )
    assert "(1 images have no split)" in fails("mimic-cxr-jpg", root, tmp_path / "s")


def test_split_that_leaks_a_patient(layouts, tmp_path, deid_key):
    root = copy(layouts, "mimic", tmp_path)
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz", dtype=str)
    mine = split["subject_id"] == split["subject_id"].value_counts().index[0]  # a subject with 2+ images
    split.loc[mine, "split"] = ["train"] + ["test"] * (int(mine.sum()) - 1)
    write_csv(root / "mimic-cxr-2.0.0-split.csv", split.to_dict("records"), list(split.columns), gz=True)
    assert "is in more than one split" in fails("mimic-cxr-jpg", root, tmp_path / "s")


def test_bad_values(layouts, tmp_path, deid_key):
    assert "'mimic' is not set" in fails("ms-cxr", layouts / "ms-cxr", tmp_path / "s")
    root = copy(layouts, "padchest", tmp_path)
    csv = root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    df.loc[0, "Labels"] = "pleural effusion"
    csv.unlink()
    write_csv(csv.with_suffix(""), df.to_dict("records"), list(df.columns))
    assert "is not a list like" in fails("padchest", root, tmp_path / "s")
    root = copy(layouts, "vindr", tmp_path)
    csv = root / "annotations" / "annotations_train.csv"
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    i = df.index[df["x_min"] != ""][0]
    df.loc[i, "x_max"] = "1.0"  # x2 < x1
    df.to_csv(csv, index=False)
    assert "is not [x1, y1, x2, y2]" in fails("vindr-cxr", root, tmp_path / "s")


def test_one_source_per_shards_folder(layouts, tmp_path, deid_key):
    shards = tmp_path / "s"
    shards.mkdir()
    (shards / "dataset.json").write_text('{"dataset": "chexpert"}')
    assert f"{shards} holds chexpert shards" in fails("padchest", layouts / "padchest", shards)
    (shards / "dataset.json").unlink()
    (shards / "plan.parquet").write_text("")
    assert "holds `cxr preprocess` shards" in fails("padchest", layouts / "padchest", shards)
