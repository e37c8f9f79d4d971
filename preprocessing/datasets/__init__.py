"""One adapter per public dataset: ``load(cfg: IngestConfig) -> pandas.DataFrame`` with one row per image
(see ``common.IMAGE_COLUMNS``); ``preprocessing/ingest.py`` turns it into shards and records."""

from __future__ import annotations

import importlib

from cxr.errors import UserError

DATASETS = {
    "mimic-cxr": "mimic",
    "mimic-cxr-jpg": "mimic",
    "chexpert": "chexpert",
    "vindr-cxr": "vindr",
    "ms-cxr": "ms_cxr",
    "padchest": "padchest",
}


def adapter(name: str):
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return importlib.import_module(f"preprocessing.datasets.{DATASETS[name]}")
