"""Reading and joining what ``cxr eval`` compares: score rows, build-data references, shard index.

Join: on ``record_id`` when the scores were asked the records' own questions (``cxr score
records=…``); otherwise on (image_id, task) for the fixed prompts whose records match one to one:
report ↔ report, findings ↔ findings, view ↔ vqa_open. Slice columns: ``view`` comes with the score
rows, ``sex`` and ``age_band`` from the shards' ``index.parquet`` by image_id. Nothing else of the
index or the references (patient ids, accession ids) is carried into the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cxr.errors import UserError

SCORE_COLUMNS = ("image_id", "task", "answer", "format_ok", "boxes")
REFERENCE_COLUMNS = ("record_id", "task", "image_id", "answer", "boxes")
PROMPT_TO_RECORD = {"report": "report", "findings": "findings", "view": "vqa_open"}
INDEX_SLICES = ("sex", "age_band")


def _missing(df: pd.DataFrame, need: tuple[str, ...], what: str) -> None:
    gone = [c for c in need if c not in df.columns]
    if gone:
        raise UserError(f"{what} lacks column(s) {', '.join(gone)}")


def load_scores(folder: str | Path) -> pd.DataFrame:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"scores={folder} is not a folder (a `cxr score` output folder)")
    if not any(folder.glob("part-*.parquet")):
        raise UserError(f"scores={folder} has no part-*.parquet: not a `cxr score` output folder")
    df = pd.read_parquet(folder)
    _missing(df, SCORE_COLUMNS, f"scores={folder}")
    return df.reset_index(drop=True)


def load_references(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"references={path} does not exist (a `cxr build-data` split, e.g. DATA/test.parquet)"
        )
    try:
        df = pd.read_parquet(path)
    except Exception as e:
        raise UserError(f"references={path} is not a parquet file ({type(e).__name__})") from None
    _missing(df, REFERENCE_COLUMNS, f"references={path}")
    return df


def run_shards(scores: str | Path) -> str:
    """The shards folder the score run read (its ``_run.json``), or "" when it cannot be told."""
    rec = Path(scores) / "_run.json"
    try:
        return str(json.loads(rec.read_text())["config"].get("shards") or "")
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def attach_slices(scores: pd.DataFrame, shards: str, slices: list[str]) -> tuple[pd.DataFrame, dict]:
    """Adds ``sex`` / ``age_band`` from the shard index; returns the reasons for slices left out."""
    skipped: dict[str, str] = {}
    if "view" in slices and "view" not in scores.columns:
        skipped["slice:view"] = "the score rows have no view column"
    wanted = [s for s in INDEX_SLICES if s in slices]
    if not wanted:
        return scores, skipped
    index_path = Path(shards) / "index.parquet" if shards else None
    if index_path is None or not index_path.is_file():
        for s in wanted:
            skipped[f"slice:{s}"] = (
                "no shards index.parquet (set shards=…)" if not shards else f"{index_path} missing"
            )
        return scores, skipped
    index = pd.read_parquet(index_path)
    have = [s for s in wanted if s in index.columns]
    for s in set(wanted) - set(have):
        skipped[f"slice:{s}"] = f"{index_path} has no {s} column"
    if have:
        extra = index[["image_id", *have]].drop_duplicates("image_id")
        scores = scores.drop(columns=[c for c in have if c in scores.columns]).merge(
            extra, on="image_id", how="left"
        )
    return scores, skipped


def join(scores: pd.DataFrame, refs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Score rows with their reference (``ref_answer``, ``ref_boxes``); ``task`` is the record's task."""
    keep = ["record_id", "task", "image_id", "answer", "boxes"] + (
        ["input_w"] if "input_w" in refs.columns else []
    )
    r = refs[keep].rename(columns={"answer": "ref_answer", "boxes": "ref_boxes", "task": "ref_task"})
    if "record_id" in scores.columns and scores["record_id"].notna().any():
        on = "record_id"
        joined = scores.merge(r.drop(columns=["image_id"]), on="record_id", how="inner")
    else:
        on = "image_id+task"
        s = scores[scores["task"].isin(list(PROMPT_TO_RECORD))].assign(
            ref_task=lambda d: d["task"].map(PROMPT_TO_RECORD)
        )
        r = r.drop_duplicates(["image_id", "ref_task"])
        joined = s.merge(r.drop(columns=["record_id"]), on=["image_id", "ref_task"], how="inner")
    if joined.empty:
        raise UserError(
            f"no score row matches a reference (joined on {on}): are SCORES and --references from the same shards?"
        )
    joined = joined.drop(columns=["task"]).rename(columns={"ref_task": "task"})
    joined["ref_boxes"] = [_ref_boxes(b) for b in joined["ref_boxes"]]
    return joined.reset_index(drop=True), on


def box_scale(joined: pd.DataFrame, scores: str | Path, shards: str) -> tuple[np.ndarray, str]:
    """Per joined row, the factor from the score run's model-input pixels to the references'.

    Both are resizes of the same stored square (``smart_resize`` within each run's image bounds), so
    when ``cxr score`` ran with other ``image.min/max_pixels`` than ``cxr build-data`` the predicted
    boxes are scaled to the references' input size instead of being compared in another space."""
    ones = np.ones(len(joined))
    try:
        image = json.loads((Path(scores) / "_run.json").read_text())["config"]["image"]
        index = pd.read_parquet(Path(shards) / "index.parquet", columns=["image_id", "size"])
    except (OSError, ValueError, KeyError, TypeError):
        return ones, "boxes compared as stated (score run image bounds or shard sizes unknown)"
    if "input_w" not in joined.columns:
        return ones, "boxes compared as stated (references have no input_w)"
    from cxr.format import smart_resize_record

    sizes = dict(zip(index["image_id"], index["size"], strict=True))
    bounds = {"min_pixels": int(image["min_pixels"]), "max_pixels": int(image["max_pixels"])}
    widths = {int(sz): smart_resize_record(int(sz), int(sz), **bounds).input_w for sz in set(sizes.values())}
    factor = np.array(
        [
            ref_w / widths[int(sizes[i])] if i in sizes and ref_w == ref_w else 1.0
            for i, ref_w in zip(joined["image_id"], joined["input_w"], strict=True)
        ]
    )
    if np.allclose(factor, 1.0):
        return ones, "boxes in the same model-input pixels as the references"
    return factor, f"predicted boxes scaled to the references' input size (score run bounds {bounds})"


def _ref_boxes(value) -> list[list[float]]:
    items = json.loads(value) if isinstance(value, str) else list(value if value is not None else [])
    return [list(map(float, b["box"] if isinstance(b, dict) else b)) for b in items]
