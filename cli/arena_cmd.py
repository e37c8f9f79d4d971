"""``cxr arena SCORES_A SCORES_B … --judge MODEL OUT``: an LLM judge ranks score folders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.common import CONFIG, stage_config
from cxr.config.schema import ArenaConfig
from cxr.errors import UserError

EPILOG = (
    "Example: cxr arena base=runs/scores/sft grpo=runs/scores/grpo runs/scores/coldstart "
    "--judge runs/judge-model runs/arena --backend vllm max_cases=500      |      "
    "a SCORES argument may be name=path; a KEY=VALUE whose key is a config key (max_cases, judge.*, …) is "
    "an override"
)
_KEYS = {f.name for f in dataclasses.fields(ArenaConfig)}


def _is_override(arg: str) -> bool:
    key = arg.partition("=")[0]
    return "=" in arg and key.split(".")[0] in _KEYS


def arena(
    args: list[str] = typer.Argument(..., metavar="SCORES_A SCORES_B [SCORES]... OUT [KEY=VALUE]..."),
    judge: str | None = typer.Option(
        None, "--judge", "-j", help="Judge model folder (sets judge.model.path)."
    ),
    backend: str | None = typer.Option(None, "--backend", "-b", help="hf | vllm (sets judge.backend)."),
    config: Path | None = CONFIG,
) -> None:
    """Compare two or more `cxr score` folders with an LLM judge: every common (image, task) case, every
    pair, both orders; ties allowed. Writes judgments, a Bradley–Terry-with-ties rating with bootstrap
    CIs and a win-rate matrix to OUT."""
    from analysis.arena import run_arena

    overrides = [a for a in args if _is_override(a)]
    positional = [a for a in args if not _is_override(a)]
    if len(positional) < 3:
        raise UserError(
            f"usage: cxr arena SCORES_A SCORES_B [SCORES]... --judge MODEL OUT: need at least two score "
            f"folders and OUT, got {len(positional)} path(s)"
        )
    *scores, out = positional
    listed = ",".join(f'"{s}"' for s in scores)
    pre = [f"scores=[{listed}]", f"out={out}"]
    if judge:
        pre.append(f"judge.model.path={judge}")
    if backend:
        pre.append(f"judge.backend={backend}")
    cfg = stage_config(ArenaConfig, config, pre + overrides)
    path = run_arena(cfg, log=Console().print)
    import pandas as pd

    rated = pd.read_parquet(path / "ratings.parquet").sort_values("strength", ascending=False)
    table = Table(title=f"Report Arena ({path})")
    for col in ("model", "strength", "95% CI", "W", "T", "L", "n"):
        table.add_column(col)

    def num(x: float) -> str:
        return "n/a" if pd.isna(x) else f"{x:+.2f}"

    for r in rated.itertuples(index=False):
        table.add_row(
            escape(r.model),
            num(r.strength),
            escape(f"[{num(r.ci_low)}, {num(r.ci_high)}]"),
            str(r.wins),
            str(r.ties),
            str(r.losses),
            str(r.n),
        )
    Console().print(table)
    summary = json.loads((path / "summary.json").read_text())
    Console().print(
        f"{summary['valid_case_pairs']} case-pairs judged, invalid verdicts {summary['invalid_rate']:.0%} "
        f"(left out); judgments, ratings, win rates in [bold]{path}[/] (summary.json)"
    )
