"""``cxr train …``: training stages through the jobs layer."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config.schema import GrpoConfig, SftConfig

app = typer.Typer(
    help="Training: stage 1 instruction SFT and stage 2 cold start (sft); stage 3 online GRPO (grpo).",
    no_args_is_help=True,
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


@app.command(
    "grpo",
    epilog="Example: cxr train grpo -c configs/grpo.yaml data=runs/data shards=runs/shards "
    "model.path=runs/sft-stage2/export out=runs/grpo",
)
def grpo(
    executor: str | None = typer.Option(
        None, "--executor", "-e", help="local | slurm | debug (sets executor.kind)."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the sbatch script(s) (and the vLLM server command) instead of submitting.",
    ),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Stage 3: online GRPO with vLLM rollouts (colocate | server | hf) from stage 2's export; resumes
    from the latest checkpoint in `out`. Rewards: reward.preset=deepmedix (the seed's) or corrected."""
    from jobs.grpo import dry_run as preview
    from jobs.grpo import train_grpo

    cfg = stage_config(
        GrpoConfig, config, ([f"executor.kind={executor}"] if executor else []) + list(overrides or [])
    )
    if dry_run:
        typer.echo(preview(cfg))
        return
    path = train_grpo(cfg)
    Console().print(f"stage 3 (grpo): model exported to [bold]{path}[/]")
