"""Instruction records from shards: the seed's tasks, image references (never pixels), patient splits.

Tasks: findings report generation, VQA (closed yes/no, multiple choice, short open), finding lists
(``a|b|c``), grounding (box for a named finding). Boxes come from the RIS export in original-image
pixels and are mapped into the *model-input* pixels the model sees: original → shard letterbox
(the shard's ResizeRecord) → the processor's resize of the stored square (``smart_resize``). When the
RIS named the image a box was drawn on (its ``image_id``), only that image of the study gets it.
Splits are by patient pseudonym, so no patient is in two splits; records with a ``split`` column (an
ingested dataset's official, patient-level split, see ``cxr ingest``) keep theirs.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import pandas as pd

from cxr.errors import UserError
from cxr.format import REPORT_INSTRUCTION, ResizeRecord, smart_resize_record
from cxr.format.boxes import boxes_on

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "val": "val", "validate": "val", "valid": "val", "test": "test"}
CHOICES = "ABCD"
RECORD_COLUMNS = [
    "record_id",
    "split",
    "task",
    "patient_id",
    "study_id",
    "image_id",
    "shard",
    "index",
    "question",
    "answer",
    "boxes",
    "labels",
    "input_w",
    "input_h",
]


def split_of(patient_id: str, fractions: list[float], seed: int) -> str:
    u = int(hashlib.sha256(f"{seed}:{patient_id}".encode()).hexdigest()[:12], 16) / 16**12
    edge = 0.0
    for name, f in zip(SPLITS, fractions, strict=True):
        edge += f
        if u < edge:
            return name
    return SPLITS[-1]


def to_model_input(box: list[float], shard_rec: ResizeRecord, input_rec: ResizeRecord) -> list[int]:
    """Original-image pixels → the stored letterboxed square → the model's input pixels, composed in
    floats and rounded outward once (two integer steps would add up to two pixels of slack)."""
    x1, y1, x2, y2 = box
    sx, sy = shard_rec.scale_x * input_rec.scale_x, shard_rec.scale_y * input_rec.scale_y
    ox = shard_rec.pad_left * input_rec.scale_x + input_rec.pad_left
    oy = shard_rec.pad_top * input_rec.scale_y + input_rec.pad_top
    out = [
        math.floor(x1 * sx + ox + 1e-6),
        math.floor(y1 * sy + oy + 1e-6),
        math.ceil(x2 * sx + ox - 1e-6),
        math.ceil(y2 * sy + oy - 1e-6),
    ]
    w, h = input_rec.input_w, input_rec.input_h
    return [min(max(out[0], 0), w), min(max(out[1], 0), h), min(max(out[2], 0), w), min(max(out[3], 0), h)]


def load_shards(shards: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    shards = Path(shards)
    if not (shards / "index.parquet").is_file():
        raise UserError(f"{shards} has no index.parquet: not a shards folder (run `cxr preprocess` first)")
    if not (shards / "records.parquet").is_file():
        raise UserError(
            f"{shards} has no records.parquet: preprocess with ris=PATH to attach reports and labels"
        )
    return pd.read_parquet(shards / "index.parquet"), pd.read_parquet(shards / "records.parquet")


def _shard_rec(row) -> ResizeRecord:
    return ResizeRecord.from_row(row._asdict())


def build_records(
    index: pd.DataFrame,
    records: pd.DataFrame,
    *,
    tasks: list[str],
    fractions: list[float],
    seed: int,
    min_pixels: int,
    max_pixels: int,
    vocabulary: list[str] | None = None,
    official_split: bool = True,
) -> pd.DataFrame:
    records = records.rename(columns={"split": "split_official"})
    if not official_split:
        records = records.drop(columns="split_official", errors="ignore")
    joined = index.merge(records, on="accession_id", how="inner")
    vocab = sorted(vocabulary or {lab for labs in joined["labels"] for lab in labs})
    out = []
    for row in joined.sort_values(["patient_id", "study_id", "image_id"]).itertuples(index=False):
        rng = random.Random(f"{seed}:{row.image_id}")
        labels = sorted(row.labels)
        size = int(row.size)
        input_rec = smart_resize_record(size, size, min_pixels=min_pixels, max_pixels=max_pixels)
        shard_rec = _shard_rec(row)
        boxes = [  # a box the RIS drew on a named image goes to that image only
            {
                **{k: v for k, v in b.items() if k != "image_id"},
                "box": to_model_input(b["box"], shard_rec, input_rec),
            }
            for b in boxes_on(json.loads(row.boxes or "[]"), row.image_id)
        ]
        official = str(getattr(row, "split_official", "") or "")  # an ingested dataset's own split
        base = {
            "split": SPLIT_ALIASES.get(official, "") or split_of(row.patient_id, fractions, seed),
            "patient_id": row.patient_id,
            "study_id": row.study_id,
            "image_id": row.image_id,
            "shard": int(row.shard),
            "index": int(row.index),
            "labels": labels,
            "input_w": input_rec.input_w,
            "input_h": input_rec.input_h,
        }

        def add(
            task: str, question: str, answer: str, task_boxes: list | None = None, base: dict = base
        ) -> None:
            out.append(
                {
                    **base,
                    "record_id": f"{base['image_id']}-{task}-{len(out)}",
                    "task": task,
                    "question": question,
                    "answer": answer,
                    "boxes": json.dumps(task_boxes or []),
                }
            )

        if "report" in tasks and row.findings:
            add("report", REPORT_INSTRUCTION, str(row.findings), boxes)
        if "vqa_closed" in tasks and vocab:
            finding = rng.choice(vocab)
            add(
                "vqa_closed",
                f"Is there {finding} in this chest X-ray?",
                "yes" if finding in labels else "no",
                [b for b in boxes if b["label"] == finding],
            )
        if "vqa_choice" in tasks and vocab:
            options = rng.sample(vocab, min(3, len(vocab)))
            present = [o for o in options if o in labels]
            options.append("none of these")
            correct = CHOICES[options.index(present[0])] if present else CHOICES[len(options) - 1]
            text = " ".join(f"({c}) {o}" for c, o in zip(CHOICES, options, strict=False))
            add(
                "vqa_choice",
                f"Which of the following findings is present in this chest X-ray? {text}. "
                "Answer with the letter.",
                correct,
                [b for b in boxes if b["label"] in present[:1]],
            )
        if "vqa_open" in tasks and row.view in ("PA", "AP", "LAT"):
            add("vqa_open", "What is the projection of this chest radiograph?", str(row.view))
        if "findings" in tasks:
            add(
                "findings",
                "List all findings in this chest X-ray, separated by '|'.",
                "|".join(labels) if labels else "none",
                boxes,
            )
        if "grounding" in tasks:
            for b in boxes:
                add(
                    "grounding",
                    f"Locate the {b.get('text') or b['label']} in this chest X-ray and give its bounding box as "
                    "[x_min, y_min, x_max, y_max].",
                    json.dumps(b["box"]).replace(" ", ""),
                    [b],
                )
    return pd.DataFrame(out, columns=RECORD_COLUMNS)
