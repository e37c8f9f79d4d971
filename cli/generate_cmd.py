"""``cxr generate``: grounded answers for images through the hf or vllm backend."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config import GenerateConfig

EPILOG = (
    "Example: cxr generate --model runs/tiny-model --image chest.png --backend vllm "
    "sampling.temperature=0 --out answers.parquet"
)


def write_rows(gens, path: Path) -> None:
    import pandas as pd

    df = pd.DataFrame([g.to_row() for g in gens])
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)


def generate(
    image: list[Path] = typer.Option(..., "--image", "-i", help="Image file (PNG/JPEG); repeat for several."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model folder (sets model.path)."),
    backend: str | None = typer.Option(None, "--backend", "-b", help="hf or vllm (sets backend)."),
    question: str | None = typer.Option(None, "--question", "-q", help="Question or task (sets question)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write rows to .parquet or .jsonl."),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Run folder for config.yaml, meta.json, rows."
    ),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Ask a grounded question about each image; print the parsed reasoning, boxes and answer."""
    from cli.tables import generations_table
    from cxr.config import RunRecord
    from cxr.inference import Request, make_backend

    shortcuts = [
        f"{k}={v}"
        for k, v in (("model.path", model), ("backend", backend), ("question", question))
        if v is not None
    ]
    cfg = stage_config(GenerateConfig, config, shortcuts + list(overrides or []))
    requests = [Request(p, cfg.question, id=p.name) for p in image]

    def run():
        with make_backend(cfg) as be:
            return be.generate(requests)

    if run_dir is not None:
        with RunRecord(run_dir, cfg, kind="generate"):
            gens = run()
            write_rows(gens, run_dir / "generations.parquet")
    else:
        gens = run()
    if out is not None:
        write_rows(gens, out)
    Console().print(generations_table(gens))
