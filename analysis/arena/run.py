"""``run_arena(cfg)``: contestants → cases → judge (both orders) → outcomes → Bradley–Terry with ties.

OUT/judgments.parquet  one row per judge call: case, image_id, task, model_a, model_b, order
                       (ab: model_a shown as A), shown_a, shown_b, raw, parsed, favoured
OUT/outcomes.parquet   one row per case and pair: the two orders combined (model, tie or invalid)
OUT/ratings.parquet    model, strength (log scale, reference 0), ci_low, ci_high, wins, ties, losses, n
OUT/winrate.parquet    row model's score against column model: (wins + ties/2) / valid cases
OUT/summary.json       models, reference, cases, judgments, invalid rate, tie parameter, ranking
OUT/judgments.parts/   the judge's texts chunk by chunk: a killed arena rerun with the same inputs resumes
(+ .csv of the tables, config.yaml and meta.json)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.arena.bradley_terry import bootstrap_strengths, fit_davidson
from analysis.arena.cases import check_images, common_cases, load_contestants, shards_of
from analysis.arena.judge import ask, plan, plan_key
from analysis.arena.verdict import INVALID, TIE, combine_orders
from cxr.config.runinfo import RunRecord
from cxr.config.schema import ArenaConfig
from cxr.errors import UserError


def combine(judgments: pd.DataFrame) -> pd.DataFrame:
    """Both orders of each (case, pair) → one outcome (``verdict.combine_orders``)."""
    wide = judgments.pivot_table(
        index=["case", "image_id", "task", "model_a", "model_b"],
        columns="order",
        values="parsed",
        aggfunc="first",
    ).reset_index()
    wide["outcome"] = [
        combine_orders(ab, ba, a, b)
        for ab, ba, a, b in zip(wide["ab"], wide["ba"], wide["model_a"], wide["model_b"], strict=True)
    ]
    return wide.rename(columns={"ab": "verdict_ab", "ba": "verdict_ba"}).rename_axis(columns=None)


def case_counts(outcomes: pd.DataFrame, models: list[str], cases: list[str]) -> np.ndarray:
    """(cases, m, m, 3) counts for the fit: [i, j] with i < j in ``models`` order; k = i won, j won, tie."""
    idx = {m: k for k, m in enumerate(models)}
    pos = {c: k for k, c in enumerate(cases)}
    out = np.zeros((len(cases), len(models), len(models), 3), dtype=np.int64)
    for r in outcomes.itertuples(index=False):
        if r.outcome == INVALID:
            continue
        i, j = sorted((idx[r.model_a], idx[r.model_b]))
        k = 2 if r.outcome == TIE else (0 if idx[r.outcome] == i else 1)
        out[pos[r.case], i, j, k] += 1
    return out


def tables(counts: np.ndarray, models: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-model wins/ties/losses/n and the empirical win-rate matrix (ties count half)."""
    total = counts.sum(axis=0)
    m = len(models)
    wins, ties, n = np.zeros((m, m)), np.zeros((m, m)), np.zeros((m, m))
    for i in range(m):
        for j in range(i + 1, m):
            w, lo, t = total[i, j]
            wins[i, j], wins[j, i] = w, lo
            ties[i, j] = ties[j, i] = t
            n[i, j] = n[j, i] = w + lo + t
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (wins + ties / 2) / n
    np.fill_diagonal(rate, np.nan)
    winrate = pd.DataFrame(rate, index=pd.Index(models, name="model"), columns=models)
    record = pd.DataFrame(
        {
            "model": models,
            "wins": wins.sum(axis=1).astype(int),
            "ties": ties.sum(axis=1).astype(int),
            "losses": wins.sum(axis=0).astype(int),
            "n": n.sum(axis=1).astype(int),
        }
    )
    return record, winrate


RATING_COLUMNS = ["model", "strength", "ci_low", "ci_high", "wins", "ties", "losses", "n"]


