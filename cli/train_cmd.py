"""``cxr train …``: training stages through the jobs layer."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config.schema import SftConfig

app = typer.Typer(
    help="Training: stage 1 instruction SFT and stage 2 cold start (sft).", no_args_is_help=True
)


@app.command(
    "sft", epilog="Example: cxr train sft -c configs/sft.yaml data=runs/data shards=runs/shards out=runs/sft"
)
def sft(
    executor: str | None = typer.Option(
        None, "--executor", "-e", help="local | slurm | debug (sets executor.kind)."
    ),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """TRL SFT on the VLM from `cxr build-data` records; resumes from the latest checkpoint in `out`."""
    from jobs.sft import train_sft

    cfg = stage_config(
        SftConfig, config, ([f"executor.kind={executor}"] if executor else []) + list(overrides or [])
    )
    path = train_sft(cfg)
    Console().print(f"stage {cfg.stage}: model exported to [bold]{path}[/]")
