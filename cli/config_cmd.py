"""``cxr config …``: see a stage's resolved config before running it."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config import STAGES, to_yaml
from cxr.errors import UserError

app = typer.Typer(help="Configs: print a stage's resolved config.", no_args_is_help=True)


@app.command(
    "show", epilog="Example: cxr config show generate -c configs/generate.yaml sampling.temperature=0"
)
def show(
    stage: str = typer.Argument(..., help=f"One of: {', '.join(STAGES)}."),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Print the config a stage would run with: defaults ← YAML ← overrides (secrets as references)."""
    if stage not in STAGES:
        raise UserError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    typer.echo(to_yaml(stage_config(STAGES[stage], config, overrides)), nl=False)
