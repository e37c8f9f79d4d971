"""One-line openers: every folder the harness writes, as a pandas DataFrame or DuckDB views.

Analysts should not need to know which file inside a folder holds what, nor re-do the bookkeeping a
resumed run leaves behind (a step logged twice: the last line wins). ``analysis`` may import only
``cxr``, so a sweep's table is rebuilt here from its files when ``cxr sweep collect`` has not run,
with the same columns collect writes. Shards are opened without ``patient_id``/``accession_id``
(and ``private/`` is never read) so nothing opened here can leak into a report.
"""

from __future__ import annotations

import datetime as dt
import glob as globlib
import json
import math
import re
from pathlib import Path

import pandas as pd
import yaml

from cxr.errors import UserError

# Columns of a shards index that link back to people (pseudonyms, but not for reports).
PRIVATE_COLUMNS = ("patient_id", "accession_id")
# Same directions as the sweep collector: lower for losses and errors, higher for scores.
_LOWER = re.compile(r"loss|(^|[_/])kl($|[_/])|err|perplexity|nll", re.I)
_HIGHER = re.compile(r"reward|acc|f1|bleu|rouge|iou|score|auc|precision|recall|meteor|cider", re.I)
_NO_BEST = {"step", "epoch", "learning_rate", "grad_norm", "total_flos", "num_tokens"}


def kind(path: str | Path) -> str:
    """What a path holds: sweep, scores, eval, arena, shards, run, runs (several run folders) or parquet."""
    s = str(path)
    if any(c in s for c in "*?["):
        return "runs"
    p = Path(path)
    if p.is_file() and p.suffix == ".parquet":
        return "parquet"
    if not p.is_dir():
        raise UserError(f"{p}: no such folder")
    if (p / "sweep.json").is_file():
        return "sweep"
    if (p / "_run.json").is_file() or any(p.glob("part-*.parquet")):
        return "scores"
    if (p / "metrics.parquet").is_file():
        return "eval"
    if (p / "ratings.parquet").is_file():
        return "arena"
    if (p / "index.parquet").is_file():
        return "shards"
    if _is_run(p):
        return "run"
    if _run_dirs(p):
        return "runs"
    raise UserError(
        f"{p}: not a run, sweep, score, eval, arena or shards folder (no config.yaml/meta.json, sweep.json, "
        "part-*.parquet, metrics.parquet, ratings.parquet or index.parquet)"
    )


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


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} → {'a.b': 1}; lists become one JSON cell so parquet columns stay scalar."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, list) else v
    return out


def history(run_dir: str | Path) -> pd.DataFrame:
    """A run's ``metrics.jsonl`` as long rows (step, key, value); a step logged again replaces the old value."""
    values: dict[tuple[int, str], float] = {}
    p = Path(run_dir) / "metrics.jsonl"
    lines = p.read_text().splitlines() if p.is_file() else []
    for line in lines:
        try:
            row = json.loads(line)
            step = int(row.pop("step", 0))
        except (ValueError, TypeError, AttributeError):
            continue  # a line cut by a kill
        for k, v in row.items():
            try:
                values[(step, k)] = float(v)
            except (TypeError, ValueError):
                continue
    rows = [{"step": s, "key": k, "value": v} for (s, k), v in sorted(values.items())]
    return pd.DataFrame(rows, columns=["step", "key", "value"])


def _direction(key: str) -> str | None:
    if key in _NO_BEST or "runtime" in key or "per_second" in key:
        return None
    return "min" if _LOWER.search(key) else "max" if _HIGHER.search(key) else None


def final_and_best(run_dir: str | Path) -> tuple[dict, dict]:
    final, best = {}, {}
    h = history(run_dir)
    for k, g in h.groupby("key", sort=True):
        final[k] = float(g.loc[g["step"].idxmax(), "value"])
        finite = [v for v in g["value"] if math.isfinite(v)]
        d = _direction(k)
        if d and finite:
            best[k] = min(finite) if d == "min" else max(finite)
    return final, best


def _identity(config: dict) -> dict:
    """What names a run (as the sweep ids do): the config without its out folder and executors."""

    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k != "executor" and not k.endswith("_executor")}
        return d

    return strip({k: v for k, v in config.items() if k != "out"})


def _seconds(a, b) -> float | None:
    try:
        return (dt.datetime.fromisoformat(b) - dt.datetime.fromisoformat(a)).total_seconds()
    except (TypeError, ValueError):
        return None


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
    seed = seed_column(df)
    return [c for c in df.columns if c.startswith("cfg.") and c != seed and df[c].astype(str).nunique() > 1]


def open_sweep_summary(folder: str | Path) -> pd.DataFrame:
    """Mean ± std over seeds per configuration: ``summary.parquet`` if collected, else computed the same way."""
    folder = Path(folder)
    if (folder / "summary.parquet").is_file():
        return pd.read_parquet(folder / "summary.parquet")
    df = open_sweep(folder)
    metric_cols = [c for c in df.columns if c.startswith(("final.", "best."))]
    done = df[df["state"] == "completed"] if "state" in df else df
    keys = varying_keys(df) or [c for c in df.columns if c.startswith("cfg.")][:1]
    if done.empty or not metric_cols or not keys:
        return pd.DataFrame(columns=[*keys, "n"])
    g = done.groupby(
        [done[c].astype(str) if done[c].dtype == object else done[c] for c in keys], dropna=False
    )
    out = g[metric_cols].agg(["mean", "std"])
    out.columns = [f"{m}.{stat}" for m, stat in out.columns]
    out.insert(0, "n", g.size())
    return out.reset_index()


