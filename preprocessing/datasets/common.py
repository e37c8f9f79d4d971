"""What every dataset adapter shares: CSV and layout checks with one-line errors, views, age bands,
report sections, box conventions (``[x1, y1, x2, y2]`` in original-image pixels, per reader) and the
consensus of several readers' boxes."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cxr.errors import UserError

# One row per image. path: absolute source path (private); patient/study/image: the dataset's own keys
# (pseudonymised at ingest); split: the official split ("" when none); boxes: [{label, box, reader[, text]}].
IMAGE_COLUMNS = [
    "path",
    "patient",
    "study",
    "image",
    "view",
    "sex",
    "age_band",
    "split",
    "findings",
    "impression",
    "labels",
    "boxes",
]
SPLIT_NAMES = {"train": "train", "validate": "val", "valid": "val", "val": "val", "test": "test"}
VIEWS = {"PA": "PA", "AP": "AP", "LATERAL": "LAT", "LL": "LAT", "RL": "LAT", "LAT": "LAT", "L": "LAT"}


def find_file(root: Path, *names: str) -> Path | None:
    """The first of ``names`` (each also as ``.gz``; glob patterns allowed) that exists under root."""
    for name in names:
        for cand in (name, f"{name}.gz"):
            hits = sorted(root.glob(cand))
            if hits:
                return hits[-1]
    return None


def require_dir(root: Path, what: str) -> Path:
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: expected {what}")
    return root


def read_csv(path: Path | None, columns: list[str], what: str, *, where: Path | None = None) -> pd.DataFrame:
    """A CSV (or .csv.gz) that must exist and have ``columns``; all values read as strings."""
    if path is None or not path.is_file():
        raise UserError(f"{path or where}: missing; expected {what}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot be read as CSV ({type(e).__name__}); expected {what}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"{path}: no column {', '.join(map(repr, missing))}; expected {what}")
    return df


def check_files(df: pd.DataFrame, source: Path) -> None:
    """Every image a table lists must be on disk: no silent partial ingest."""
    missing = [p for p in df["path"] if not Path(p).is_file()]
    if missing:
        raise UserError(
            f"{missing[0]}: missing ({len(missing)} of {len(df)} images listed in {source} are not on disk)"
        )


def check_split(df: pd.DataFrame, source: Path) -> None:
    """An official split must be patient-level: a patient in two splits would leak."""
    official = df[df["split"] != ""]
    n = official.groupby("patient")["split"].nunique()
    if (n > 1).any():
        raise UserError(
            f"{source}: patient {n[n > 1].index[0]} is in more than one split; expected a patient-level split"
        )


def split_name(value: str, source: Path) -> str:
    v = str(value).strip().lower()
    if v not in SPLIT_NAMES:
        raise UserError(f"{source}: split value {value!r}; expected one of {', '.join(sorted(SPLIT_NAMES))}")
    return SPLIT_NAMES[v]


def view_of(value: str) -> str:
    return VIEWS.get(str(value).strip().upper(), "UNKNOWN") if str(value).strip() else "UNKNOWN"


def age_band_years(age) -> str | None:
    try:
        years = float(age)
    except (TypeError, ValueError):
        return None
    if years != years or years < 0:
        return None
    if years >= 90:
        return "90+"
    lo = int(years // 5) * 5
    return f"{lo}-{lo + 4}"


def sex_of(value: str) -> str | None:
    v = str(value).strip().upper()[:1]
    return v if v in ("F", "M") else None


_HEADER = re.compile(r"^\s*([A-Z][A-Z /&-]{2,}):", re.M)


def report_sections(text: str) -> dict[str, str]:
    """A free-text report → {SECTION NAME: text} for headers like ``FINDINGS:`` / ``IMPRESSION:``."""
    out: dict[str, str] = {}
    heads = list(_HEADER.finditer(text))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out[m.group(1).strip()] = " ".join(text[m.end() : end].split())
    return out


def positive_labels(row: pd.Series, columns: list[str], skip: tuple[str, ...] = ("No Finding",)) -> list[str]:
    """CheXpert-labeler style: 1.0 positive, 0.0 negative, -1.0 uncertain, blank not mentioned."""
    out = []
    for c in columns:
        try:
            if float(row[c] or "nan") == 1.0 and c not in skip:
                out.append(c)
        except ValueError:
            continue
    return out


def xyxy(x1, y1, x2, y2, source: Path) -> list[float]:
    try:
        box = [float(x1), float(y1), float(x2), float(y2)]
    except ValueError:
        raise UserError(f"{source}: box coordinates {x1}, {y1}, {x2}, {y2} are not numbers") from None
    if not (box[2] > box[0] and box[3] > box[1]) or min(box) < 0:
        raise UserError(f"{source}: box {box} is not [x1, y1, x2, y2] with x2 > x1, y2 > y1 >= 0")
    return box


def iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def consensus(boxes: list[dict], *, min_iou: float, min_readers: int) -> list[dict]:
    """Boxes of one image from several readers → one box per finding that enough readers agree on.

    Greedy per label: each box joins the first cluster (of other readers) whose mean box it overlaps
    with IoU >= ``min_iou``; a cluster with >= ``min_readers`` readers (capped at the number of readers
    of the image) becomes the mean box, reader ``consensus``."""
    readers = {b["reader"] for b in boxes}
    need = min(min_readers, max(1, len(readers)))
    out = []
    for label in sorted({b["label"] for b in boxes}):
        clusters: list[list[dict]] = []
        for b in sorted((b for b in boxes if b["label"] == label), key=lambda b: (b["reader"], b["box"])):
            for c in clusters:
                mean = [sum(x["box"][i] for x in c) / len(c) for i in range(4)]
                if b["reader"] not in {x["reader"] for x in c} and iou(mean, b["box"]) >= min_iou:
                    c.append(b)
                    break
            else:
                clusters.append([b])
        for c in clusters:
            if len({x["reader"] for x in c}) >= need:
                box = [round(sum(x["box"][i] for x in c) / len(c), 1) for i in range(4)]
                out.append({"label": label, "box": box, "reader": "consensus", "readers": len(c)})
    return out


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
    for col, default in (("findings", ""), ("impression", ""), ("split", "")):
        df[col] = df[col].fillna(default)
    return df
