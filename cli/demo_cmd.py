"""``cxr demo [OUT]``: the whole pipeline on the embedded default (synthetic archive, tiny model,
local executor), ending with a summary table and the report's path. ``--quick``: one grounded
prompt on a synthetic image through both backends, side by side (a minute)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import typer
from rich.console import Console

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config import DemoConfig

EPILOG = "Example: cxr demo runs/demo   |   cxr demo --quick -c configs/demo-quick.yaml 'backends=[hf]'"
REPO = Path(__file__).resolve().parents[1]


def demo(
    out: Path | None = typer.Argument(
        None, metavar="[OUT]", help="Work folder (sets workdir; default runs/demo)."
    ),
    quick: bool = typer.Option(False, "--quick", help="Only one prompt through both backends."),
    workdir: Path | None = typer.Option(None, "--workdir", "-w", help="Same as OUT."),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Run every stage on the embedded default: synthetic DICOM archive → shards → SFT → cold start →
    GRPO → scoring → evaluation → report (configs/demo.yaml), then print the summary."""
    if out is not None and "=" in str(out):  # `cxr demo key=value` without OUT
        overrides, out = [str(out), *(overrides or [])], None
    workdir = workdir or out
    shortcuts = [f"workdir={workdir}"] if workdir is not None else []
    if quick:
        return _quick(config, shortcuts + list(overrides or []))
    from cli.pipeline_cmd import run_and_summarise
    from cxr.config import load_config
    from cxr.config.pipeline import PipelineConfig

    cfg = load_config(
        PipelineConfig, config or REPO / "configs" / "demo.yaml", shortcuts + list(overrides or [])
    )
    run_and_summarise(cfg)


def _quick(config: Path | None, overrides: list[str]) -> None:
    from cli.generate_cmd import write_rows
    from cli.tables import generations_table
    from cxr.config import RunRecord
    from cxr.data.synthetic import synthetic_cxr
    from cxr.inference import Request, make_backend
    from cxr.model import build_tiny

    cfg = stage_config(DemoConfig, config, overrides)
    console = Console()
    root = Path(cfg.workdir)
    model_dir = root / f"tiny-model-seed{cfg.seed}"
    if not (model_dir / "config.json").is_file():
        with console.status("building the tiny model"):
            build_tiny(model_dir, seed=cfg.seed)
    image_path = root / "synthetic-cxr.png"
    root.mkdir(parents=True, exist_ok=True)
    synthetic_cxr(seed=cfg.seed, opacity=True).save(image_path)
    gen_cfg = dataclasses.replace(
        cfg.generate, model=dataclasses.replace(cfg.generate.model, path=str(model_dir))
    )
    cfg = dataclasses.replace(cfg, generate=gen_cfg)

    gens, timings = [], []
    with RunRecord(root / "run", cfg, kind="demo") as meta:
        for name in cfg.backends:
            bcfg = dataclasses.replace(gen_cfg, backend=name)
            t0 = time.perf_counter()
            with console.status(f"{name.value}: loading"), make_backend(bcfg) as be:
                t1 = time.perf_counter()
                out = be.generate([Request(image_path, gen_cfg.question, id=image_path.name)])
            t2 = time.perf_counter()
            gens += out
            timings.append(f"{name.value}: start {t1 - t0:.1f} s, generate {t2 - t1:.2f} s")
        meta["timings"] = timings
        write_rows(gens, root / "run" / "generations.parquet")
    console.print(
        generations_table(gens, title=f"Grounded outputs: {gen_cfg.question!r} (tiny random model)")
    )
    for line in timings:
        console.print(line)
    same = len({tuple(g.token_ids) for g in gens}) == 1
    if len(gens) > 1 and gen_cfg.sampling.temperature == 0:
        console.print(f"greedy token ids identical across backends: {'yes' if same else 'no'}")
    console.print(f"run folder: {root / 'run'} (config.yaml, meta.json, generations.parquet)")
