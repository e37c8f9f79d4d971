"""Timing helpers for benchmarks: best-of-N wall time, ratio tables, JSON results."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def report(name: str, rows: list[dict], note: str = "") -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{name}: ratios vs the baseline of the same run")
    for col in rows[0]:
        t.add_column(col)
    for r in rows:
        t.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()])
    Console().print(t)
    if note:
        Console().print(note)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps(
            {"host": platform.node(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": rows, "note": note},
            indent=2,
        )
    )


def synthetic_shards(
    work: Path,
    shards: Path,
    *,
    studies: int,
    seed: int,
    extra: tuple[str, ...] = (),
    side: int = 160,
    size: int = 128,
) -> Path:
    """Synthetic archive (``side``–``side``+40 px images, no bad files) → ``size``-px shards; what the
    training, scoring and GPU benchmarks measure on (the tests build theirs the same way:
    tests/conftest.py small_shards). The archive's RIS export is WORK/archive/ris/ris.csv."""
    from cxr.config import load_config
    from cxr.config.schema import PreprocessConfig
    from jobs.preprocess import preprocess
    from preprocessing.synth import SynthSpec, synth_archive

    synth_archive(
        work / "archive",
        SynthSpec(studies=studies, seed=seed, min_size=side, max_size=side + 40, bad_share=0),
    )
    overrides = [f"archive={work / 'archive' / 'dicom'}", f"shards={shards}", f"size={size}", *extra]
    preprocess(load_config(PreprocessConfig, overrides=overrides), log=lambda s: None)
    return shards
