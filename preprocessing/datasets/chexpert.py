"""CheXpert (Stanford AIMI; registration, downloaded by the user) and CheXpert Plus reports.

Layout (``CheXpert-v1.0`` or ``CheXpert-v1.0-small``)::

    ROOT/train.csv, ROOT/valid.csv   Path, Sex, Age, Frontal/Lateral, AP/PA, No Finding, …, Support Devices
    ROOT/train/patient00001/study1/view1_frontal.jpg   (Path is "CheXpert-v1.0-small/train/…")

The official split is train.csv → train, valid.csv → val (patients do not overlap). CheXpert Plus's
``df_chexpert_plus_240401.csv`` (path_to_image, section_findings, section_impression), when in ROOT,
adds the report sections by image path.
"""

from __future__ import annotations

from pathlib import Path

from cxr.config.schema import IngestConfig
from cxr.errors import UserError
from preprocessing.datasets.common import (
    age_band_years,
    check_files,
    check_split,
    find_file,
    frame,
    positive_labels,
    read_csv,
    sex_of,
    view_of,
)
from preprocessing.datasets.mimic import CHEXPERT_LABELS

COLUMNS = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]
PLUS = "df_chexpert_plus_*.csv"


def _rel(path: str) -> str:
    """'CheXpert-v1.0-small/train/patient1/study1/view1_frontal.jpg' → 'train/patient1/study1/view1_frontal.jpg'."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if part in ("train", "valid", "test"):
            return "/".join(parts[i:])
    return "/".join(parts)


def _plus_reports(root: Path) -> dict[str, tuple[str, str]]:
    path = find_file(root, PLUS)
    if path is None:
        return {}
    df = read_csv(
        path, ["path_to_image", "section_findings", "section_impression"], "the CheXpert Plus report CSV"
    )
    return {
        _rel(r.path_to_image): (" ".join(r.section_findings.split()), " ".join(r.section_impression.split()))
        for r in df.itertuples(index=False)
    }


def load(cfg: IngestConfig):
    root = Path(cfg.root)
    if not (root / "train.csv").is_file():
        raise UserError(
            f"{root / 'train.csv'}: missing; expected the CheXpert-v1.0(-small) folder (train.csv, valid.csv, train/, valid/)"
        )
    reports = _plus_reports(root)
    rows = []
    for name, split in (("train.csv", "train"), ("valid.csv", "val")):
        source = root / name
        df = read_csv(
            source, COLUMNS, "CheXpert's columns Path, Sex, Age, Frontal/Lateral, AP/PA and the 14 labels"
        )
        for _, r in df.iterrows():
            rel = _rel(r["Path"])
            parts = rel.split("/")
            if len(parts) != 4 or not parts[1].startswith("patient") or not parts[2].startswith("study"):
                raise UserError(
                    f"{source}: Path {r['Path']!r}; expected …/{split}/patientNNNNN/studyN/viewN_*.jpg"
                )
            lateral = r["Frontal/Lateral"].strip().lower() == "lateral"
            findings, impression = reports.get(rel, ("", ""))
            rows.append(
                {
                    "path": str(root / rel),
                    "patient": parts[1],
                    "study": f"{parts[1]}/{parts[2]}",
                    "image": rel,
                    "view": "LAT" if lateral else view_of(r["AP/PA"]),
                    "sex": sex_of(r["Sex"]),
                    "age_band": age_band_years(r["Age"]),
                    "split": split,
                    "findings": findings,
                    "impression": impression,
                    "labels": positive_labels(r, CHEXPERT_LABELS),
                    "boxes": [],
                }
            )
    out = frame(rows)
    check_files(out, root / "train.csv")
    check_split(out, root / "valid.csv")
    return out
