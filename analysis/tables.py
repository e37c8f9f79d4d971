"""One-line openers: every folder the harness writes, as a pandas DataFrame or DuckDB views.

Analysts should not need to know which file inside a folder holds what. Run and sweep folders are read
by ``analysis.runs``; here are score, eval, arena and shards folders, kind detection and ``connect``.
Shards are opened without ``patient_id``/``accession_id`` (and ``private/`` is never read) so nothing
opened here can leak into a report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.runs import (  # noqa: F401  (re-exported: ``tables`` is the one module analysts import)
    _is_run,
    _read_json,
    _run_dirs,
    final_and_best,
    flatten,
    history,
    open_history,
    open_runs,
    open_sweep,
    open_sweep_summary,
    seed_column,
    varying_keys,
)
from cxr.errors import UserError

# Columns of a shards index that link back to people (pseudonyms, but not for reports).
PRIVATE_COLUMNS = ("patient_id", "accession_id")


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