def ratings(counts: np.ndarray, models: list[str], cfg: ArenaConfig) -> tuple[pd.DataFrame, dict]:
    record, _ = tables(counts, models)
    if record["n"].sum() == 0:  # every verdict invalid: nothing to fit
        nan = np.full(len(models), np.nan)
        df = record.assign(strength=nan, ci_low=nan, ci_high=nan)
        return df[RATING_COLUMNS], {"tie": None, "converged": False}
    fit = fit_davidson(counts.sum(axis=0), ridge=cfg.ridge)
    if cfg.bootstrap:
        boot = bootstrap_strengths(counts, n_boot=cfg.bootstrap, seed=cfg.seed, ridge=cfg.ridge)
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    else:
        low = high = np.full(len(models), np.nan)
    df = record.assign(strength=fit.strength, ci_low=low, ci_high=high)
    return df[RATING_COLUMNS], {"tie": fit.tie, "converged": fit.converged}


def _write(df: pd.DataFrame, out: Path, name: str, index: bool = False) -> None:
    df.to_parquet(out / f"{name}.parquet", index=index)
    df.to_csv(out / f"{name}.csv", index=index)


def run_arena(cfg: ArenaConfig, log: Callable[[str], None] = print) -> Path:
    """Judge, fit, write OUT; returns OUT. Refuses bad input before the judge is loaded."""
    if not cfg.out:
        raise UserError("out: give the arena's output folder")
    judge_path = Path(cfg.judge.model.path) if cfg.judge.model.path else None
    if judge_path is None or not (judge_path / "config.json").is_file():
        raise UserError(f"judge.model.path={cfg.judge.model.path!r}: no model folder there (--judge MODEL)")
    contestants = load_contestants(list(cfg.scores), list(cfg.names))
    models = [c.name for c in contestants]
    cases = common_cases(contestants, cfg.max_cases, cfg.seed)
    shards = shards_of(contestants, cfg.shards)
    check_images(cases, shards)
    out = Path(cfg.out)
    with RunRecord(out, cfg, kind="arena"):
        calls = plan(contestants, cases, cfg.max_answer_chars)
        log(f"arena: {len(models)} models, {len(cases)} cases, {len(calls)} judge calls (both orders)")
        key = plan_key(calls, cfg.judge, cfg.chunk)
        parts = out / "judgments.parts"
        for stale in parts.glob("*") if parts.is_dir() else []:
            if stale.name != key:  # chunks of another plan (other cases, judge or answers)
                shutil.rmtree(stale)
        judgments = ask(calls, cfg.judge, shards, log=log, parts=parts / key, chunk=cfg.chunk)
        _write(judgments, out, "judgments")
        outcomes = combine(judgments)
        _write(outcomes, out, "outcomes")
        counts = case_counts(outcomes, models, list(cases["case"]))
        rated, fit = ratings(counts, models, cfg)
        _write(rated, out, "ratings")
        _write(tables(counts, models)[1], out, "winrate", index=True)
        invalid_calls = float((judgments["parsed"] == INVALID).mean())
        summary = {
            "models": models,
            "reference": models[0],
            "scale": "natural log odds (Davidson–Bradley–Terry); reference model fixed at 0",
            "cases": len(cases),
            "judgments": len(judgments),
            "invalid_rate": invalid_calls,
            "invalid_case_pairs": int((outcomes["outcome"] == INVALID).sum()),
            "valid_case_pairs": int((outcomes["outcome"] != INVALID).sum()),
            # how often each verdict was given: far more A than B shows the judge's position bias
            "verdict_shares": {
                k: float(v) for k, v in judgments["parsed"].value_counts(normalize=True).items()
            },
            "tie_parameter": fit["tie"],
            "converged": fit["converged"],
            "bootstrap": cfg.bootstrap,
            "ranking": rated.sort_values("strength", ascending=False, na_position="last")["model"].tolist()
            if fit["tie"] is not None
            else [],
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out
