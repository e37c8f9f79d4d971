"""Finding-level F1 of generated reports with the CheXpert-rule labeler (``cxr.metrics.chexpert_rules``),
the same labeler the ``report_findings`` reward uses.

Named ``chexpert_rule_*`` on purpose: it is a regex approximation of the CheXpert labeler, not the
labeler itself and not CheXbert, so its numbers must not be compared with papers' CheXbert F1.
Uncertain mentions count as positive (the CheXpert "U-ones" convention). Labels are computed once
per case; a bootstrap resample only re-sums the (TP, FP, FN) counts.
"""

from __future__ import annotations

import numpy as np

from analysis.eval.bootstrap import Stat
from cxr.metrics.chexpert_rules import FINDINGS, FIVE, f1_from_counts, pair_counts


def _counts(preds: list[str], refs: list[str]) -> np.ndarray:
    """(cases, findings, [TP, FP, FN]) for the 14 findings."""
    out = np.zeros((len(preds), len(FINDINGS), 3), dtype=np.int32)
    col = {f: i for i, f in enumerate(FINDINGS)}
    for k, (p, r) in enumerate(zip(preds, refs, strict=True)):
        for f, c in pair_counts(p, r).items():
            out[k, col[f]] = c
    return out


def _f1s(counts: np.ndarray, findings: tuple[str, ...]) -> list[float]:
    cols = [FINDINGS.index(f) for f in findings]
    pooled = counts[:, cols].sum(axis=0)
    r = f1_from_counts({f: list(pooled[i]) for i, f in enumerate(findings)})
    return [r["micro"], r["macro"]]


def chexpert_rule_stats(preds: list[str], refs: list[str]) -> list[Stat]:
    counts = _counts(preds, refs)
    return [
        Stat(
            ["chexpert_rule_f1_micro_14", "chexpert_rule_f1_macro_14"],
            lambda idx: _f1s(counts[idx], FINDINGS),
        ),
        Stat(["chexpert_rule_f1_micro_5", "chexpert_rule_f1_macro_5"], lambda idx: _f1s(counts[idx], FIVE)),
    ]


def _label_set(text: str) -> set[str]:
    items = {" ".join(x.lower().split()) for x in str(text or "").split("|")}
    return {x for x in items if x and x != "none"}


def finding_list_stats(preds: list[str], refs: list[str]) -> list[Stat]:
    """``findings`` task ("a|b|c" answers): micro F1 of the named findings, exact names after case
    and whitespace folding; "none" is the empty list."""
    tp = np.array([len(_label_set(p) & _label_set(r)) for p, r in zip(preds, refs, strict=True)], dtype=float)
    np_ = np.array([len(_label_set(p)) for p in preds], dtype=float)
    nr = np.array([len(_label_set(r)) for r in refs], dtype=float)

    def fn(idx: np.ndarray) -> list[float]:
        t, p, r = tp[idx].sum(), np_[idx].sum(), nr[idx].sum()
        return [1.0 if p + r == 0 else 2 * t / (p + r)]

    return [Stat(["finding_list_f1_micro"], fn)]
