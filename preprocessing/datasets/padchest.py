"""PadChest (BIMCV; research-use licence, downloaded by the user): 16-bit PNG + one labels CSV.

Layout::

    ROOT/PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv[.gz]
        ImageID, ImageDir, StudyDate_DICOM, StudyID, PatientID, PatientBirth, PatientSex_DICOM,
        ViewPosition_DICOM, Projection, …, Report, MethodLabel, Labels, Localizations, …
    ROOT/<ImageDir>/<ImageID>          (ImageDir 0–54, 16-bit greyscale PNG)

Labels are the ``Labels`` list (``['pleural effusion', 'cardiomegaly']``) without ``normal``; the
Spanish ``Report`` is not used as a report target. No official split: build-data splits by patient.
"""

from __future__ import annotations

import ast
from pathlib import Path

from cxr.config.schema import IngestConfig
from cxr.errors import UserError
from preprocessing.datasets.common import age_band_years, check_files, find_file, frame, read_csv, sex_of

CSV = "PADCHEST_chest_x_ray_images_labels_*.csv"
COLUMNS = ["ImageID", "ImageDir", "StudyID", "PatientID", "Projection", "Labels"]
PROJECTIONS = {"PA": "PA", "AP": "AP", "AP_HORIZONTAL": "AP", "L": "LAT"}  # COSTAL and others: OTHER
SKIP = {"", "normal", "exclude", "suboptimal study"}


def _labels(value: str, source: Path) -> list[str]:
    v = value.strip()
    if not v:
        return []
    try:
        items = ast.literal_eval(v)
    except (ValueError, SyntaxError):
        raise UserError(f"{source}: Labels value {v[:40]!r} is not a list like ['cardiomegaly']") from None
    return sorted({str(x).strip() for x in items} - SKIP)


def _age(birth: str, study_date: str):
    try:
        return int(study_date[:4]) - int(float(birth))
    except (TypeError, ValueError):
        return None


def load(cfg: IngestConfig):
    root = Path(cfg.root)
    source = find_file(root, CSV)
    df = read_csv(source, COLUMNS, f"PadChest's labels CSV with {', '.join(COLUMNS)}", where=root / CSV)
    rows = []
    for _, r in df.iterrows():
        rows.append(
            {
                "path": str(root / str(r["ImageDir"]).strip() / r["ImageID"]),
                "patient": r["PatientID"],
                "study": r["StudyID"],
                "image": r["ImageID"],
                "view": PROJECTIONS.get(r["Projection"].strip().upper(), "OTHER"),
                "sex": sex_of(r.get("PatientSex_DICOM", "")),
                "age_band": age_band_years(_age(r.get("PatientBirth", ""), r.get("StudyDate_DICOM", ""))),
                "split": "",
                "labels": _labels(r["Labels"], source),
                "boxes": [],
            }
        )
    out = frame(rows)
    check_files(out, source)
    return out
