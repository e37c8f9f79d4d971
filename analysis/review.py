"""Image review: sampled shard images with the model's boxes (and reference boxes) drawn on them.

Score rows carry ``boxes_original`` (original-image pixels: ``cxr score`` maps the model's input boxes
back through the input resize and the shard's letterbox). The shard stores the letterboxed image, so
drawing maps them forward again through the index row's geometry (``ResizeRecord.to_input``).
Reference boxes from ``cxr build-data`` are in model-input pixels of the *stored square* image
resized to ``input_w × input_h``; they go back to stored pixels through that resize.
Only pseudonymous ids (study_id, image_id) and the view are shown; shards' ``private/`` is never read.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import plots
from cxr.data.shards import ShardDataset
from cxr.errors import UserError
from cxr.format.boxes import ResizeRecord

PRED, REF = "#e4572e", "#2ca02c"


def stored_from_original(index_row, box) -> list[int]:
    """A box in original-image pixels → pixels of the image as stored in the shard (letterboxed)."""
    return ResizeRecord.from_row(index_row).to_input([float(v) for v in box])


def stored_from_input(size: int, input_w: int, input_h: int, box) -> list[int]:
    """A reference box in model-input pixels (``build-data``: the stored square resized) → stored pixels."""
    return ResizeRecord(size, size, int(input_w), int(input_h)).to_original([float(v) for v in box])


def _boxes(cell) -> list:
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    if isinstance(cell, str):
        cell = json.loads(cell or "[]")
    return [list(b) if not isinstance(b, dict) else b for b in cell]


def sample_images(scores: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """Up to ``n`` image ids, images with predicted boxes first (those are what a reviewer checks)."""
    n_boxes = scores["boxes_original"].map(lambda c: len(_boxes(c)))
    return sample_from_counts(n_boxes.groupby(scores["image_id"]).sum(), n, seed)


def sample_from_counts(boxes_per_image: pd.Series, n: int, seed: int = 0) -> list[str]:
    """The same draw from a per-image box count (image_id → count), e.g. counted by DuckDB."""
    has = boxes_per_image > 0
    rng = random.Random(seed)
    with_boxes, without = sorted(has[has].index), sorted(has[~has].index)
    rng.shuffle(with_boxes)
    rng.shuffle(without)
    return (with_boxes + without)[:n]


def _png(image: np.ndarray, pred: list[tuple[str, list[int]]], ref: list[tuple[str, list[int]]]) -> bytes:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    h, w = image.shape[:2]
    fig = plt.figure(figsize=(4, 4 * h / w))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for color, boxes, style in ((REF, ref, "--"), (PRED, pred, "-")):
        for label, (x1, y1, x2, y2) in boxes:
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, lw=2, ls=style))
            ax.text(x1, max(y1 - 1, 0), label, color=color, fontsize=7, va="bottom")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    return plots.png_bytes(fig, dpi=max(64, int(w / 4)))


def review_items(
    scores: pd.DataFrame,
    shards: str | Path,
    n: int = 12,
    references: pd.DataFrame | None = None,
    seed: int = 0,
    ids: list[str] | None = None,
) -> list[dict]:
    """One dict per sampled image (or per image of ``ids``, already drawn): ids, view, a PNG data URI,
    and per task the answer and boxes."""
    ds = ShardDataset(shards)
    try:
        pos = {iid: i for i, iid in enumerate(ds.index["image_id"])}
        items = []
        for iid in ids if ids is not None else sample_images(scores, n, seed):
            if iid not in pos:
                raise UserError(
                    f"{shards}: image {iid} of the scores is not in index.parquet (wrong --shards?)"
                )
            item = ds[pos[iid]]
            row = ds.index.iloc[pos[iid]]
            rows = scores[scores["image_id"] == iid].sort_values("task")
            pred = [
                (t, stored_from_original(row, b))
                for t, cell in zip(rows["task"], rows["boxes_original"], strict=True)
                for b in _boxes(cell)
            ]
            ref = []
            if references is not None:
                for r in references[references["image_id"] == iid].itertuples(index=False):
                    for b in _boxes(r.boxes):
                        label, box = (b.get("label", ""), b["box"]) if isinstance(b, dict) else ("", b)
                        ref.append((label, stored_from_input(int(row["size"]), r.input_w, r.input_h, box)))
                ref = list({(lab, tuple(b)): (lab, b) for lab, b in ref}.values())  # one box per label/place
            items.append(
                {
                    "study_id": str(row["study_id"]),
                    "image_id": str(iid),
                    "view": str(row.get("view", "")),
                    "png": plots.data_uri(_png(np.asarray(item["image"]), pred, ref)),
                    "n_pred": len(pred),
                    "n_ref": len(ref),
                    "tasks": [
                        {"task": t, "answer": "" if a is None else str(a), "format_ok": bool(ok)}
                        for t, a, ok in zip(rows["task"], rows["answer"], rows["format_ok"], strict=True)
                    ],
                }
            )
        return items
    finally:
        ds.close()
