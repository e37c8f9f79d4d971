"""Small pieces the sub-commands share: global state, the overrides argument, config loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from cxr.config import load_config


@dataclass
class _State:
    debug: bool = False


STATE = _State()

OVERRIDES = typer.Argument(
    None, metavar="[KEY=VALUE]...", help="Config overrides (OmegaConf dotlist).", show_default=False
)
CONFIG = typer.Option(
    None, "--config", "-c", help="YAML file with config values (see configs/).", show_default=False
)


def stage_config(schema: type, config: Path | None, overrides: list[str] | None):
    return load_config(schema, config, overrides or [])
