"""MS-CXR (PhysioNet, credentialed; downloaded by the user): phrase-grounding boxes on MIMIC-CXR-JPG images.

Layout::

    ROOT/MS_CXR_Local_Alignment_v1.0.0.csv   dicom_id, category_name, label_text, [path,] x, y, w, h,
                                             image_width, image_height, [split]   (boxes in original pixels)
    mimic=MIMIC_CXR_JPG_ROOT                 the images, mimic-cxr-2.0.0-metadata.csv[.gz] (and split CSV)

Boxes ``x, y, w, h`` become ``[x, y, x + w, y + h]``, scaled to the image file's size when it differs from
``image_width × image_height`` (e.g. a resized copy); ``label_text`` (the phrase) is kept as the box's
``text`` and is what grounding records ask for; labels are the box categories. The split is the CSV's
own ``split`` column when it has one (1.1.0), else MIMIC-CXR-JPG's official split.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from cxr.config.schema import IngestConfig
from cxr.errors import UserError
from preprocessing.datasets.common import (
    check_files,
    check_split,
    find_file,
    frame,
    read_csv,
    split_name,
    xyxy,
)
from preprocessing.datasets.mimic import SPLIT, metadata, official_split, study_dir
from preprocessing.imagefile import image_size

CSV = "MS_CXR_Local_Alignment_v*.csv"
COLUMNS = ["dicom_id", "category_name", "label_text", "x", "y", "w", "h", "image_width", "image_height"]


def load(cfg: IngestConfig):
    root = Path(cfg.root)
    source = find_file(root, CSV)
    df = read_csv(source, COLUMNS, f"MS-CXR's {CSV} with {', '.join(COLUMNS)}", where=root / CSV)
    if not cfg.mimic:
        raise UserError("'mimic' is not set: MS-CXR boxes are on MIMIC-CXR-JPG images; give mimic=PATH")
    mimic = Path(cfg.mimic)
    if not (mimic / "files").is_dir():
        raise UserError(f"{mimic}: no files/ folder; expected the MIMIC-CXR-JPG folder (mimic=…)")
    meta = metadata(mimic)
    unknown = sorted(set(df["dicom_id"]) - set(meta))
    if unknown:
        raise UserError(
            f"{source}: dicom_id {unknown[0]} is not in the MIMIC-CXR-JPG metadata ({len(unknown)} missing)"
        )
    paths = {
        d: mimic / study_dir(meta[d]["subject"], meta[d]["study"]) / f"{d}.jpg" for d in set(df["dicom_id"])
    }
    frame_check = frame([{"path": str(p), "image": d} for d, p in paths.items()])
    check_files(frame_check, source)
    boxes: dict[str, list] = defaultdict(list)
    for r in df.itertuples(index=False):
        w, h = image_size(paths[r.dicom_id])
        try:
            sx, sy = w / float(r.image_width), h / float(r.image_height)
        except (ValueError, ZeroDivisionError):
            raise UserError(
                f"{source}: image_width/image_height {r.image_width}x{r.image_height} are not sizes"
            ) from None
        try:
            x, y, bw, bh = float(r.x), float(r.y), float(r.w), float(r.h)
        except ValueError:
            raise UserError(
                f"{source}: box x, y, w, h = {r.x}, {r.y}, {r.w}, {r.h} are not numbers"
            ) from None
        x1, y1, x2, y2 = xyxy(x, y, x + bw, y + bh, source)
        box = [round(x1 * sx, 2), round(y1 * sy, 2), round(x2 * sx, 2), round(y2 * sy, 2)]
        boxes[r.dicom_id].append(
            {"label": r.category_name, "box": box, "reader": "ms-cxr", "text": r.label_text}
        )
    if "split" in df.columns:  # MS-CXR 1.1.0 carries its own split
        split = {r.dicom_id: split_name(r.split, source) for r in df.itertuples(index=False)}
    else:
        split = official_split(mimic, sorted(paths)) if find_file(mimic, SPLIT) else {}
    rows = [
        {
            "path": str(paths[d]),
            "patient": meta[d]["subject"],
            "study": meta[d]["study"],
            "image": d,
            "view": meta[d]["view"],
            "sex": None,
            "age_band": None,
            "split": split.get(d, ""),
            "labels": sorted({b["label"] for b in boxes[d]}),
            "boxes": boxes[d],
        }
        for d in sorted(paths)
    ]
    out = frame(rows)
    check_split(out, find_file(mimic, SPLIT) or mimic)
    return out
