"""A public dataset → the shards contract of ``cxr preprocess`` (run by ``jobs/ingest.py``).

The adapter lists images with their keys, view, labels, report sections, boxes and official split;
here every dataset id becomes a keyed pseudonym (the mapping and the source paths go to ``private/``
only), the plan and ``private/files.parquet`` are written in the form the shard writer reads, and
``records.parquet`` gets one row per image (its accession pseudonym), so ``cxr build-data`` reads
ingested and hospital shards alike. Boxes stay in original-image pixels, ``[x1, y1, x2, y2]``, with
the reader id (or ``consensus``); build-data maps them through the shard's resize record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cxr.config.load import resolve_secret
from cxr.config.schema import IngestConfig, PreprocessConfig
from cxr.errors import UserError
from preprocessing.datasets import adapter
from preprocessing.datasets.common import IMAGE_COLUMNS, consensus
from preprocessing.deid import Pseudonymizer
from preprocessing.discover import extend_plan
from preprocessing.run import check_folder, private_dir
from preprocessing.shards import _atomic_parquet

RECORD_COLUMNS = ["accession_id", "findings", "impression", "labels", "boxes", "split"]


def as_preprocess(cfg: IngestConfig) -> PreprocessConfig:
    """The shard writer's settings (paths in private/files.parquet are absolute, so archive is '/')."""
    return PreprocessConfig(
        archive="/",
        shards=cfg.shards,
        size=cfg.size,
        dtype=cfg.dtype,
        studies_per_shard=cfg.studies_per_shard,
        shards_per_task=cfg.shards_per_task,
        views=list(cfg.views),
        key=cfg.key,
        compression_level=cfg.compression_level,
        executor=cfg.executor,
    )


def load_images(cfg: IngestConfig) -> pd.DataFrame:
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: expected the {cfg.dataset} dataset folder as downloaded")
    df = adapter(cfg.dataset).load(cfg)
    assert list(df.columns) == IMAGE_COLUMNS, df.columns
    if not len(df):
        raise UserError(f"{root}: no images listed; expected the {cfg.dataset} layout (see README)")
    dup = df["image"].duplicated()
    if dup.any():
        raise UserError(
            f"{root}: image {df['image'][dup].iloc[0]} is listed twice; expected one row per image"
        )
    if cfg.boxes == "consensus":
        df["boxes"] = [
            consensus(b, min_iou=cfg.consensus_iou, min_readers=cfg.consensus_min_readers) if b else []
            for b in df["boxes"]
        ]
    return df


def check_target(cfg: IngestConfig, shards: Path) -> None:
    """A shards folder holds one source: refuse another dataset's (or `cxr preprocess`'s) shards."""
    marker = shards / "dataset.json"
    if marker.is_file():
        was = json.loads(marker.read_text()).get("dataset")
        if was != cfg.dataset:
            raise UserError(f"{shards} holds {was} shards; expected an empty folder or {cfg.dataset} shards")
    elif (shards / "plan.parquet").is_file():
        raise UserError(f"{shards} holds `cxr preprocess` shards; expected an empty folder for `cxr ingest`")


def plan_ingest(cfg: IngestConfig, shards: Path, log=print) -> pd.DataFrame:
    """Pseudonymise, write private/files.parquet, plan.parquet and records.parquet; returns the
    manifest rows of images that never reach a shard (views not asked for)."""
    key = resolve_secret(cfg.key, "ingest.key").encode()
    if len(key) < 16:
        raise UserError("'ingest.key': the de-identification key must be at least 16 bytes")
    p = Pseudonymizer(key)
    check_target(cfg, shards)
    settings = {"size": cfg.size, "dtype": cfg.dtype, "views": sorted(cfg.views), "boxes": cfg.boxes}
    old = check_folder(shards, settings, p)  # one folder never mixes settings or keys
    df = load_images(cfg)
    # MIMIC-CXR, MIMIC-CXR-JPG and MS-CXR (on MIMIC images) share ids, so they share pseudonyms
    ds = "mimic-cxr" if cfg.dataset in ("mimic-cxr", "mimic-cxr-jpg", "ms-cxr") else cfg.dataset
    files = pd.DataFrame(
        {
            "file_id": [p.pseudonym("file", f"{cfg.dataset}:{x}") for x in df["image"]],
            "rel": df["path"].astype(str),
            "patient_id": [p.pseudonym("patient", f"{ds}:{x}") for x in df["patient"]],
            "study_id": [p.pseudonym("study", f"{ds}:{x}") for x in df["study"]],
            "image_id": [p.pseudonym("image", f"{ds}:{x}") for x in df["image"]],
            "accession_id": [p.pseudonym("accession", f"{ds}:{x}") for x in df["image"]],
            "modality": "",  # not published by the datasets (CR and DX mixed)
            "view": df["view"],
            "sex": df["sex"],
            "age_band": df["age_band"],
            "study_date": None,
            "pixel_spacing_mm": None,
        }
    )
    keep = files["view"].isin(list(cfg.views))
    early = pd.DataFrame(
        {
            "file_id": files.loc[~keep, "file_id"],
            "status": "skipped",
            "reason": [f"view {v} is not among {', '.join(cfg.views)}" for v in files.loc[~keep, "view"]],
        }
    )
    log(
        f"{cfg.dataset}: {len(df)} images in {df['study'].nunique()} studies of {df['patient'].nunique()} patients"
    )
    priv = private_dir(shards)
    ids = (
        df[["patient", "study", "image", "path"]]
        .astype(str)
        .assign(patient_id=files["patient_id"], study_id=files["study_id"], image_id=files["image_id"])
    )
    _atomic_parquet(ids, priv / "ids.parquet")
    files = files[keep].reset_index(drop=True)
    _atomic_parquet(files, priv / "files.parquet")
    plan = extend_plan(old, list(files["study_id"]), cfg.studies_per_shard)
    plan.attrs = {"settings": settings}
    _atomic_parquet(plan, shards / "plan.parquet")
    records = pd.DataFrame(
        {
            "accession_id": [p.pseudonym("accession", f"{ds}:{x}") for x in df["image"]],
            "findings": df["findings"].astype(str),
            "impression": df["impression"].astype(str),
            "labels": [sorted(x) for x in df["labels"]],
            "boxes": [json.dumps(b) for b in df["boxes"]],
            "split": df["split"].astype(str),
        },
        columns=RECORD_COLUMNS,
    )
    _atomic_parquet(records.sort_values("accession_id").reset_index(drop=True), shards / "records.parquet")
    (shards / "dataset.json").write_text(json.dumps({"dataset": cfg.dataset, "boxes": cfg.boxes}) + "\n")
    return early.reset_index(drop=True)
