"""``cxr eval SCORES OUT --references DATA/test.parquet``: metrics of a score folder, with CIs and slices."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config.schema import EvalConfig

EPILOG = (
    "Example: cxr eval runs/scores runs/eval --references runs/data/test.parquet bootstrap=1000 "
    "shards=runs/shards"
)
HEADLINE = (
    "bleu_4",
    "rouge_l",
    "cider",
    "meteor",
    "chexpert_rule_f1_micro_14",
    "chexpert_rule_f1_micro_5",
    "finding_list_f1_micro",
    "accuracy",
    "iou_mean",
    "map",
    "format_ok_rate",
)


def eval_(
    scores: Path = typer.Argument(
        ..., metavar="SCORES", help="A `cxr score` output folder (part-*.parquet)."
    ),
    out: Path = typer.Argument(
        ..., metavar="OUT", help="Output folder: metrics.parquet/.csv, summary.json, config.yaml."
    ),
    references: Path | None = typer.Option(
        None, "--references", "-r", help="A `cxr build-data` split parquet, e.g. DATA/test.parquet."
    ),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Report-generation (BLEU, ROUGE-L, CIDEr, METEOR, CheXpert-rule F1), VQA accuracy, grounding
    (IoU, P/R, mAP) and format metrics of SCORES against REFERENCES, with bootstrap 95 % CIs and
    slices by view, sex and age band."""
    from analysis.eval import evaluate

    pre = [f"scores={scores}", f"out={out}"] + ([f"references={references}"] if references else [])
    cfg = stage_config(EvalConfig, config, pre + list(overrides or []))
    console = Console()
    path = evaluate(cfg, log=lambda s: console.print(s, highlight=False))
    table = pd_table(path)
    console.print(table)
    console.print(
        f"metrics in [bold]{path / 'metrics.parquet'}[/] (and .csv); summary in {path / 'summary.json'}"
    )


def pd_table(path: Path) -> Table:
    import pandas as pd

    df = pd.read_parquet(path / "metrics.parquet")
    df = df[(df["slice"] == "all") & df["metric"].isin(HEADLINE)].sort_values("task", kind="stable")
    table = Table("task", "metric", "value", "95% CI", "n")
    for r in df.itertuples():
        ci = "" if pd.isna(r.ci_low) else f"{r.ci_low:.3f}–{r.ci_high:.3f}"
        table.add_row(r.task, r.metric, f"{r.value:.3f}", ci, str(r.n))
    return table
