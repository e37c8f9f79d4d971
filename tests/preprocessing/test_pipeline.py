"""`cxr preprocess` end to end: every file accounted for, no PHI outside private/, atomic and
resumable after kill -9, stable shards when the archive grows, the same result on Slurm."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cxr.data.shards import ShardDataset
from jobs.preprocess import preprocess
from preprocessing.deid import Pseudonymizer
from preprocessing.discover import walk

from .conftest import preprocess_cfg

EXPECTED_BAD = {  # kind → (status, what its reason says)
    "truncated": ("rejected", "truncated file"),
    "no-pixels": ("rejected", "no pixel data"),
    "not-dicom": ("rejected", "not a DICOM file"),
    "multiframe": ("rejected", "multi-frame image"),
    "unsupported-syntax": ("rejected", "unsupported transfer syntax 1.2.840.113619.5.2"),
    "ct": ("skipped", "modality CT is not a radiograph"),
    "bitrot": ("rejected", "pixel data cannot be decoded"),  # a Rust codec's panic included
    "bad-offset-table": ("rejected", "pixel data cannot be decoded"),
}


def file_ids(archive_root: Path) -> dict[str, str]:
    p = Pseudonymizer(os.environ["CXR_DEID_KEY"].encode())
    return {rel: p.pseudonym("file", rel) for rel in walk(archive_root / "dicom")}


def test_every_file_is_accounted_for(archive, shards):
    root, truth = archive
    out, manifest = shards
    ids = file_ids(root)
    assert sorted(manifest["file_id"]) == sorted(ids.values())  # 100 %, each once
    assert set(manifest["status"]) <= {"ok", "rejected", "skipped"}
    assert (manifest.loc[manifest["status"] != "ok", "reason"].str.len() > 5).all()
    by_id = manifest.set_index("file_id")
    for rel, info in truth["files"].items():
        status = by_id.loc[ids[rel], "status"]
        if "bad" in info:
            want, why = EXPECTED_BAD[info["bad"]]
            reason = by_id.loc[ids[rel], "reason"]
            assert status == want and why in reason, (info["bad"], status, reason)
        else:
            assert status == "ok", by_id.loc[ids[rel], "reason"]
    stored = pd.read_parquet(out / "manifest.parquet")
    pd.testing.assert_frame_equal(stored, manifest)


def test_index_dataset_and_records(archive, shards):
    out, manifest = shards
    index = pd.read_parquet(out / "index.parquet")
    assert len(index) == (manifest["status"] == "ok").sum()
    ds = ShardDataset(out, records=True)  # the folder's own records.parquet, by accession
    item = ds[len(ds) - 1]
    assert item["image"].shape == (128, 128) and item["image"].dtype == np.uint8
    assert item["findings"].startswith("FINDINGS:")
    rec = item["resize"]
    assert rec.input_w == rec.input_h == 128 and (rec.orig_w, rec.orig_h) == (item["orig_w"], item["orig_h"])
    assert set(index["view"]) <= {"PA", "AP", "LAT"} and index["age_band"].notna().all()
    boxed = ds.index[ds.index["boxes"] != "[]"]
    assert len(boxed) and all(  # only on the image they were drawn on
        b["image_id"] == image
        for bs, image in zip(boxed["boxes"], boxed["image_id"], strict=True)
        for b in json.loads(bs)
    )
    others = ds.index[ds.index["accession_id"].isin(boxed["accession_id"]) & (ds.index["boxes"] == "[]")]
    assert len(others)  # a study's other image (a lateral) has none
    # the letterbox padding is black and the content is not
    img = ds[0]["image"]
    r = ds[0]["resize"]
    assert img[r.pad_top : r.pad_top + r.content_h, r.pad_left : r.pad_left + r.content_w].mean() > 20


def test_dataset_under_a_dataloader_with_workers(shards):
    import torch

    out, _ = shards
    ds = ShardDataset(out)
    ds[0]  # open a handle in the parent: workers must not reuse it
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, num_workers=2, collate_fn=lambda b: np.stack([x["image"] for x in b])
    )
    n = sum(len(b) for b in loader)
    assert n == len(ds)


def _all_output_bytes(root: Path) -> list[tuple[Path, bytes]]:
    """Every byte of every file outside private/, and the decoded contents of its Parquet and HDF5
    files too (a compressed column or attribute could hide a string from a byte search)."""
    out = []
    for p in root.rglob("*"):
        if not p.is_file() or "private" in p.relative_to(root).parts:
            continue
        out.append((p, p.read_bytes()))
        if p.suffix == ".parquet":
            t = pq.read_table(p)
            out.append((p, (t.to_pandas().to_csv() + str(t.schema.metadata)).encode()))
        elif p.suffix == ".h5":
            out.append((p, _h5_strings(p).encode()))
    return out


def _h5_strings(path: Path) -> str:
    """Names and attributes of everything in an HDF5 file."""
    seen: list[str] = []
    with h5py.File(path, "r") as f:
        seen += [f"{k}={v}" for k, v in f.attrs.items()]
        f.visititems(lambda name, obj: seen.extend([name, *(f"{k}={v}" for k, v in obj.attrs.items())]))
    return "\n".join(seen)


def test_no_phi_outside_private_including_logs(archive, deid_key, tmp_path, cxr_bin):
    root, truth = archive
    out = tmp_path / "shards"
    r = subprocess.run(
        [
            cxr_bin,
            "preprocess",
            str(root / "dicom"),
            str(out),
            "studies_per_shard=4",
            "size=96",
            f"ris={root / 'ris' / 'ris.csv'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    said = r.stdout + r.stderr
    assert re.search(r"discovery: \d+/\d+ files, \d+ files/s, ETA \d+ s", said)  # progress
    assert re.search(r"shards: \d+/\d+ written, [\d.]+ shards/min", said)
    assert re.search(r"\d+ files: \d+ ok, \d+ rejected, \d+ skipped", said)  # the summary
    assert "rejected: 1 × not a DICOM file" in said
    haystacks = [
        (Path("stdout"), r.stdout.encode()),
        (Path("stderr"), r.stderr.encode()),
    ] + _all_output_bytes(out)
    # the real study dates (folder names start with them), raw and as ISO dates: the index holds
    # shifted ones only
    dates = {Path(rel).parts[1].split("_")[0] for rel in truth["files"]}
    dates |= {f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in dates}
    canaries = truth["canaries"] + ["CANARY", "DOE"] + sorted(dates)
    hits = [(str(p), c) for p, data in haystacks for c in canaries if c.encode() in data]
    assert not hits, hits[:5]
    key = os.environ["CXR_DEID_KEY"].encode()  # the site key: nowhere, private/ and logs included
    assert not [p for p in out.rglob("*") if p.is_file() and key in p.read_bytes()]
    assert key not in r.stdout.encode() + r.stderr.encode()
    assert (out / "private").stat().st_mode & 0o777 == 0o700
    assert any((out / "private").rglob("*")), "private/ holds the link back to sources"
    # a bad run's error message must not quote paths either
    r = subprocess.run(
        [cxr_bin, "preprocess", str(root / "dicom" / "nope"), str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "does not exist" in r.stderr


def _arrays(out: Path) -> dict[str, np.ndarray]:
    res = {}
    for p in sorted(out.glob("shard-*.h5")):
        with h5py.File(p, "r") as f:
            res[p.name] = f["images"][...]
    return res


def _tables(out: Path) -> list[pd.DataFrame]:
    names = ("index", "manifest", "plan", "records", "private/sources", "private/files")
    return [pd.read_parquet(out / f"{n}.parquet") for n in names]


@pytest.mark.parametrize("when", ["planned", "mid-shard", "shards-written"])
def test_kill_9_then_rerun_equals_an_uninterrupted_run(archive, shards, deid_key, tmp_path, cxr_bin, when):
    """Killed just after the plan is written, inside a shard, or once every shard is there (during
    the merge of the tables, or just after it): the rerun gives what an uninterrupted run gives."""
    root, _ = archive
    n_shards = len(pd.read_parquet(shards[0] / "plan.parquet")["shard"].unique())
    ref, _ = shards  # uninterrupted, same settings
    out = tmp_path / "killed"
    cmd = [
        cxr_bin,
        "preprocess",
        str(root / "dicom"),
        str(out),
        "studies_per_shard=3",
        "size=128",
        f"ris={root / 'ris' / 'ris.csv'}",
        "executor.array_parallelism=1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ready = {
        "planned": lambda: (out / "plan.parquet").is_file(),
        "mid-shard": lambda: bool(list(out.glob("shard-*.h5"))),
        "shards-written": lambda: len(list(out.glob("shard-*.h5"))) == n_shards,
    }[when]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not ready():
        time.sleep(0.01)
    if when == "mid-shard":
        time.sleep(0.3)  # somewhere inside the next shard
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if when == "mid-shard":
        assert 1 <= len(list(out.glob("shard-*.h5"))) < n_shards, "kill landed too late"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _arrays(ref), _arrays(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    for x, y in zip(_tables(ref), _tables(out), strict=True):
        pd.testing.assert_frame_equal(x, y)
    assert not list(out.glob(".shard-*")), "temporary files left behind"


def test_growing_archive_keeps_existing_shards(archive, deid_key, tmp_path):
    root, _ = archive
    grow = tmp_path / "archive"
    patients = sorted(p.name for p in (root / "dicom").iterdir())
    (grow / "dicom").mkdir(parents=True)
    for name in patients[: len(patients) // 2]:
        shutil.copytree(root / "dicom" / name, grow / "dicom" / name)
    out = tmp_path / "shards"
    preprocess(preprocess_cfg(grow, out, "ris=''"), log=lambda s: None)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("shard-*.h5")}
    for name in patients[len(patients) // 2 :]:
        shutil.copytree(root / "dicom" / name, grow / "dicom" / name)
    manifest = preprocess(preprocess_cfg(grow, out, "ris=''"), log=lambda s: None)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("shard-*.h5")}
    assert {k: after[k] for k in before} == before  # finished shards untouched
    assert len(after) > len(before)
    assert sorted(manifest["file_id"]) == sorted(file_ids(grow).values())


@pytest.mark.slurm
def test_slurm_array_gives_the_same_shards(archive, shards, deid_key, slurm_run_dir):
    root, _ = archive
    ref, _ = shards
    out = slurm_run_dir / "shards"
    preprocess(
        preprocess_cfg(
            root,
            out,
            "executor.kind=slurm",
            "executor.array_parallelism=2",
            "executor.time_min=10",
            "executor.mem_gb=1",
        ),
        log=lambda s: None,
    )
    groups = pd.read_json(out / "private" / "jobs.json")["groups"]
    assert groups[0]["kind"] == "slurm" and len(groups[0]["job_ids"]) > 1  # one array, several tasks
    a, b = _arrays(ref), _arrays(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    for x, y in zip(_tables(ref), _tables(out), strict=True):
        pd.testing.assert_frame_equal(x, y)


def test_view_filter_skips_with_a_reason(archive, deid_key, tmp_path):
    root, truth = archive
    manifest = preprocess(preprocess_cfg(root, tmp_path / "pa", "views=[PA]", "ris=''"), log=lambda s: None)
    skipped = manifest.loc[manifest["reason"].str.startswith("view "), "reason"]
    assert len(skipped) > 0 and all("is not among PA" in r for r in skipped)
    assert set(pd.read_parquet(tmp_path / "pa" / "index.parquet")["view"]) == {"PA"}


def test_uint16_shards_hold_the_same_images_at_16_bits(archive, shards, deid_key, tmp_path):
    """``dtype=uint16`` stores the same letterboxed images as the default uint8, 257x finer: every
    pixel agrees with the uint8 shard to within the uint8 rounding (half a level, one at ties)."""
    root, _ = archive
    out8, _ = shards
    out16 = tmp_path / "u16"
    preprocess(preprocess_cfg(root, out16, "dtype=uint16"), log=lambda s: None)
    i8, i16 = pd.read_parquet(out8 / "index.parquet"), pd.read_parquet(out16 / "index.parquet")
    assert list(i16["image_id"]) == list(i8["image_id"]) and set(i16["dtype"]) == {"uint16"}
    d8, d16 = ShardDataset(out8), ShardDataset(out16)
    for k in range(len(d8)):
        a, b = d8[k]["image"], d16[k]["image"]
        assert b.dtype == np.uint16 and b.shape == a.shape
        assert np.abs(b.astype(np.int64) - a.astype(np.int64) * 257).max() <= 257, k
    assert d16[0]["image"].max() > 255  # really 16-bit, not uint8 values in a wider type
