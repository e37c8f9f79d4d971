"""``cxr score``: label a whole shards folder with a model; ``cxr score status OUT``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.common import CONFIG, stage_config
from cxr.config.schema import ScoreConfig
from cxr.errors import UserError

EPILOG = (
    "Example: cxr score runs/shards runs/grpo/export runs/scores --backend vllm --tasks report,findings "
    "-e slurm executor.array_parallelism=8 executor.gpus_per_node=1      |      cxr score status runs/scores"
)


def score(
    args: list[str] = typer.Argument(..., metavar="SHARDS MODEL OUT [KEY=VALUE]... | status OUT"),
    backend: str | None = typer.Option(None, "--backend", "-b", help="vllm | hf (sets backend)."),
    tasks: str | None = typer.Option(
        None, "--tasks", "-t", help="Comma-separated prompt set: report,findings,view."
    ),
    records: str | None = typer.Option(
        None,
        "--records",
        "-r",
        help="A `cxr build-data` split parquet: ask each record's own question instead of --tasks (sets records).",
    ),
    executor: str | None = typer.Option(
        None, "--executor", "-e", help="local | slurm | debug (sets executor.kind)."
    ),
    config: Path | None = CONFIG,
) -> None:
    """Score every image of SHARDS with MODEL into OUT (one parquet part per shard, exactly once;
    a rerun does only what is missing). `cxr score status OUT` shows done / pending / failed parts."""
    from jobs.score import score as run_score
    from jobs.score import status

    if args and args[0] == "status":
        if len(args) != 2:
            raise UserError("usage: cxr score status OUT")
        s = status(args[1])
        Console().print(
            f"{args[1]}: {s['done']}/{s['parts']} parts done, {s['pending']} pending, {s['with_failures']} with "
            f"failures; {s['rows']} rows, {s['failed_rows']} failed rows; {s['prompts_per_s']} prompts/s"
        )
        return
    if len(args) < 3 or "=" in "".join(args[:3]):
        raise UserError("usage: cxr score SHARDS MODEL OUT [KEY=VALUE]...")
    shards, model, out, *overrides = args
    pre = [f"shards={shards}", f"model.path={model}", f"out={out}"]
    if backend:
        pre.append(f"backend={backend}")
    if tasks:
        pre.append(f"tasks=[{tasks}]")
    if records:
        pre.append(f"records={records}")
    if executor:
        pre.append(f"executor.kind={executor}")
    cfg = stage_config(ScoreConfig, config, pre + overrides)
    path = run_score(cfg, log=Console().print)
    Console().print(
        f"scores in [bold]{path}[/]: pandas.read_parquet('{path}') or duckdb FROM '{path}/part-*.parquet'"
    )
