"""MIMIC-CXR (DICOM) and MIMIC-CXR-JPG, both from PhysioNet (credentialed; downloaded by the user).

MIMIC-CXR-JPG 2.0.0/2.1.0 layout::

    ROOT/files/p10/p10000032/s50414267/02aa804e-….jpg
    ROOT/mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, …, ViewPosition, Rows, Columns, …
    ROOT/mimic-cxr-2.0.0-chexpert.csv.gz   subject_id, study_id, Atelectasis, …, Support Devices (1.0/0.0/-1.0/blank)
    ROOT/mimic-cxr-2.0.0-split.csv.gz      dicom_id, study_id, subject_id, split (train|validate|test)

MIMIC-CXR 2.0.0 (DICOM) has ``files/pXX/pN/sN/*.dcm``, ``cxr-record-list.csv.gz`` (subject_id, study_id,
dicom_id, path) and the reports (``mimic-cxr-reports.zip`` unpacked into ROOT: ``files/pXX/pN/sN.txt``);
the CheXpert-labeler CSV, views and the split come from the JPG release's CSVs, in ROOT or in the
MIMIC-CXR-JPG folder given as ``mimic=`` (views otherwise from each file's ViewPosition). Reports are split into FINDINGS and
IMPRESSION (``reports=`` points to the unpacked reports for MIMIC-CXR-JPG).
"""

from __future__ import annotations

from pathlib import Path

from cxr.config.schema import IngestConfig
from cxr.errors import UserError
from preprocessing.datasets.common import (
    check_files,
    check_split,
    find_file,
    frame,
    positive_labels,
    read_csv,
    report_sections,
    split_name,
    view_of,
)

CHEXPERT_LABELS = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
]
METADATA = "mimic-cxr-2.0.0-metadata.csv"
CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv"
SPLIT = "mimic-cxr-2.0.0-split.csv"
RECORDS = "cxr-record-list.csv"


def study_dir(subject: str, study: str) -> str:
    return f"files/p{subject[:2]}/p{subject}/s{study}"


def metadata(root: Path) -> dict[str, dict]:
    """dicom_id → {subject, study, view} from the JPG release's metadata CSV (must be in root)."""
    meta = read_csv(
        find_file(root, METADATA),
        ["dicom_id", "subject_id", "study_id", "ViewPosition"],
        f"{METADATA}(.gz) with dicom_id, subject_id, study_id, ViewPosition",
        where=root / METADATA,
    )
    return {
        r.dicom_id: {"subject": r.subject_id, "study": r.study_id, "view": view_of(r.ViewPosition)}
        for r in meta.itertuples(index=False)
    }


def official_split(root: Path, dicom_ids: list[str]) -> dict[str, str]:
    path = find_file(root, SPLIT)
    if path is None:
        return {}
    df = read_csv(path, ["dicom_id", "study_id", "subject_id", "split"], "the official split CSV")
    out = {r.dicom_id: split_name(r.split, path) for r in df.itertuples(index=False)}
    missing = [d for d in dicom_ids if d not in out]
    if missing:
        raise UserError(f"{path}: no row for dicom_id {missing[0]} ({len(missing)} images have no split)")
    return out


def find_in(dirs: list[Path], name: str) -> Path | None:
    return next((p for p in (find_file(d, name) for d in dirs) if p is not None), None)


def labels_by_study(dirs: list[Path]) -> dict[str, list[str]]:
    root = dirs[0]
    path = find_in(dirs, CHEXPERT)
    df = read_csv(
        path,
        ["subject_id", "study_id", *CHEXPERT_LABELS],
        f"{CHEXPERT}(.gz) (CheXpert labeler output)",
        where=root / CHEXPERT,
    )
    return {r["study_id"]: positive_labels(r, CHEXPERT_LABELS) for _, r in df.iterrows()}


def read_report(folder: Path, subject: str, study: str, *, required: bool) -> tuple[str, str]:
    path = folder / f"{study_dir(subject, study)}.txt"
    if not path.is_file():
        if required:
            raise UserError(
                f"{path}: missing; expected the report of study s{study} (unpack mimic-cxr-reports.zip into ROOT)"
            )
        return "", ""
    sec = report_sections(path.read_text(errors="replace"))
    return sec.get("FINDINGS", ""), sec.get("IMPRESSION", "")


def load(cfg: IngestConfig):
    root = Path(cfg.root)
    if not (root / "files").is_dir():
        raise UserError(
            f"{root}: no files/ folder; expected the {cfg.dataset} layout files/pXX/pNNNNNNNN/sNNNNNNNN/"
        )
    dicom = cfg.dataset == "mimic-cxr"
    # the DICOM release's label, view and split CSVs may sit in the JPG release's folder (mimic=…)
    dirs = [root] + ([Path(cfg.mimic)] if cfg.mimic and dicom else [])
    if dicom:
        recs = read_csv(
            find_file(root, RECORDS),
            ["subject_id", "study_id", "dicom_id", "path"],
            f"{RECORDS}(.gz) with subject_id, study_id, dicom_id, path",
            where=root / RECORDS,
        )
        where = find_in(dirs, METADATA)
        meta = metadata(where.parent) if where else {}
        items = [(r.dicom_id, r.subject_id, r.study_id, root / r.path) for r in recs.itertuples(index=False)]
        views = {d: m["view"] for d, m in meta.items()}
        reports, need_reports = root, True
    else:
        meta = metadata(root)
        items = [
            (d, m["subject"], m["study"], root / study_dir(m["subject"], m["study"]) / f"{d}.jpg")
            for d, m in meta.items()
        ]
        views = {d: m["view"] for d, m in meta.items()}
        reports, need_reports = (Path(cfg.reports) if cfg.reports else root), bool(cfg.reports)
    labels = labels_by_study(dirs)
    where = find_in(dirs, SPLIT)
    split = official_split(where.parent, [i[0] for i in items]) if where else {}
    rows = []
    for d, subject, study, path in items:
        findings, impression = read_report(reports, subject, study, required=need_reports)
        rows.append(
            {
                "path": str(path),
                "patient": subject,
                "study": study,
                "image": d,
                "view": views.get(d) or (_dicom_view(path) if dicom and path.is_file() else "UNKNOWN"),
                "sex": None,
                "age_band": None,
                "split": split.get(d, ""),
                "findings": findings,
                "impression": impression,
                "labels": labels.get(study, []),
                "boxes": [],
            }
        )
    df = frame(rows)
    source = find_file(root, RECORDS if dicom else METADATA)
    check_files(df, source)
    check_split(df, where or root)
    return df


def _dicom_view(path: Path) -> str:
    from preprocessing.decode import Rejected, read

    try:
        return view_of(read(path, stop_before_pixels=True).get("ViewPosition", ""))
    except Rejected:
        return "UNKNOWN"
