"""Small public-dataset layouts written as each dataset publishes them (file layout, CSV names and
columns), with PHI canaries planted in the dataset ids and the root path (none may leave SHARDS/private/).
Imported as ``tests.ingest.layouts`` (a bare ``conftest`` import would pick another folder's)."""

from __future__ import annotations

import functools
import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cxr.config import load_config
from cxr.config.schema import IngestConfig


def _real_ingest():
    """``jobs.ingest.ingest`` from this repository. tests/ is on sys.path (pytest's prepend mode) and
    tests/jobs and tests/preprocessing are packages, so a plain ``import jobs`` here can find the test
    folder. Import the real rooms with the repository first, then put sys.modules back as it was so
    pytest still collects and runs tests/jobs and tests/preprocessing as before."""
    import importlib

    def rooms():
        return {k for k in sys.modules if k.split(".")[0] in ("jobs", "preprocessing")}

    repo = str(Path(__file__).resolve().parents[2])
    before = {k: sys.modules.pop(k) for k in rooms()}
    sys.path.insert(0, repo)
    try:
        fn = importlib.import_module("jobs.ingest").ingest  # keeps its modules alive through __globals__
    finally:
        sys.path.remove(repo)
        for k in rooms():
            del sys.modules[k]
        sys.modules.update(before)
    return fn


ingest = _real_ingest()


CANARY = "CANARYPHI"
CHEX = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]


@functools.cache
def _base():
    from preprocessing.synth import _base_image

    return _base_image()


def radiograph(w: int, h: int, seed: int) -> np.ndarray:
    from preprocessing.synth import _variant

    return _variant(_base(), np.random.default_rng(seed), w, h, lateral=False)


def write_jpg(path: Path, w: int, h: int, seed: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(radiograph(w, h, seed) * 255).astype(np.uint8)).save(path, quality=95)


