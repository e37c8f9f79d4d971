"""VinDr-CXR 1.0.0 (PhysioNet, credentialed; downloaded by the user).

Layout::

    ROOT/train/<image_id>.dicom, ROOT/test/<image_id>.dicom
    ROOT/annotations/annotations_train.csv   image_id, rad_id, class_name, x_min, y_min, x_max, y_max
    ROOT/annotations/annotations_test.csv    image_id, [rad_id,] class_name, x_min, y_min, x_max, y_max
    ROOT/annotations/image_labels_train.csv  image_id, rad_id, <28 findings and diagnoses> (0/1)
    ROOT/annotations/image_labels_test.csv   image_id, <the same labels> (the consensus of the test set)

Boxes are already ``[x_min, y_min, x_max, y_max]`` in original pixels, one row per reader and box
("No finding" rows have none). Training images were read by three radiologists: every reader's box is
kept with its ``rad_id``; ``boxes=consensus`` merges them. A finding is a label when at least
``consensus_min_readers`` readers (at most all of the image's readers) marked it. The split is the
official train/test. VinDr-CXR has no patient ids: each image counts as its own patient. View, sex and
age band come from the header's ViewPosition, PatientSex and PatientAge (nothing else is read).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from cxr.config.schema import IngestConfig
from cxr.errors import UserError
from preprocessing.datasets.common import check_files, frame, read_csv, require_dir, sex_of, view_of, xyxy

SKIP = ("No finding",)


def load(cfg: IngestConfig):
    root = Path(cfg.root)
    ann = root / "annotations"
    rows = []
    for split in ("train", "test"):
        folder = root / split
        if split == "test" and not folder.is_dir() and not (ann / "image_labels_test.csv").is_file():
            continue  # the test set is optional
        require_dir(folder, f"VinDr-CXR's {split}/ folder of <image_id>.dicom files")
        labels_csv, boxes_csv = ann / f"image_labels_{split}.csv", ann / f"annotations_{split}.csv"
        lab = read_csv(labels_csv, ["image_id"], "VinDr-CXR image labels (image_id, [rad_id,] findings)")
        box = read_csv(
            boxes_csv,
            ["image_id", "class_name", "x_min", "y_min", "x_max", "y_max"],
            "VinDr-CXR boxes (image_id, rad_id, class_name, x_min, y_min, x_max, y_max)",
        )
        findings = [c for c in lab.columns if c not in ("image_id", "rad_id") and c not in SKIP]
        on_disk = {p.stem for p in folder.glob("*.dicom")}
        listed = set(lab["image_id"])
        if on_disk != listed:
            extra = sorted(on_disk - listed) or sorted(listed - on_disk)
            raise UserError(
                f"{labels_csv}: lists {len(listed)} images but {folder} holds {len(on_disk)} .dicom files "
                f"(e.g. {extra[0]}); expected the same images"
            )
        unknown = sorted(set(box["image_id"]) - listed)
        if unknown:
            raise UserError(f"{boxes_csv}: image_id {unknown[0]} is not in {labels_csv.name}")
        votes: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
        readers: dict[str, set] = defaultdict(set)
        for _, r in lab.iterrows():
            reader = r.get("rad_id", "") or "consensus"
            readers[r["image_id"]].add(reader)
            for f in findings:
                if str(r[f]).strip() in ("1", "1.0"):
                    votes[r["image_id"]][f].add(reader)
        boxes = defaultdict(list)
        for r in box.itertuples(index=False):
            if r.class_name in SKIP or not str(r.x_min).strip():
                continue
            reader = getattr(r, "rad_id", "") or "consensus"
            boxes[r.image_id].append(
                {
                    "label": r.class_name,
                    "box": xyxy(r.x_min, r.y_min, r.x_max, r.y_max, boxes_csv),
                    "reader": reader,
                }
            )
        for image in sorted(listed):
            need = min(cfg.consensus_min_readers, len(readers[image]))
            view, sex, band = _header(folder / f"{image}.dicom")
            rows.append(
                {
                    "path": str(folder / f"{image}.dicom"),
                    "patient": image,
                    "study": image,
                    "image": image,
                    "view": view,
                    "sex": sex,
                    "age_band": band,
                    "split": split,
                    "labels": sorted(f for f, who in votes[image].items() if len(who) >= need),
                    "boxes": boxes[image],
                }
            )
    out = frame(rows)
    check_files(out, ann)
    return out


def _header(path: Path) -> tuple[str, str | None, str | None]:
    """View, sex and age band from the header (allow-listed, as in `cxr preprocess`); unknown when absent."""
    from preprocessing.decode import Rejected, read
    from preprocessing.deid import age_band

    try:
        ds = read(path, stop_before_pixels=True)
    except Rejected:
        return "UNKNOWN", None, None  # the shard writer rejects it with the reason
    return (
        view_of(ds.get("ViewPosition", "")),
        sex_of(ds.get("PatientSex", "")),
        age_band(str(ds.get("PatientAge", ""))),
    )
