"""``cxr eval``: every metric per task, per slice, with bootstrap CIs → one tidy table.

    OUT/metrics.parquet, OUT/metrics.csv   metric, task, slice, slice_value, value, ci_low, ci_high, n
    OUT/summary.json                       headline numbers (slice "all"), skipped metrics with reasons
    OUT/config.yaml, OUT/meta.json         what produced it (RunRecord)

Metrics by the record task they apply to: report → BLEU-1..4, ROUGE-L, CIDEr, METEOR, CheXpert-rule
F1, CheXbert F1 and RadGraph F1 (staged weights); findings → finding-list F1; vqa_* → accuracy; any task with
reference boxes → grounding; every scored task, references or not → format_ok rate and boxes per answer.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.eval import chexbert, inputs
from analysis.eval.bootstrap import Stat, estimate, generator, mean_stat
from analysis.eval.grounding import grounding_stats, predicted_boxes
from analysis.eval.labels import chexbert_stats, chexpert_rule_stats, finding_list_stats
from analysis.eval.text import TextMetrics
from analysis.eval.vqa import NORMALIZERS, correct
from cxr.config import RunRecord
from cxr.config.schema import EvalConfig
from cxr.errors import UserError

COLUMNS = ["metric", "task", "slice", "slice_value", "value", "ci_low", "ci_high", "n"]


def learned_metrics(cfg: EvalConfig) -> dict[str, str]:
    """RadGraph F1 and CheXbert F1 need staged model weights; nothing is ever downloaded. A named
    folder is checked here (a bad one fails before any work); an empty name skips with a reason."""
    skipped = {}
    if cfg.chexbert_dir:
        _labeler(cfg.chexbert_dir)  # loads once (cached): a folder that does not load fails here
    else:
        skipped["chexbert_f1"] = "chexbert_dir not set: needs locally staged weights (never downloaded)"
    if cfg.radgraph_dir:
        from analysis.eval.radgraph import check_folder

        check_folder(cfg.radgraph_dir)
    else:
        skipped["radgraph_f1"] = "radgraph_dir not set: needs locally staged weights (never downloaded)"
    return skipped


@functools.cache
def _labeler(folder: str) -> chexbert.CheXbert:
    return chexbert.CheXbert(folder)


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def task_stats(task: str, cases: pd.DataFrame, cfg: EvalConfig, closers: list) -> tuple[list[Stat], dict]:
    stats: list[Stat] = []
    skipped: dict[str, str] = {}
    preds, refs = [_text(a) for a in cases["answer"]], [_text(a) for a in cases["ref_answer"]]
    if task == "report":
        text = TextMetrics(preds, [[r] for r in refs])
        closers.append(text)
        stats += text.stats() + chexpert_rule_stats(preds, refs)
        if cfg.chexbert_dir:
            stats += chexbert_stats(preds, refs, _labeler(cfg.chexbert_dir))
        if cfg.radgraph_dir:
            from analysis.eval.radgraph import radgraph_stats

            stats += radgraph_stats(preds, refs, cfg.radgraph_dir)
        skipped.update({f"{k}/{task}": v for k, v in text.skipped.items()})
        skipped["tokenizer"] = text.tokenizer
    elif task == "findings":
        stats += finding_list_stats(preds, refs)
    elif task in NORMALIZERS:
        stats.append(
            mean_stat("accuracy", np.array([correct(task, p, r) for p, r in zip(preds, refs, strict=True)]))
        )
    return stats, skipped


def _slices(df: pd.DataFrame, slices: list[str]) -> list[tuple[str, str, np.ndarray]]:
    out = [("all", "all", np.arange(len(df)))]
    for s in slices:
        if s in df.columns:
            values = df[s].astype("string").fillna("unknown")
            for v in sorted(values.unique()):
                out.append((s, str(v), np.flatnonzero((values == v).to_numpy())))
    return out


def _rows(task: str, df: pd.DataFrame, stats: list[Stat], cfg: EvalConfig) -> list[dict]:
    rows = []
    for slice_name, value, pos in _slices(df, cfg.slices):
        for stat in stats:
            n_boot = cfg.bootstrap_corpus if stat.corpus else cfg.bootstrap
            rng = generator(cfg.seed, task, slice_name, value, stat.names[0])
            for name, (v, lo, hi) in zip(stat.names, estimate(stat, pos, n_boot, rng), strict=True):
                rows.append(
                    dict(
                        metric=name,
                        task=task,
                        slice=slice_name,
                        slice_value=value,
                        value=v,
                        ci_low=lo,
                        ci_high=hi,
                        n=len(pos),
                    )
                )
    return rows


def compute(
    cfg: EvalConfig, scores: pd.DataFrame, refs: pd.DataFrame | None, log=print, shards: str = ""
) -> tuple[pd.DataFrame, dict]:
    summary: dict = {"score_rows": len(scores), "skipped": learned_metrics(cfg)}
    rows: list[dict] = []
    n_boxes = np.array([len(b) if b is not None else 0 for b in scores["boxes"]], dtype=float)
    for task, part in scores.groupby("task", sort=True):
        pos = part.index.to_numpy()
        fmt = [
            mean_stat("format_ok_rate", scores["format_ok"].to_numpy(dtype=float)[pos]),
            mean_stat("boxes_per_answer", n_boxes[pos]),
        ]
        rows += _rows(str(task), part.reset_index(drop=True), fmt, cfg)
    closers: list = []
    try:
        if refs is None:
            summary["skipped"]["reference metrics"] = "no references given (--references DATA/test.parquet)"
        else:
            joined, on = inputs.join(scores, refs)
            scale, box_note = inputs.box_scale(joined, cfg.scores, shards)
            joined["box_scale"] = scale
            summary.update(joined_rows=len(joined), joined_on=on, boxes=box_note)
            log(f"eval: {len(joined)} score rows matched a reference (on {on})")
            for task, part in joined.groupby("task", sort=True):
                t0 = time.perf_counter()
                cases = part.reset_index(drop=True)
                stats, skipped = task_stats(str(task), cases, cfg, closers)
                tok = skipped.pop("tokenizer", None)
                if tok:
                    summary["tokenizer"] = tok
                summary["skipped"].update(skipped)
                rows += _rows(str(task), cases, stats, cfg)
                boxed = cases[[len(b) > 0 for b in cases["ref_boxes"]]].reset_index(drop=True)
                if len(boxed):
                    preds = [
                        [[v * f for v in box] for box in predicted_boxes(a, b)]
                        for a, b, f in zip(boxed["answer"], boxed["boxes"], boxed["box_scale"], strict=True)
                    ]
                    rows += _rows(
                        str(task),
                        boxed,
                        grounding_stats(preds, list(boxed["ref_boxes"]), cfg.iou_threshold),
                        cfg,
                    )
                log(f"eval: {task}: {len(cases)} case(s) in {time.perf_counter() - t0:.1f} s")
    finally:
        for c in closers:
            c.close()
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["n"] = table["n"].astype("int64")
    head = table[table["slice"] == "all"]
    summary["headline"] = {
        t: {
            r.metric: {"value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": int(r.n)}
            for r in g.itertuples()
        }
        for t, g in head.groupby("task", sort=True)
    }
    summary.update(
        bootstrap=cfg.bootstrap, bootstrap_corpus=cfg.bootstrap_corpus, iou_threshold=cfg.iou_threshold
    )
    return table, summary


def evaluate(cfg: EvalConfig, log=print) -> Path:
    """Metrics of ``cfg.scores`` against ``cfg.references`` into ``cfg.out``; returns the folder."""
    if not cfg.scores or not cfg.out:
        raise UserError("eval needs scores=SCORES and out=OUT")
    scores = inputs.load_scores(cfg.scores)
    refs = inputs.load_references(cfg.references) if cfg.references else None
    learned_metrics(cfg)  # a bad weights folder fails before any work
    shards = cfg.shards or inputs.run_shards(cfg.scores)
    scores, slice_skips = inputs.attach_slices(scores, shards, cfg.slices)
    out = Path(cfg.out)
    with RunRecord(out, cfg, kind="eval"):
        table, summary = compute(cfg, scores, refs, log, shards=shards)
        summary["skipped"].update(slice_skips)
        table.to_parquet(out / "metrics.parquet", index=False)
        table.to_csv(out / "metrics.csv", index=False)
        (out / "summary.json").write_text(json.dumps(_clean(summary), indent=1, allow_nan=False) + "\n")
    return out


def _clean(x):
    """JSON without NaN (an empty CI is null, not the non-standard NaN token)."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
