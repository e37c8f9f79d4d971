"""``cxr ingest DATASET ROOT SHARDS``: a public CXR dataset → the same shards as ``cxr preprocess``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config.schema import IngestConfig

EPILOG = (
    "Example: cxr ingest mimic-cxr-jpg /data/mimic-cxr-jpg/2.1.0 runs/shards-mimic -e slurm "
    "executor.partition=cpu   (with CXR_DEID_KEY set; then cxr build-data runs/shards-mimic runs/data "
    "-c configs/data/mimic-cxr-jpg.yaml)"
)


def ingest(
    dataset: str = typer.Argument(
        ..., help="mimic-cxr | mimic-cxr-jpg | chexpert | vindr-cxr | ms-cxr | padchest"
    ),
    root: Path = typer.Argument(..., help="The dataset folder as you downloaded it (never fetched by cxr)."),
    shards: Path = typer.Argument(
        ..., help="Output folder: shard-*.h5, index/manifest/records.parquet, private/."
    ),
    executor: str | None = typer.Option(
        None, "--executor", "-e", help="local | slurm | debug (sets executor.kind)."
    ),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Public dataset → pseudonymised shards + records (reports, labels, boxes per reader, official split)."""
    from jobs.ingest import ingest as run
    from preprocessing.run import summary

    extra = [f"dataset={dataset}", f"root={root}", f"shards={shards}"]
    extra += [f"executor.kind={executor}"] if executor else []
    cfg = stage_config(IngestConfig, config, extra + list(overrides or []))
    console = Console()
    manifest = run(cfg, log=lambda line: console.print(line, highlight=False))
    for line in summary(manifest):
        console.print(line, highlight=False)
