"""The report's plots, each a function of one table → a matplotlib Figure (Agg backend, no display).

Notebooks and ``cxr report`` draw the same pictures from the same functions, so a number an analyst
sees in a notebook is the number in the HTML. Functions return ``None`` when the table has nothing to
draw (an eval without per-finding F1, a sweep with nothing varying) instead of an empty axis.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless in jobs, CI and notebook kernels alike

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.runs import varying_keys  # noqa: E402

# "chexpert_rule.f1.Cardiomegaly", "chexpert_rule/f1/Edema", "f1.Pleural Effusion": a finding after "f1".
FINDING_F1 = re.compile(r"^(?P<family>.*?)(?:^|[._/])f1[._/](?P<finding>[^._/].*)$", re.I)
# "…f1.micro", "…f1.5.macro", "…f1_14": averages over findings, drawn with the other metrics.
AGGREGATE = re.compile(r"(?:^|[._/ ])(?:micro|macro|weighted|samples|all|mean|avg|\d+)(?:$|[._/ ])", re.I)


def _errors(df: pd.DataFrame) -> np.ndarray | None:
    """Asymmetric error bars from ci_low/ci_high (missing CIs draw no bar)."""
    if not {"ci_low", "ci_high"} <= set(df.columns):
        return None
    v = df["value"].to_numpy(float)
    lo = np.clip(v - df["ci_low"].to_numpy(float), 0, None)
    hi = np.clip(df["ci_high"].to_numpy(float) - v, 0, None)
    return np.nan_to_num(np.vstack([lo, hi]))


def _overall(metrics: pd.DataFrame) -> pd.DataFrame:
    if "slice" in metrics.columns:
        metrics = metrics[metrics["slice"].astype(str) == "all"]
    return metrics


def split_findings(metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(aggregate metrics, per-finding F1 rows with ``family`` and ``finding`` columns)."""
    m = metrics["metric"].astype(str).str.extract(FINDING_F1)
    per = m["finding"].notna() & ~m["finding"].fillna("").str.contains(AGGREGATE)
    findings = metrics[per].assign(
        family=m.loc[per, "family"].str.rstrip("._/"), finding=m.loc[per, "finding"]
    )
    return metrics[~per], findings


def metrics_with_ci(metrics: pd.DataFrame, max_rows: int = 40):
    """The whole-set value of each metric (and task) with its bootstrap 95 % CI as error bars."""
    agg, _ = split_findings(_overall(metrics))
    agg = agg.dropna(subset=["value"]).head(max_rows)
    if agg.empty:
        return None
    labels = agg["metric"].astype(str)
    if "task" in agg.columns:
        labels = labels + np.where(agg["task"].notna(), " · " + agg["task"].astype(str), "")
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(agg) + 1.2))
    y = np.arange(len(agg))
    ax.errorbar(agg["value"], y, xerr=_errors(agg), fmt="o", capsize=3, color="tab:blue")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("value (95 % CI)")
    ax.set_title("Metrics, whole set")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def metrics_by_slice(metrics: pd.DataFrame, names: list[str] | None = None, max_metrics: int = 4):
    """A few metrics per slice value (view, sex, age band) with CIs, the whole set first: where it fails."""
    if "slice" not in metrics.columns or (metrics["slice"].astype(str) == "all").all():
        return None
    agg, _ = split_findings(metrics)
    names = names or list(dict.fromkeys(agg["metric"]))[:max_metrics]
    fig, axes = plt.subplots(
        1, len(names), figsize=(4.5 * len(names), 0.3 * agg["slice_value"].nunique() + 1.6)
    )
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        g = agg[agg["metric"] == name].drop_duplicates(["slice", "slice_value"])
        g = pd.concat([g[g["slice"] == "all"], g[g["slice"] != "all"].sort_values(["slice", "slice_value"])])
        y = np.arange(len(g))
        ax.errorbar(g["value"], y, xerr=_errors(g), fmt="o", capsize=3)
        labels = np.where(
            g["slice"] == "all", "all", g["slice"].astype(str) + "=" + g["slice_value"].astype(str)
        )
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def per_finding_f1(metrics: pd.DataFrame):
    """F1 per finding (one panel per labeler family, e.g. ``chexpert_rule``) with CIs."""
    _, f = split_findings(_overall(metrics))
    f = f.dropna(subset=["value"])
    if f.empty:
        return None
    families = list(dict.fromkeys(f["family"]))
    fig, axes = plt.subplots(
        1, len(families), figsize=(6 * len(families), 0.32 * f["finding"].nunique() + 1.4), squeeze=False
    )
    for ax, fam in zip(axes[0], families, strict=True):
        g = f[f["family"] == fam].drop_duplicates("finding").sort_values("value")
        y = np.arange(len(g))
        ax.barh(y, g["value"], xerr=_errors(g), capsize=2, color="tab:green", alpha=0.8)
        ax.set_yticks(y, g["finding"])
        ax.set_xlim(0, 1)
        ax.set_xlabel("F1 (95 % CI)")
        ax.set_title(f"{fam or 'F1'} per finding")
    fig.tight_layout()
    return fig