def write_png16(path: Path, w: int, h: int, seed: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.round(radiograph(w, h, seed) * 4095).astype(np.uint16)  # 12-bit values in a 16-bit PNG
    Image.fromarray(arr).save(path)


def write_dicom(path: Path, w: int, h: int, seed: int, **header) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored = np.round(radiograph(w, h, seed) * 4095).astype(np.uint16)
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = stored.tobytes()
    for k, v in header.items():
        setattr(ds, k, v)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_csv(path: Path, rows: list[dict], columns: list[str], *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = pd.DataFrame(rows, columns=columns).to_csv(index=False)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


# -- MIMIC-CXR-JPG (and the DICOM release) ---------------------------------------------------------
MIMIC_META = [
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
]
REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ with cough.

 FINDINGS:

 There is a small left pleural effusion.  The heart size is
 normal.

 IMPRESSION:

 Small left pleural effusion.
"""


def mimic_layout(root: Path, *, dicom: bool = False, n_patients: int = 6) -> dict:
    """n_patients subjects, 1–2 studies each, 1–2 images per study; the dicom_ids carry a canary."""
    meta, chex, split, records, truth = [], [], [], [], {"ids": [], "images": {}}
    k = 0
    splits = ["train", "train", "validate", "test", "train", "train"]
    for i in range(n_patients):
        subject = f"1{i:07d}"
        truth["ids"].append(subject)
        for j in range(1 + i % 2):
            study = f"5{i:04d}{j:03d}"
            truth["ids"].append(study)
            labels = {c: "" for c in CHEX}
            labels["Pleural Effusion"] = "1.0" if (i + j) % 2 == 0 else "0.0"
            labels["Cardiomegaly"] = "-1.0" if i % 3 == 0 else ""
            labels["No Finding"] = "1.0" if (i + j) % 2 else ""
            chex.append({"subject_id": subject, "study_id": study, **labels})
            sdir = f"files/p{subject[:2]}/p{subject}/s{study}"
            (root / f"{sdir}.txt").parent.mkdir(parents=True, exist_ok=True)
            (root / f"{sdir}.txt").write_text(REPORT)
            for v, view in enumerate(["PA", "LATERAL"][: 1 + (i + j) % 2]):
                d = f"{CANARY}{k:04d}-aaaa-bbbb-cccc-{i:04d}{j}{v}"
                truth["ids"].append(d)
                w, h = 300 - 20 * v, 260 + 10 * i
                if dicom:
                    write_dicom(root / sdir / f"{d}.dcm", w, h, seed=k)
                    records.append(
                        {"subject_id": subject, "study_id": study, "dicom_id": d, "path": f"{sdir}/{d}.dcm"}
                    )
                else:
                    write_jpg(root / sdir / f"{d}.jpg", w, h, seed=k)
                meta.append(
                    {
                        "dicom_id": d,
                        "subject_id": subject,
                        "study_id": study,
                        "ViewPosition": view,
                        "Rows": h,
                        "Columns": w,
                        "StudyDate": "21800506",
                        "StudyTime": "213014.531",
                    }
                )
                split.append({"dicom_id": d, "study_id": study, "subject_id": subject, "split": splits[i]})
                truth["images"][d] = {"subject": subject, "split": splits[i], "size": (w, h)}
                k += 1
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv", meta, MIMIC_META, gz=True)
    write_csv(root / "mimic-cxr-2.0.0-chexpert.csv", chex, ["subject_id", "study_id", *sorted(CHEX)], gz=True)
    write_csv(
        root / "mimic-cxr-2.0.0-split.csv", split, ["dicom_id", "study_id", "subject_id", "split"], gz=True
    )
    if dicom:
        write_csv(
            root / "cxr-record-list.csv", records, ["subject_id", "study_id", "dicom_id", "path"], gz=True
        )
    return truth


# -- CheXpert ---------------------------------------------------------------------------------------
def chexpert_layout(root: Path) -> dict:
    truth = {"ids": [], "images": {}}
    for name, folder, patients in (
        ("train.csv", "train", range(1, 5)),
        ("valid.csv", "valid", range(64541, 64543)),
    ):
        rows = []
        for p in patients:
            pid = f"patient{p:05d}"
            for s in (1, 2)[: 1 + p % 2]:
                for v, (fl, apa) in enumerate((("Frontal", "PA"), ("Lateral", ""))[: 1 + s % 2]):
                    rel = f"{folder}/{pid}/study{s}/view{v + 1}_{fl.lower()}.jpg"
                    write_jpg(root / rel, 280, 250, seed=p * 10 + s * 3 + v)
                    labels = {c: "" for c in CHEX}
                    labels["Edema"] = "1.0" if p % 2 else "0.0"
                    labels["Support Devices"] = "1.0"
                    rows.append(
                        {
                            "Path": f"CheXpert-v1.0-small/{rel}",
                            "Sex": "Female" if p % 2 else "Male",
                            "Age": 40 + p % 50,
                            "Frontal/Lateral": fl,
                            "AP/PA": apa,
                            **labels,
                        }
                    )
                    truth["images"][rel] = {"patient": pid, "split": "train" if folder == "train" else "val"}
        write_csv(root / name, rows, ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEX])
    return truth


def ingest_cfg(dataset: str, root: Path, shards: Path, *extra: str) -> IngestConfig:
    return load_config(
        IngestConfig,
        overrides=[f"dataset={dataset}", f"root={root}", f"shards={shards}", "studies_per_shard=3",
                   "executor.kind=debug", *extra],
    )  # fmt: skip


def leaks(shards: Path, secrets: list[str]) -> list[str]:
    """Every secret string found in a file (or a parquet value) outside SHARDS/private/."""
    found = []
    for f in shards.rglob("*"):
        if not f.is_file() or "private" in f.relative_to(shards).parts:
            continue
        texts = [f.read_bytes().decode("latin-1")]
        if f.suffix == ".parquet":
            texts.append(pd.read_parquet(f).astype(str).to_csv())
        found += [f"{s} in {f.name}" for s in secrets for t in texts if s in t]
    return sorted(set(found))
