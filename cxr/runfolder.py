"""The run-folder contract every room reads (sweeps collect it, ``analysis`` tables it): a run's
metrics from ``RUN/metrics.jsonl``, what names a run, and flat config columns.

Lines are ``{"step": N, key: value, …}``; a resumed run logs some steps again, so the last line for a
(step, key) wins. "Best" needs a direction: lower for losses, KL and errors, higher for rewards and
scores; keys with neither meaning (learning rate, grad norm, epoch) get no best value.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

LOWER = re.compile(r"loss|(^|[_/])kl($|[_/])|err|perplexity|nll", re.I)
HIGHER = re.compile(r"reward|acc|f1|bleu|rouge|iou|score|auc|precision|recall|meteor|cider", re.I)
SKIP = {"step", "epoch", "learning_rate", "grad_norm", "total_flos", "num_tokens"}


def direction(key: str) -> str | None:
    if key in SKIP or "runtime" in key or "per_second" in key:
        return None
    if LOWER.search(key):
        return "min"
    if HIGHER.search(key):
        return "max"
    return None


def history(run_dir: str | Path) -> dict[str, dict[int, float]]:
    """{key: {step: value}}; unreadable lines (a write cut by a kill) are skipped."""
    out: dict[str, dict[int, float]] = {}
    p = Path(run_dir) / "metrics.jsonl"
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        try:
            row = json.loads(line)
            step = int(row.pop("step", 0))
        except (ValueError, TypeError, AttributeError):
            continue
        for k, v in row.items():
            try:
                out.setdefault(k, {})[step] = float(v)  # "nan"/"inf" strings too
            except (TypeError, ValueError):
                continue
    return out


def summary(run_dir: str | Path) -> tuple[dict[str, float], dict[str, float]]:
    """(final, best): the last-step value of every key, and the best finite value of keys with a
    direction."""
    final, best = {}, {}
    for k, by_step in history(run_dir).items():
        final[k] = by_step[max(by_step)]
        d = direction(k)
        values = [v for v in by_step.values() if math.isfinite(v)]
        if d and values:
            best[k] = min(values) if d == "min" else max(values)
    return final, best


def value(run_dir: str | Path, name: str, use: str = "final", mode: str = "min") -> float | None:
    """One metric of a run (the sweep's objective): its final value, or its best in ``mode``."""
    by_step = history(run_dir).get(name)
    if not by_step:
        return None
    if use == "final":
        v = by_step[max(by_step)]
    else:
        finite = [v for v in by_step.values() if math.isfinite(v)]
        if not finite:
            return None
        v = min(finite) if mode == "min" else max(finite)
    return v if math.isfinite(v) else None


def identity(config: dict) -> dict:
    """What names a run (a sweep's run id hashes this): the config without where it writes and how it
    is scheduled (``out``, and every ``executor`` / ``*_executor`` block)."""

    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k != "executor" and not k.endswith("_executor")}
        return d

    return strip({k: v for k, v in config.items() if k != "out"})


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}; a list becomes one JSON cell, so parquet columns stay scalar."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, list) else v
    return out


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds between two ISO timestamps (status.json, meta.json); None when either is missing."""
    try:
        return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def varying_keys(df, seed_col: str | None = None) -> list[str]:
    """The ``cfg.*`` columns of a results table that differ between runs, the seed column excepted:
    what a sweep compares."""
    return [
        c for c in df.columns if c.startswith("cfg.") and c != seed_col and df[c].astype(str).nunique() > 1
    ]


def seed_summary(df, seed_col: str | None):
    """Mean ± std of every ``final.*``/``best.*`` column over seeds, per configuration (completed runs
    only; configurations told apart by the config columns that vary): `summary.parquet`'s table."""
    import pandas as pd

    metric_cols = [c for c in df.columns if c.startswith(("final.", "best."))]
    keys = varying_keys(df, seed_col) or [c for c in df.columns if c.startswith("cfg.") and c != seed_col][:1]
    done = df[df["state"] == "completed"] if "state" in df else df
    if done.empty or not metric_cols or not keys:
        return pd.DataFrame(columns=[*keys, "n"])
    g = done.groupby(
        [done[c].astype(str) if done[c].dtype == object else done[c] for c in keys], dropna=False
    )
    out = g[metric_cols].agg(["mean", "std"])
    out.columns = [f"{m}.{stat}" for m, stat in out.columns]
    out.insert(0, "n", g.size())
    return out.reset_index()
