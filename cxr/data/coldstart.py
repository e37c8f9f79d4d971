"""Grounded-reasoning cold-start samples built deterministically from labels and boxes.

Each sample is what the seed's stage 2 trains on: ``<think> step 1 … [x1, y1, x2, y2] …; step 2 …
</think> The answer is: \\boxed{answer}``, with boxes in model-input pixels. Steps cite the
annotated box of each finding involved; statements about the whole image cite the image content
box (the letterbox without its padding). Templates vary with a seeded RNG per record. Every sample
passes the seed's format check and parses back to the record's answer (tested).
(b) — samples from a teacher model through ``cxr.inference`` with reward-based rejection — is not
built yet.
"""

from __future__ import annotations

import json
import random

import pandas as pd

from cxr.format import ResizeRecord
from cxr.format.boxes import FIELDS

LOOK = ["Looking at", "Examining", "Inspecting", "Reviewing", "Checking"]
SEE = ["shows", "demonstrates", "reveals", "contains"]
CLEAR = ["appears clear", "shows no abnormality", "looks unremarkable", "has no focal finding"]


def _fmt(box: list[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in box) + "]"


def content_box(row) -> list[int]:
    """The image content (letterbox without padding) in model-input pixels."""
    shard = ResizeRecord.from_row(row)
    size = int(row["size"])
    sx, sy = int(row["input_w"]) / size, int(row["input_h"]) / size
    return [
        round(shard.pad_left * sx),
        round(shard.pad_top * sy),
        round((shard.pad_left + shard.content_w) * sx),
        round((shard.pad_top + shard.content_h) * sy),
    ]


def reasoning_for(record: dict, whole: list[int], rng: random.Random) -> str:
    boxes = json.loads(record["boxes"]) if isinstance(record["boxes"], str) else record["boxes"]
    steps = [f"{rng.choice(LOOK)} the whole radiograph {_fmt(whole)} to orient the anatomy"]
    for b in boxes:
        steps.append(f"the region {_fmt(b['box'])} {rng.choice(SEE)} {b['label']}")
    unboxed = [lab for lab in record["labels"] if lab not in {b["label"] for b in boxes}]
    for lab in unboxed:
        steps.append(f"the overall appearance {_fmt(whole)} is consistent with {lab}")
    if not record["labels"]:
        steps.append(f"the lung fields {_fmt(whole)} {rng.choice(CLEAR)}")
    steps.append(f"so the answer to the question is {record['answer']}")
    return "; ".join(f"step {i}: {s}" for i, s in enumerate(steps, 1))


def coldstart_samples(records: pd.DataFrame, index: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One sample per record: the record plus ``completion`` (reasoning and boxed answer)."""
    geo = index.set_index("image_id")[[*FIELDS, "size"]]
    out = records.copy()
    completions = []
    for rec in records.to_dict("records"):
        row = {**geo.loc[rec["image_id"]].to_dict(), "input_w": rec["input_w"], "input_h": rec["input_h"]}
        rng = random.Random(f"{seed}:{rec['record_id']}")
        think = reasoning_for(rec, content_box(row), rng)
        completions.append(f"<think> {think} </think> The answer is: \\boxed{{{rec['answer']}}}")
    out["completion"] = completions
    return out
