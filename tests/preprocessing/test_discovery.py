"""Discovery and reruns on awkward archives: nothing usable, odd file names, new images in finished
studies, a rerun with other settings. Every file still ends in the manifest, with a reason."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid

from cxr.errors import UserError
from jobs.preprocess import preprocess
from preprocessing.discover import KNOWN_PARTS, quoted

from .conftest import preprocess_cfg


def _good(truth) -> list[str]:
    return [rel for rel, info in truth["files"].items() if "bad" not in info]


def test_an_archive_without_one_radiograph_is_still_all_accounted_for(archive, deid_key, tmp_path):
    """A CT and a text file: no shard, a full manifest, and private/sources.parquet says where each is."""
    root, truth = archive
    src = tmp_path / "archive" / "dicom"
    src.mkdir(parents=True)
    ct = next(rel for rel, info in truth["files"].items() if info.get("bad") == "ct")
    shutil.copy(root / "dicom" / ct, src / "ct.dcm")
    (src / "notes.txt").write_text("not an image\n")
    out = tmp_path / "shards"
    manifest = preprocess(preprocess_cfg(tmp_path / "archive", out, "ris=''"), log=lambda s: None)
    assert len(manifest) == 2 and not list(out.glob("shard-*.h5"))
    assert len(pd.read_parquet(out / "index.parquet")) == 0
    sources = pd.read_parquet(out / "private" / "sources.parquet")
    why = manifest.merge(sources, on="file_id").set_index("path")
    assert why.loc["ct.dcm", "status"] == "skipped" and "modality CT" in why.loc["ct.dcm", "reason"]
    assert why.loc["notes.txt", "status"] == "rejected" and "not a DICOM" in why.loc["notes.txt", "reason"]


def test_a_name_that_is_not_utf8_is_kept(archive, deid_key, tmp_path):
    """Old PACS exports write Latin-1 names: the image is kept, and the tables hold the name both
    escaped (readable) and as its own bytes (which open it)."""
    root, truth = archive
    src = tmp_path / "archive" / "dicom" / "M\u00fcller"  # a UTF-8 folder ...
    src.mkdir(parents=True)
    with open(os.fsencode(src) + b"/IMG\xe9.dcm", "wb") as fh:  # ... and a Latin-1 file name in it
        fh.write((root / "dicom" / _good(truth)[0]).read_bytes())
    out = tmp_path / "shards"
    manifest = preprocess(preprocess_cfg(tmp_path / "archive", out, "ris=''"), log=lambda s: None)
    assert list(manifest["status"]) == ["ok"]
    (row,) = pd.read_parquet(out / "private" / "sources.parquet").to_dict("records")
    assert row["path"] == "M\u00fcller/IMG\\xe9.dcm"
    assert row["path_bytes"] == "Müller".encode() + b"/IMG\xe9.dcm"


def test_sources_link_every_file_and_stay_private(archive, shards):
    root, _ = archive
    out, manifest = shards
    sources = pd.read_parquet(out / "private" / "sources.parquet")
    assert sorted(sources["file_id"]) == sorted(manifest["file_id"])
    assert all((root / "dicom" / p).is_file() for p in sources["path"])
    assert oct(os.stat(out / "private").st_mode & 0o777) == "0o700"


def test_an_image_added_to_a_finished_study_is_listed_not_lost(archive, deid_key, tmp_path):
    root, truth = archive
    grow = tmp_path / "archive"
    shutil.copytree(root / "dicom", grow / "dicom")
    out = tmp_path / "shards"
    cfg = preprocess_cfg(grow, out, "ris=''")
    preprocess(cfg, log=lambda s: None)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("shard-*.h5")}
    rel = _good(truth)[0]
    ds = pydicom.dcmread(grow / "dicom" / rel)
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["a new image of the same study"])
    added = (grow / "dicom" / rel).with_name("IMG900.dcm")
    ds.save_as(added)
    copy = (grow / "dicom" / rel).with_name("A-copy.dcm")  # the same image again, sorting first
    shutil.copy(grow / "dicom" / rel, copy)
    manifest = preprocess(cfg, log=lambda s: None)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("shard-*.h5")}
    assert after == before  # the finished shard keeps its content
    sources = pd.read_parquet(out / "private" / "sources.parquet")
    row = manifest.merge(sources, on="file_id").set_index("path").loc[str(added.relative_to(grow / "dicom"))]
    assert row["status"] == "skipped" and "added to its study after shard-" in row["reason"]
    by_path = manifest.merge(sources, on="file_id").set_index("path")
    assert by_path.loc[rel, "status"] == "ok"  # the shard's record of the original stands
    assert by_path.loc[str(copy.relative_to(grow / "dicom")), "reason"] == "duplicate SOPInstanceUID"
    assert len(manifest) == len(sources) == manifest["file_id"].nunique()


@pytest.mark.parametrize(
    ("override", "said"),
    [("size=96", "size=128 (this run: 96)"), ("j2k_reduce=2", "j2k_reduce=0 (this run: 2)")],
)
def test_a_rerun_with_other_settings_is_refused_before_any_work(archive, shards, deid_key, override, said):
    root, _ = archive
    out, _ = shards
    plan = (out / "plan.parquet").read_bytes()
    with pytest.raises(UserError, match="plan.parquet") as e:
        preprocess(preprocess_cfg(root, out, override), log=lambda s: None)
    assert said in str(e.value)
    assert (out / "plan.parquet").read_bytes() == plan


def test_a_rerun_with_another_key_is_refused_without_showing_either(archive, shards, deid_key, monkeypatch):
    root, _ = archive
    out, _ = shards
    monkeypatch.setenv("CXR_DEID_KEY", "another-site-key-9876543210")
    with pytest.raises(UserError, match="a different de-identification key") as e:
        preprocess(preprocess_cfg(root, out), log=lambda s: None)
    assert "9876543210" not in str(e.value) and "0123456789" not in str(e.value)
    assert set(pd.read_parquet(out / "plan.parquet").attrs["settings"]) == {
        "size",
        "dtype",
        "j2k_reduce",
        "date_mode",
        "views",
    }  # the key's check stays in private/, where nobody can test guesses against it


def test_an_ingest_folder_is_refused(archive, deid_key, tmp_path):
    root, _ = archive
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "dataset.json").write_text('{"dataset": "vindr-cxr"}\n')
    with pytest.raises(UserError, match="holds `cxr ingest` shards"):
        preprocess(preprocess_cfg(root, tmp_path / "shards"), log=lambda s: None)


def test_reasons_quote_only_known_terms():
    assert quoted("KNEE", KNOWN_PARTS) == "KNEE"
    assert quoted("JOHN SMITH", KNOWN_PARTS) == "(not a known term)"  # fits the CS character set


def test_malformed_header_values_are_never_quoted(archive, deid_key, tmp_path, cxr_bin):
    """pydicom warns about a malformed UI or CS value by quoting it (``Invalid value for VR CS:
    '...'``), and such a value can be anything a person typed."""
    root, truth = archive
    src = tmp_path / "archive" / "dicom"
    src.mkdir(parents=True)
    ds = pydicom.dcmread(root / "dicom" / _good(truth)[0])
    with pytest.warns(UserWarning):  # pydicom says so when writing them, too
        ds.ViewPosition, ds.StudyInstanceUID = "canary-view Jane", "CANARY.UID.1"
        ds.PatientSex = "CANARY SEX TOO LONG"
    ds.save_as(src / "a.dcm")
    out = tmp_path / "shards"
    r = subprocess.run(
        [cxr_bin, "preprocess", str(src), str(out), "size=64"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    said = (
        r.stdout
        + r.stderr
        + "".join(
            p.read_bytes().decode("latin-1")
            for p in out.rglob("*")
            if p.is_file() and "private" not in p.parts
        )
    )
    assert "CANARY" not in said
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert list(manifest["status"]) == ["ok"]  # and the image itself is kept
