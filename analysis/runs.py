"""Run and sweep folders as tables: one row per run (config, final and best metrics) and every logged value.

A resumed run logs some steps again, so the last line for a (step, key) wins. ``analysis`` may import
only ``cxr``, so a sweep's table is rebuilt here from its files when ``cxr sweep collect`` has not run,
with the same columns collect writes, from the same run-folder contract (``cxr.runfolder``).
"""

from __future__ import annotations

import glob as globlib
import json
from pathlib import Path

import pandas as pd
import yaml

from cxr import runfolder
from cxr.errors import UserError
from cxr.runfolder import flatten
from cxr.runfolder import identity as _identity
from cxr.runfolder import seconds_between as _seconds


def _is_run(p: Path) -> bool:
    return (p / "config.yaml").is_file() and ((p / "meta.json").is_file() or (p / "metrics.jsonl").is_file())


def _run_dirs(p: Path) -> list[Path]:
    return sorted(d.parent for d in p.rglob("config.yaml") if _is_run(d.parent))


def _read_json(p: Path) -> dict:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def _read_yaml(p: Path) -> dict:
    try:
        return yaml.safe_load(p.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def history(run_dir: str | Path) -> pd.DataFrame:
    """A run's ``metrics.jsonl`` as long rows (step, key, value); a step logged again replaces the old value."""
    rows = [
        {"step": step, "key": k, "value": v}
        for k, by_step in sorted(runfolder.history(run_dir).items())
        for step, v in sorted(by_step.items())
    ]
    return pd.DataFrame(rows, columns=["step", "key", "value"]).sort_values(
        ["step", "key"], ignore_index=True
    )


final_and_best = runfolder.summary


def open_runs(folder_or_glob: str | Path) -> pd.DataFrame:
    """One row per run folder (a run, a folder of runs, or a glob): status, times, git, config, metrics."""
    s = str(folder_or_glob)
    if any(c in s for c in "*?["):
        dirs = sorted(Path(m) for m in globlib.glob(s) if _is_run(Path(m)))
    else:
        p = Path(s)
        if not p.is_dir():
            raise UserError(f"{p}: no such folder")
        dirs = [p] if _is_run(p) else _run_dirs(p)
    if not dirs:
        raise UserError(f"{s}: no run folders (a run folder has config.yaml and meta.json or metrics.jsonl)")
    rows = []
    for d in dirs:
        meta = _read_json(d / "meta.json")
        final, best = final_and_best(d)
        rows.append(
            {
                "run": d.name,
                "path": str(d),
                "kind": meta.get("kind"),
                "status": meta.get("status"),
                "start": meta.get("start"),
                "end": meta.get("end"),
                "wall_s": _seconds(meta.get("start"), meta.get("end")),
                "restarts": len(meta.get("restarts") or []),
                "git_sha": (meta.get("git") or {}).get("sha"),
                "host": meta.get("host"),
                **{f"cfg.{k}": v for k, v in flatten(_identity(_read_yaml(d / "config.yaml"))).items()},
                **{f"final.{k}": v for k, v in final.items()},
                **{f"best.{k}": v for k, v in best.items()},
            }
        )
    return pd.DataFrame(rows)


def open_history(folder_or_glob: str | Path) -> pd.DataFrame:
    """Every logged value of every run: run, step, key, value (for curves)."""
    runs = open_runs(folder_or_glob)
    parts = [history(p).assign(run=r) for r, p in zip(runs["run"], runs["path"], strict=True)]
    return pd.concat(parts, ignore_index=True)[["run", "step", "key", "value"]]


def _sweep_record(folder: Path) -> dict:
    if not (folder / "sweep.json").is_file():
        raise UserError(f"{folder}: not a sweep folder (no sweep.json); `cxr sweep launch SPEC` makes one")
    rec = _read_json(folder / "sweep.json")
    if not rec:
        raise UserError(f"{folder / 'sweep.json'}: not valid JSON")
    return rec


def _sweep_run_ids(folder: Path, record: dict) -> list[str]:
    """Listed at launch (grid/random), or the folders the trials made (bayes), in trial order."""
    if record.get("runs"):
        return [r["id"] for r in record["runs"]]
    dirs = [d for d in (folder / "runs").glob("*") if (d / "config.yaml").is_file()]
    return [
        d.name for d in sorted(dirs, key=lambda d: (_read_json(d / "status.json").get("trial", 1e9), d.name))
    ]


def open_sweep(folder: str | Path) -> pd.DataFrame:
    """The sweep's results table: ``results.parquet`` when collected, else built from ``runs/*/`` files."""
    folder = Path(folder)
    record = _sweep_record(folder)
    if (folder / "results.parquet").is_file():
        return pd.read_parquet(folder / "results.parquet")
    job_ids: dict[str, str] = {}  # run id → its latest job id (later submissions of a run win)
    for group in _read_json(folder / "jobs.json").get("groups", []):
        job_ids.update(zip(group.get("labels") or [], group.get("job_ids") or [], strict=False))
    rows = []
    for i, rid in enumerate(_sweep_run_ids(folder, record)):
        d = folder / "runs" / rid
        st = _read_json(d / "status.json")
        slurm = st.get("slurm") or {}
        final, best = final_and_best(d)
        rows.append(
            {
                "run_id": rid,
                "index": i,
                "state": st.get("state", "pending"),
                "reason": st.get("error") or st.get("reason") or "",
                **({"trial": st.get("trial")} if record.get("mode") == "bayes" else {}),
                "job_id": job_ids.get(st.get("worker") or rid),  # bayes trials run inside worker jobs
                "node": slurm.get("nodelist") or st.get("host"),
                "wall_s": _seconds(st.get("first_started"), st.get("ended")),
                "restarts": max(
                    len(_read_json(d / "meta.json").get("restarts") or []),
                    int(slurm.get("restart_count", 0) or 0),
                ),
                "attempts": int(st.get("attempts", 0) or 0),
                "fixes": json.dumps(st["fixes"]) if st.get("fixes") else None,
                **{f"cfg.{k}": v for k, v in flatten(_identity(_read_yaml(d / "config.yaml"))).items()},
                **{f"final.{k}": v for k, v in final.items()},
                **{f"best.{k}": v for k, v in best.items()},
            }
        )
    return pd.DataFrame(rows)


def seed_column(df: pd.DataFrame) -> str | None:
    cols = [c for c in df.columns if c.startswith("cfg.") and (c == "cfg.seed" or c.endswith(".seed"))]
    return cols[0] if cols else None


def varying_keys(df: pd.DataFrame) -> list[str]:
    """The config columns that differ between runs, the seed excepted: what a sweep compares."""
    return runfolder.varying_keys(df, seed_column(df))


def open_sweep_summary(folder: str | Path) -> pd.DataFrame:
    """Mean ± std over seeds per configuration: ``summary.parquet`` if collected, else computed the same way."""
    folder = Path(folder)
    if (folder / "summary.parquet").is_file():
        return pd.read_parquet(folder / "summary.parquet")
    df = open_sweep(folder)
    return runfolder.seed_summary(df, seed_column(df))
