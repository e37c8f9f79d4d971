"""One table for a sweep: a row per run with its flattened config, final and best metrics, job id,
node, wall time, restarts and state (``DIR/results.parquet`` + ``.csv``), and a mean ± std view over
seeds (``DIR/summary.parquet`` + ``.csv``). Columns: ``run_id``, ``state``, …, ``cfg.<key>``,
``final.<metric>``, ``best.<metric>``; ``summary`` groups by every ``cfg.`` column but the seed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from cxr import runfolder
from cxr.runfolder import flatten, identity
from jobs.registry import get
from sweeps import store
from sweeps.status import run_states


def table(folder: str | Path) -> pd.DataFrame:
    folder = Path(folder)
    record = store.read(folder)
    rows = []
    for r in run_states(folder):
        d = store.run_dir(folder, r.id)
        st = store.read_json(d / "status.json")
        try:
            config = yaml.safe_load((d / "config.yaml").read_text()) or {}
        except OSError:
            config = {}
        final, best = runfolder.summary(d)
        slurm = st.get("slurm") or {}
        row = {
            "run_id": r.id,
            "index": r.index,
            "state": r.state,
            "reason": r.reason,
            **{k: r.extra.get(k) for k in ("trial",) if record.get("mode") == "bayes"},
            "job_id": r.job_id,
            "node": slurm.get("nodelist") or st.get("host"),
            "wall_s": runfolder.seconds_between(
                st.get("first_started"), st.get("ended")
            ),  # first start → end, restarts included
            "restarts": max(r.restarts, int(slurm.get("restart_count", 0) or 0)),
            "attempts": r.attempts,
            "fixes": json.dumps(st["fixes"]) if st.get("fixes") else None,
            **{f"cfg.{k}": v for k, v in flatten(identity(config)).items()},
            **{f"final.{k}": v for k, v in final.items()},
            **{f"best.{k}": v for k, v in best.items()},
        }
        rows.append(row)
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame, seed_key: str) -> pd.DataFrame:
    """Mean ± std of every metric over seeds, per config (completed runs only)."""
    return runfolder.seed_summary(df, f"cfg.{seed_key}")


def collect(folder: str | Path) -> tuple[Path, Path, pd.DataFrame]:
    folder = Path(folder)
    record = store.read(folder)
    df = table(folder)
    df.to_parquet(folder / "results.parquet", index=False)
    df.to_csv(folder / "results.csv", index=False)
    seed_key = get(record["job"]).seed_key
    s = summary(df, seed_key)
    s.to_parquet(folder / "summary.parquet", index=False)
    s.to_csv(folder / "summary.csv", index=False)
    return folder / "results.parquet", folder / "summary.parquet", df
