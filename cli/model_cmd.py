"""``cxr model …``: the embedded tiny model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Models: build the embedded tiny Qwen2.5-VL.", no_args_is_help=True)


@app.command("tiny", epilog="Example: cxr model tiny runs/tiny-model --seed 0")
def tiny(
    out: Path = typer.Argument(..., help="Folder to write the model, tokenizer and processor into."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed for the tokenizer corpus and the weights."),
    family: str = typer.Option(
        "qwen2.5-vl", "--family", help="qwen2.5-vl (the seed's architecture) or qwen3-vl."
    ),
) -> None:
    """Build a tiny random-init Qwen2.5-VL locally (no download); deterministic for a seed."""
    from cxr.errors import UserError
    from cxr.model import build_tiny
    from cxr.model.tiny import FAMILIES

    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise UserError(f"{out} is a non-empty folder that holds no model; choose an empty or new folder")
    if family not in FAMILIES:
        raise UserError(f"--family {family!r}: choose one of {', '.join(FAMILIES)}")
    path = build_tiny(out, seed=seed, family=family)
    Console().print(f"tiny {family} model written to [bold]{path}[/] (seed {seed})")
