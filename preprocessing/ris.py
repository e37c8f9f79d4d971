"""A RIS export (CSV or JSON lines: accession number, findings text, labels, boxes) → records keyed
by the accession pseudonym, so reports join the shards' index without any identifier.

Boxes are in one image's pixels. An optional ``sop_instance_uid`` column names that image; it becomes
``box_image_id`` (the image pseudonym the index uses), and only that image of the study gets the boxes
(a PA's boxes do not fit the lateral). Without it, every image of the accession gets them.

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
    try:
        df = (
            pd.read_json(path, lines=True)
            if path.suffix in (".json", ".jsonl")
            else pd.read_csv(path, dtype=str)
        )
    except ValueError as e:
        raise UserError(
            f"{path}: cannot be read as {'JSON lines' if path.suffix != '.csv' else 'CSV'} ({type(e).__name__})"
        ) from None
    if "accession_number" not in df.columns:
        raise UserError(f"{path}: no 'accession_number' column (found: {', '.join(map(str, df.columns))})")
    out = pd.DataFrame(
        {"accession_id": [p.pseudonym("accession", str(a).strip()) for a in df["accession_number"]]}
    )
    for col in KEEP:
        out[col] = df[col].fillna("") if col in df.columns else ""
    out["labels"] = [[x for x in str(v).split("|") if x] for v in out["labels"]]
    try:
        out["boxes"] = [
            json.dumps(json.loads(v)) if isinstance(v, str) and v.strip() else "[]" for v in out["boxes"]
        ]
    except json.JSONDecodeError:
        bad = next(i for i, v in enumerate(out["boxes"]) if not _is_json(v))
        raise UserError(f"{path}: row {bad + 1}: 'boxes' is not JSON (a list of label/box objects)") from None
    uids = df["sop_instance_uid"] if "sop_instance_uid" in df.columns else [""] * len(df)
    out["box_image_id"] = [
        p.pseudonym("image", str(u).strip()) if isinstance(u, str) and u.strip() else "" for u in uids
    ]
    return out.drop_duplicates("accession_id").sort_values("accession_id").reset_index(drop=True)


def _is_json(v) -> bool:
    try:
        json.loads(v) if isinstance(v, str) and v.strip() else None
    except json.JSONDecodeError:
        return False
    return True
