"""`cxr ingest` end to end through the console script, and build-data's use of an official split."""

from __future__ import annotations

import os
import subprocess

import pandas as pd

from cxr.data.instructions import build_records
from tests.ingest.layouts import CANARY, leaks
from tests.ingest.layouts_boxes import padchest_layout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(cxr_bin, *args):
    env = {**os.environ, "PYTHONPATH": REPO, "CXR_DEID_KEY": "test-site-key-0123456789"}
    return subprocess.run([cxr_bin, *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_ingest_then_build_data(cxr_bin, canary_root, tmp_path):
    root = canary_root / "padchest-cli"
    padchest_layout(root)
    shards, out = tmp_path / "shards", tmp_path / "data"
    r = cli(cxr_bin, "ingest", "padchest", str(root), str(shards), "-e", "debug", "size=128")
    assert r.returncode == 0, r.stderr
    assert "6 files: 5 ok, 1 skipped" in r.stdout
    r = cli(cxr_bin, "build-data", str(shards), str(out), "-c", f"{REPO}/configs/data/padchest.yaml")
    assert r.returncode == 0, r.stderr
    recs = pd.concat([pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test")])
    assert set(recs["task"]) == {"vqa_closed", "vqa_choice", "vqa_open", "findings"}
    assert leaks(shards, [CANARY]) == [] and leaks(out, [CANARY]) == []
    r = cli(cxr_bin, "ingest", "vindr-cxr", str(root), str(tmp_path / "bad"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "train/ folder" in r.stderr


def _index(n):
    return pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(n)],
            "study_id": [f"s{k}" for k in range(n)],
            "patient_id": [f"p{k // 2}" for k in range(n)],
            "accession_id": [f"a{k}" for k in range(n)],
            "shard": 0,
            "index": range(n),
            "view": "PA",
            "orig_w": 100,
            "orig_h": 100,
            "content_w": 128,
            "content_h": 128,
            "pad_left": 0,
            "pad_top": 0,
            "pad_right": 0,
            "pad_bottom": 0,
            "size": 128,
        }
    )


def test_build_data_keeps_official_split_else_by_patient():
    n = 40
    index = _index(n)
    records = pd.DataFrame(
        {
            "accession_id": index["accession_id"],
            "findings": "",
            "labels": [["x"]] * n,
            "boxes": "[]",
            "split": ["test", "test", "validate", "validate"] + [""] * (n - 4),
        }
    )
    kw = dict(tasks=["findings"], fractions=[0.5, 0.25, 0.25], seed=0, min_pixels=3136, max_pixels=128 * 128)
    recs = build_records(index, records, **kw).set_index("image_id")
    assert list(recs.loc[["i0", "i1", "i2", "i3"], "split"]) == ["test", "test", "val", "val"]
    rest = recs.drop(["i0", "i1", "i2", "i3"])
    assert set(rest["split"]) == {"train", "val", "test"}  # the patient-level hash split
    assert (recs.groupby("patient_id")["split"].nunique() == 1).all()
    # without a split column (hospital RIS records) the result is the patient split, as before
    plain = build_records(index, records.drop(columns="split"), **kw).set_index("image_id")
    assert (plain.loc[rest.index, "split"] == rest["split"]).all()
    # official_split=false ignores the dataset's own split
    mine = build_records(index, records, official_split=False, **kw).set_index("image_id")
    assert mine["split"].equals(plain["split"])


def test_recipes_load_as_build_data_configs():
    import glob

    from cxr.config import load_config
    from cxr.config.schema import BuildDataConfig

    paths = sorted(glob.glob(f"{REPO}/configs/data/*.yaml"))
    datasets = {"mimic-cxr", "mimic-cxr-jpg", "chexpert", "vindr-cxr", "ms-cxr", "padchest"}
    assert {os.path.basename(p)[:-5] for p in paths} == datasets
    for p in paths:
        assert load_config(BuildDataConfig, p, []).tasks
