"""``cxr pipeline CONFIG``: every stage as one chain of jobs; ``cxr demo`` runs it on the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cli.common import OVERRIDES
from cxr.config import load_config
from cxr.config.pipeline import PipelineConfig

EPILOG = (
    "Example: cxr pipeline configs/demo.yaml workdir=runs/p1   |   cxr pipeline site.yaml -e slurm "
    "'stages=[score,eval]' sft.executor.gpus_per_node=8"
)


def pipeline(
    config: Path = typer.Argument(..., metavar="CONFIG", help="A pipeline YAML (see configs/demo.yaml)."),
    executor: str | None = typer.Option(
        None, "--executor", "-e", help="local | slurm | debug (executor.kind)."
    ),
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """preprocess → build_data → sft → coldstart → grpo → score → eval as one chain (afterok on Slurm,
    in order locally); a rerun skips stages already done with the same config and resumes the rest."""
    cfg = load_config(
        PipelineConfig, config, ([f"executor.kind={executor}"] if executor else []) + list(overrides or [])
    )
    run_and_summarise(cfg)


def run_and_summarise(cfg: PipelineConfig) -> None:
    from jobs.pipeline import pipeline as run

    console = Console()
    run_, _ = run(cfg, log=console.print)
    if run_ is not None and cfg.executor.kind == "slurm":
        console.print(
            f"submitted {len(run_.links)} stage job(s); follow: cxr jobs status {Path(cfg.workdir) / 'pipeline' / 'private'}"
        )
        return
    if run_ is not None and (failed := run_.failed_link()):
        raise typer.Exit(_failed(cfg, failed))
    console.print(summary_table(Path(cfg.workdir)))
    if cfg.report:
        from jobs.pipeline import write_report

        report = write_report(cfg)
        if report is not None:
            console.print(f"report: [bold]{report}[/] (and review.html beside it)")


def _failed(cfg: PipelineConfig, stage: str) -> int:
    Console(stderr=True).print(
        f"[bold red]stage {stage} failed[/]: logs in {Path(cfg.workdir) / 'pipeline' / 'private' / 'jobs'}; "
        "fix the cause and rerun the same command (done stages are skipped)",
        markup=True,
    )
    return 1


def summary_table(workdir: Path) -> Table:
    t = Table(title=f"pipeline {workdir}")
    for col in ("stage", "seconds", "result"):
        t.add_column(col, overflow="fold")
    for m in sorted((workdir / "pipeline").glob("*.done.json"), key=lambda p: p.stat().st_mtime):
        d = json.loads(m.read_text())
        result = d.get("result")
        text = ", ".join(f"{k}: {v}" for k, v in result.items()) if isinstance(result, dict) else str(result)
        t.add_row(d["stage"], f"{d['seconds']:.0f}", text)
    return t
