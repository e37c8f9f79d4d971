"""Discovery: a header-only scan of every file under the archive, the CXR filter, the shard plan.

The plan assigns each pseudonymous study to a shard. It is saved (SHARDS/plan.parquet) and only
ever extended: when the archive grows, planned studies keep their shard and new studies fill new
shards, so finished shards stay valid and are never rewritten.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from preprocessing.decode import Rejected, quiet_pydicom, read
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


def printable(rel: str) -> str:
    """``rel`` as storable text: a name that is not valid UTF-8 (old exports write Latin-1; os.walk
    keeps such bytes as surrogates, which Parquet cannot hold) gets them as ``\\xNN`` escapes. Tables
    keep the name's bytes beside it (``rel_bytes``, ``path_bytes``): those open the file."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# Values a manifest reason may quote: DICOM defined terms. Anything else in these header fields is
# free text as far as a reason is concerned (an upper-case name fits the CS character set too).
KNOWN_MODALITIES = set(
    "CR DX CT MR US NM PT XA RF MG OT SC DR RG IO PX ES XC SR PR KO DOC SEG REG ECG OP OPT SM BMD BI "
    "DG LS RTIMAGE RTDOSE RTSTRUCT RTPLAN".split()
)
KNOWN_PARTS = set(
    "SKULL HEAD NECK CSPINE TSPINE LSPINE SPINE ABDOMEN PELVIS HIP KNEE ANKLE FOOT HAND WRIST ELBOW "
    "SHOULDER ARM LEG EXTREMITY BREAST HEART WHOLEBODY CHESTABDOMEN ABDOMENPELVIS CLAVICLE RIB SACRUM "
    "COCCYX FEMUR TIBIA HUMERUS FOREARM JAW TMJ SINUS ORBIT".split()
)


def quoted(value: str, known: set[str]) -> str:
    """``value`` for a manifest reason when it is a known defined term, else a placeholder."""
    return value if value in known else "(not a known term)"


def classify(
    archive: Path, rel: str, p: Pseudonymizer, views: tuple[str, ...] = ("PA", "AP", "LAT", "UNKNOWN")
) -> Found:
    with quiet_pydicom():  # its warnings quote malformed values: PHI
        return _classify(archive, rel, p, views)


def _classify(archive: Path, rel: str, p: Pseudonymizer, views: tuple[str, ...]) -> Found:
    file_id = p.pseudonym("file", rel)
    try:
        ds = read(archive / rel, stop_before_pixels=True)
    except Rejected as e:
        return Found(rel, file_id, "rejected", str(e))
    except (OSError, MemoryError) as e:  # a read error at discovery: recorded; the next run tries again
        code = errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)
        return Found(rel, file_id, "rejected", f"the file cannot be read ({code}): rerun to try again")
    try:
        modality = str(ds.get("Modality", "")).upper()
        if modality not in RADIOGRAPH_MODALITIES:
            why = f"modality {quoted(modality, KNOWN_MODALITIES) if modality else 'missing'} is not a radiograph (CR/DX)"
            return Found(rel, file_id, "skipped", why)
        part = str(ds.get("BodyPartExamined", "")).strip().upper()
        if part not in CHEST_PARTS:
            return Found(rel, file_id, "skipped", f"body part {quoted(part, KNOWN_PARTS)} is not the chest")
        if not ds.get("StudyInstanceUID") or not ds.get("SOPInstanceUID"):
            return Found(rel, file_id, "rejected", "missing StudyInstanceUID or SOPInstanceUID")
        attrs = safe_attributes(ds, p)
    except Exception as e:  # a malformed value deep in the header: the class name only (no PHI)
        return Found(rel, file_id, "rejected", f"DICOM header cannot be read ({type(e).__name__})")
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