def score_parts(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        raise UserError(f"{folder}: no part-*.parquet (not a score folder, or `cxr score` wrote nothing yet)")
    return parts


def open_scores_files(parts: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def open_scores(folder: str | Path) -> pd.DataFrame:
    """Every scored row of a ``cxr score`` folder (one row per image and task)."""
    return open_scores_files(score_parts(folder))


def score_run(folder: str | Path) -> dict:
    """The folder's ``_run.json``: config (incl. ``shards``), model and hashes."""
    return _read_json(Path(folder) / "_run.json")


def _need(p: Path, what: str) -> Path:
    if not p.is_file():
        raise UserError(f"{p.parent}: no {p.name} (not {what})")
    return p


def open_eval(folder: str | Path) -> pd.DataFrame:
    """``cxr eval``'s tidy metrics: metric, task, slice, slice_value, value, ci_low, ci_high, n."""
    return pd.read_parquet(_need(Path(folder) / "metrics.parquet", "a `cxr eval` folder"))


def open_arena(folder: str | Path, table: str = "ratings") -> pd.DataFrame:
    """``cxr arena``'s ``ratings`` (default), ``winrate`` (matrix: row model against column model),
    ``judgments`` or ``outcomes``."""
    if table not in ("ratings", "winrate", "judgments", "outcomes"):
        raise UserError(
            f"{folder}: arena table must be ratings, winrate, judgments or outcomes, not {table!r}"
        )
    return pd.read_parquet(_need(Path(folder) / f"{table}.parquet", "a `cxr arena` folder"))


def open_shards(folder: str | Path) -> pd.DataFrame:
    """A shards folder's image index, without the columns that link back to patients."""
    index = pd.read_parquet(_need(Path(folder) / "index.parquet", "a shards folder"))
    return index.drop(columns=[c for c in PRIVATE_COLUMNS if c in index.columns])


_OPENERS = {
    "run": open_runs,
    "runs": open_runs,
    "sweep": open_sweep,
    "scores": open_scores,
    "eval": open_eval,
    "arena": open_arena,
    "shards": open_shards,
    "parquet": pd.read_parquet,
}


def open(path: str | Path) -> pd.DataFrame:  # noqa: A001 (the one-word name analysts type)
    """Any folder the harness writes, as its main table (the kind is detected)."""
    return _OPENERS[kind(path)](path)


def views(path: str | Path) -> dict[str, pd.DataFrame | list[Path]]:
    """The DuckDB views a folder contributes: name → table, or the parquet files DuckDB reads itself."""
    k = kind(path)
    if k in ("run", "runs"):
        return {"runs": open_runs(path), "history": open_history(path)}
    if k == "sweep":
        return {"runs": open_sweep(path), "summary": open_sweep_summary(path)}
    if k == "scores":  # read in place by DuckDB: a whole archive's scores need not fit in memory
        out: dict = {"scores": score_parts(path)}
        if (Path(path) / "_failures.parquet").is_file():
            out["failures"] = pd.read_parquet(Path(path) / "_failures.parquet")
        return out
    if k == "eval":
        return {"metrics": open_eval(path)}
    if k == "arena":
        out = {"ratings": open_arena(path)}
        for t in ("winrate", "judgments", "outcomes"):
            if (Path(path) / f"{t}.parquet").is_file():
                df = open_arena(path, t)
                out[t] = df.reset_index() if t == "winrate" else df
        return out
    if k == "shards":
        return {"images": open_shards(path)}
    return {Path(path).stem.replace("-", "_"): pd.read_parquet(path)}


def _sql_str(v) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def connect(*folders: str | Path):
    """A DuckDB connection with each folder's tables as views (``scores``, ``metrics``, ``runs``, ``ratings``…).

    Two folders of the same kind share one view, their rows stacked with a ``source`` column (the folder's
    name), so ``SELECT source, avg(format_ok::INT) FROM scores GROUP BY source`` compares models."""
    import duckdb

    if not folders:
        raise UserError("connect() needs at least one folder")
    tables: dict[str, list] = {}
    for f in folders:
        source = Path(str(f).rstrip("/")).name
        for name, table in views(f).items():
            tables.setdefault(name, []).append((source, table))
    con = duckdb.connect()
    for name, items in tables.items():
        if all(isinstance(t, list) for _, t in items):
            selects = [
                f"SELECT *, {_sql_str(src)} AS source FROM read_parquet([{', '.join(_sql_str(p) for p in t)}], "
                "union_by_name = true)"
                for src, t in items
            ]
            con.execute(f'CREATE VIEW "{name}" AS ' + " UNION ALL BY NAME ".join(selects))
            continue
        dfs = [(open_scores_files(t) if isinstance(t, list) else t).assign(source=src) for src, t in items]
        con.register(name, dfs[0] if len(dfs) == 1 else pd.concat(dfs, ignore_index=True))  # queried in place
    return con
