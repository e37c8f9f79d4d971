"""One adapter per public dataset: ``load(cfg: IngestConfig) -> pandas.DataFrame`` with one row per image
(see ``common.IMAGE_COLUMNS``); ``preprocessing/ingest.py`` turns it into shards and records."""

from __future__ import annotations

from cxr.errors import UserError
from preprocessing.datasets import chexpert, mimic, ms_cxr, padchest, vindr

DATASETS = {
    "mimic-cxr": mimic,
    "mimic-cxr-jpg": mimic,
    "chexpert": chexpert,
    "vindr-cxr": vindr,
    "ms-cxr": ms_cxr,
    "padchest": padchest,
}


def adapter(name: str):
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return DATASETS[name]
