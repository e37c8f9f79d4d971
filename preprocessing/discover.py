"""Discovery: a header-only scan of every file under the archive, the CXR filter, the shard plan.

The plan assigns each pseudonymous study to a shard. It is saved (SHARDS/plan.parquet) and only
ever extended: when the archive grows, planned studies keep their shard and new studies fill new
shards, so finished shards stay valid and are never rewritten.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from preprocessing.decode import Rejected, read
from preprocessing.deid import Pseudonymizer, safe_attributes

RADIOGRAPH_MODALITIES = {"CR", "DX"}
CHEST_PARTS = {"", "CHEST", "THORAX", "LUNG", "PORT CHEST", "TORAX"}


@dataclass
class Found:
    rel: str  # path under the archive (PHI: stays in private/)
    file_id: str  # pseudonym of rel
    status: str  # candidate | rejected | skipped
    reason: str
    attrs: dict | None = None  # safe_attributes for candidates


def walk(archive: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(archive):
        dirnames.sort()
        for name in sorted(filenames):
            out.append(str(Path(dirpath, name).relative_to(archive)))
    return out


def classify(
    archive: Path, rel: str, p: Pseudonymizer, views: tuple[str, ...] = ("PA", "AP", "LAT", "UNKNOWN")
) -> Found:
    file_id = p.pseudonym("file", rel)
    try:
        ds = read(archive / rel, stop_before_pixels=True)
    except Rejected as e:
        return Found(rel, file_id, "rejected", str(e))
    modality = str(ds.get("Modality", "")).upper()
    if modality not in RADIOGRAPH_MODALITIES:
        return Found(rel, file_id, "skipped", f"modality {modality or 'missing'} is not a radiograph (CR/DX)")
    part = str(ds.get("BodyPartExamined", "")).strip().upper()
    if part not in CHEST_PARTS:
        return Found(rel, file_id, "skipped", f"body part {part} is not the chest")
    if not ds.get("StudyInstanceUID") or not ds.get("SOPInstanceUID"):
        return Found(rel, file_id, "rejected", "missing StudyInstanceUID or SOPInstanceUID")
    attrs = safe_attributes(ds, p)
    if attrs["view"] not in views:
        return Found(rel, file_id, "skipped", f"view {attrs['view']} is not among {', '.join(views)}")
    return Found(rel, file_id, "candidate", "", attrs)


def extend_plan(plan: pd.DataFrame | None, study_ids: list[str], studies_per_shard: int) -> pd.DataFrame:
    """Planned studies keep their shard; new ones (sorted) fill new shards after the last."""
    plan = (
        plan
        if plan is not None
        else pd.DataFrame({"study_id": pd.Series(dtype=str), "shard": pd.Series(dtype=int)})
    )
    known = set(plan["study_id"])
    new = sorted(s for s in set(study_ids) if s not in known)
    start = int(plan["shard"].max()) + 1 if len(plan) else 0
    rows = [{"study_id": s, "shard": start + i // studies_per_shard} for i, s in enumerate(new)]
    return pd.concat([plan, pd.DataFrame(rows, columns=["study_id", "shard"])], ignore_index=True)
