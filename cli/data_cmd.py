"""``cxr synth`` and ``cxr preprocess``: archives in, de-identified shards out."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config.schema import BuildDataConfig, PreprocessConfig

BUILD_EPILOG = "Example: cxr build-data runs/shards runs/data seed=0 'split=[0.8,0.1,0.1]'"
SYNTH_EPILOG = "Example: cxr synth runs/archive --studies 50 --seed 0 --min-size 400 --max-size 600"
PREPROCESS_EPILOG = (
    "Example: cxr preprocess runs/archive/dicom runs/shards -e slurm executor.partition=cpu "
    "executor.array_parallelism=20   (with CXR_DEID_KEY set to the site key)"
)


def synth(
    archive: Path = typer.Argument(..., help="Folder to create: dicom/, ris/ris.csv, truth.json."),
    studies: int = typer.Option(20, "--studies", "-n", help="Number of studies (1–2 images each)."),
    seed: int = typer.Option(0, "--seed", "-s", help="Everything follows from it."),
    min_size: int = typer.Option(2000, help="Smallest image side in pixels."),
    max_size: int = typer.Option(3000, help="Largest image side in pixels."),
    bad_share: float = typer.Option(0.1, help="Share of studies whose first file is broken on purpose."),
) -> None:
    """Write a synthetic hospital archive (CXR DICOMs in many transfer syntaxes, PHI canaries, bad files)."""
    from collections import Counter

    from cxr.errors import UserError
    from preprocessing.synth import SynthSpec, synth_archive

    if studies < 1 or not 64 <= min_size <= max_size or not 0 <= bad_share <= 1:
        raise UserError("need studies >= 1, 64 <= min-size <= max-size and 0 <= bad-share <= 1")
    truth = synth_archive(
        archive,
        SynthSpec(studies=studies, seed=seed, min_size=min_size, max_size=max_size, bad_share=bad_share),
    )
    kinds = Counter(v.get("syntax") or f"bad:{v['bad']}" for v in truth["files"].values())
    Console().print(
        f"{len(truth['files'])} files in {archive / 'dicom'}: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    for note in truth["notes"]:
        Console().print(f"note: {note}")


def preprocess(
    archive: Path = typer.Argument(..., help="Folder of DICOM files (any depth, any names)."),
    shards: Path = typer.Argument(
        ..., help="Output folder: shard-*.h5, index.parquet, manifest.parquet, private/."
    ),
    executor: str | None = typer.Option(
        None, "--executor", "-e", help="local | slurm | debug (sets executor.kind)."
    ),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """DICOM archive → de-identified HDF5 shards; every input file accounted for in manifest.parquet."""
    from jobs.preprocess import preprocess as run
    from preprocessing.run import summary

    extra = [f"archive={archive}", f"shards={shards}"] + ([f"executor.kind={executor}"] if executor else [])
    cfg = stage_config(PreprocessConfig, config, extra + list(overrides or []))
    console = Console()
    manifest = run(cfg, log=lambda line: console.print(line, highlight=False))
    for line in summary(manifest):
        console.print(line, highlight=False)


def build_data(
    shards: Path = typer.Argument(..., help="A shards folder from `cxr preprocess` (with records.parquet)."),
    out: Path = typer.Argument(..., help="Output folder: train/val/test.parquet, coldstart-*.parquet."),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Instruction records (report, VQA, finding lists, grounding) and grounded cold-start samples; split by patient."""
    from cxr.data.build import build_dataset

    cfg = stage_config(BuildDataConfig, config, [f"shards={shards}", f"out={out}"] + list(overrides or []))
    counts = build_dataset(cfg)
    Console().print(f"records written to {out}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
