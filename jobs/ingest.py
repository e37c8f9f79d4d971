"""The ingest job: a public dataset's adapter and the plan in this process, then the same array of
shard writers as ``cxr preprocess`` (``jobs/preprocess.write_planned``) and the merge of the tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxr.config.schema import IngestConfig
from jobs.preprocess import write_planned
from preprocessing.ingest import as_preprocess, plan_ingest
from preprocessing.run import merge_tables


def ingest(cfg: IngestConfig, log=print) -> pd.DataFrame:
    shards = Path(cfg.shards)
    shards.mkdir(parents=True, exist_ok=True)
    early = plan_ingest(cfg, shards, log)
    write_planned(as_preprocess(cfg), shards, log)
    _, manifest = merge_tables(shards, early)
    return manifest
