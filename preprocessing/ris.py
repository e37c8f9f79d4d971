"""A RIS export (CSV or JSON lines: accession number, findings text, labels, boxes) → records keyed
by the accession pseudonym, so reports join the shards' index without any identifier.

Boxes are in one image's pixels. An optional ``sop_instance_uid`` column names that image: each of the
row's boxes then carries ``image_id`` (the image pseudonym the index uses), and only that image gets it
(a PA's boxes do not fit the lateral); boxes without it go to every image of the accession. Several
rows of one accession (one per annotated image) become one record: the first row's findings and
labels, every row's boxes.

Only the allow-listed columns are kept. The findings text is copied as is: free-text
de-identification of reports is not done here (real reports can name people; review them first).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cxr.errors import UserError
from preprocessing.deid import Pseudonymizer

KEEP = ["findings", "labels", "boxes"]


def load_ris(path: str | Path, p: Pseudonymizer) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"RIS export {path} does not exist")
    try:  # every value as written (dtype=False: accession "00123" stays a string)
        df = (
            pd.read_json(path, lines=True, dtype=False)
            if path.suffix in (".json", ".jsonl")
            else pd.read_csv(path, dtype=str, keep_default_na=False)
        )
    except ValueError as e:
        raise UserError(
            f"{path}: cannot be read as {'JSON lines' if path.suffix != '.csv' else 'CSV'} ({type(e).__name__})"
        ) from None
    if "accession_number" not in df.columns:
        raise UserError(f"{path}: no 'accession_number' column (found: {', '.join(map(str, df.columns))})")
    rows = []
    for i, r in enumerate(df.to_dict("records"), 1):
        uid = _text(r.get("sop_instance_uid"))
        boxes = _boxes(r.get("boxes"), path, i)
        if uid:
            boxes = [{**b, "image_id": p.pseudonym("image", uid)} for b in boxes]
        labels = r.get("labels")
        rows.append(
            {
                "accession_id": p.pseudonym("accession", _text(r["accession_number"])),
                "findings": _text(r.get("findings")),
                "labels": list(labels)
                if isinstance(labels, list)
                else [x for x in _text(labels).split("|") if x],
                "boxes": boxes,
            }
        )
    out = (
        pd.DataFrame(rows, columns=["accession_id", *KEEP])
        .groupby("accession_id", sort=True)
        .agg({"findings": "first", "labels": "first", "boxes": lambda bs: [b for row in bs for b in row]})
        .reset_index()
    )
    out["boxes"] = [json.dumps(b) for b in out["boxes"]]
    return out


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v).strip()


def _boxes(v, path: Path, row: int) -> list[dict]:
    """A row's boxes: a JSON list (text in CSV; text or a real list in JSON lines) of label/box objects."""
    if isinstance(v, list):
        boxes = v
    elif not _text(v):
        return []
    else:
        try:
            boxes = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            raise UserError(f"{path}: row {row}: 'boxes' is not JSON (a list of label/box objects)") from None
    if not isinstance(boxes, list) or not all(isinstance(b, dict) and "box" in b for b in boxes):
        raise UserError(f"{path}: row {row}: 'boxes' must be a list of objects with a 'box' [x1, y1, x2, y2]")
    return boxes