def sweep_comparison(results: pd.DataFrame, metrics: list[str] | None = None, key: str | None = None):
    """Each final metric against the first varying config key: mean ± std over seeds, seeds as dots; a
    second varying key draws one line per value (any further keys are averaged over, and say so)."""
    keys = varying_keys(results)
    key = key or (keys[0] if keys else None)
    if "state" in results.columns:
        results = results[results["state"] == "completed"]
    metrics = metrics or [c for c in results.columns if c.startswith("final.")][:4]
    if key is None or not metrics or results.empty:
        return None
    others = [k for k in keys if k != key]
    hue = others[0] if others else None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    numeric = pd.api.types.is_numeric_dtype(results[key])
    values = sorted(results[key].unique(), key=lambda v: (str(type(v)), v))
    pos = (lambda s: s) if numeric else (lambda s: s.map({v: i for i, v in enumerate(values)}))
    groups = [(None, results)] if hue is None else list(results.groupby(hue))
    for ax, m in zip(axes[0], metrics, strict=True):
        for hv, sub in groups:
            g = sub.groupby(key)[m].agg(["mean", "std"]).reset_index()
            label = "mean ± std" if hue is None else f"{hue.removeprefix('cfg.')}={hv}"
            ax.errorbar(pos(g[key]), g["mean"], yerr=g["std"].fillna(0), fmt="o-", capsize=4, label=label)
        ax.scatter(pos(results[key]), results[m], s=10, color="grey", alpha=0.6, label="runs")
        if numeric and (results[key] > 0).all() and results[key].max() / results[key].min() >= 20:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(values)), [str(v) for v in values], rotation=30)
        ax.set_xlabel(key.removeprefix("cfg."))
        ax.set_title(
            m
            + (
                f" (averaged over {', '.join(o.removeprefix('cfg.') for o in others[1:])})"
                if others[1:]
                else ""
            ),
            fontsize=9,
        )
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def arena_ratings(ratings: pd.DataFrame):
    """Bradley–Terry strength per model with its bootstrap CI, strongest on top."""
    if ratings.empty:
        return None
    r = ratings.rename(columns={"strength": "value"}).sort_values("value")
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(r) + 1.2))
    y = np.arange(len(r))
    ax.errorbar(r["value"], y, xerr=_errors(r), fmt="s", capsize=4, color="tab:purple")
    ax.set_yticks(y, r["model"].astype(str))
    ax.set_xlabel("Bradley–Terry strength (95 % CI)")
    ax.set_title("Report Arena")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def winrate_matrix(winrate: pd.DataFrame):
    """Win rate of the row model against the column model."""
    if winrate.empty:
        return None
    fig, ax = plt.subplots(figsize=(1.1 * len(winrate.columns) + 2.5, 0.9 * len(winrate) + 1.5))
    im = ax.imshow(winrate.to_numpy(float), vmin=0, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(winrate.columns)), winrate.columns.astype(str), rotation=30)
    ax.set_yticks(range(len(winrate)), winrate.index.astype(str))
    for (i, j), v in np.ndenumerate(winrate.to_numpy(float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("against")
    ax.set_ylabel("model")
    fig.colorbar(im, ax=ax, label="win rate of the row model (ties count half)")
    fig.tight_layout()
    return fig


def scores_per_task(scores: pd.DataFrame) -> pd.DataFrame:
    """Per task: rows, images, format-ok share, share cut at the token limit, boxes per row, tokens."""
    return (
        scores.assign(n_boxes=scores["boxes"].map(len), cut=scores["finish_reason"] == "length")
        .groupby("task")
        .agg(
            rows=("image_id", "size"),
            images=("image_id", "nunique"),
            format_ok=("format_ok", "mean"),
            cut_at_max_tokens=("cut", "mean"),
            boxes_per_row=("n_boxes", "mean"),
            tokens=("num_tokens", "mean"),
        )
        .reset_index()
    )


def scores_overview(per_task: pd.DataFrame):
    """Per task: the share of outputs in the grounded format and of outputs cut at the token limit
    (``per_task``: ``scores_per_task`` of the rows, or the same columns from SQL)."""
    if per_task.empty:
        return None
    g = per_task.set_index("task")
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(g) + 2), 3.2))
    x = np.arange(len(g))
    ax.bar(x - 0.2, g["format_ok"], 0.4, label="format ok")
    ax.bar(x + 0.2, g["cut_at_max_tokens"], 0.4, label="cut at max tokens")
    ax.set_xticks(x, g.index.astype(str))
    ax.set_ylim(0, 1)
    ax.set_title("Scored outputs per task")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def png_bytes(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def save(fig, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig, dpi))
    return path
