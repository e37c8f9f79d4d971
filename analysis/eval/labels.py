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
from cxr.metrics.chexpert_rules import FINDINGS, FIVE, f1_from_counts, label_report, positive_findings


def _counts(positives: list[tuple[set[str], set[str]]]) -> np.ndarray:
    """(cases, findings, [TP, FP, FN]) for the 14 findings from each case's (pred, ref) positive sets."""
    out = np.zeros((len(positives), len(FINDINGS), 3), dtype=np.int32)
    for k, (p, r) in enumerate(positives):
        for f in p | r:
            out[k, FINDINGS.index(f)] = (f in p and f in r, f in p and f not in r, f in r and f not in p)
    return out


def _f1s(counts: np.ndarray, findings: tuple[str, ...]) -> list[float]:
    cols = [FINDINGS.index(f) for f in findings]
    pooled = counts[:, cols].sum(axis=0)
    r = f1_from_counts({f: list(pooled[i]) for i, f in enumerate(findings)})
    return [r["micro"], r["macro"]]


def _label_stats(family: str, counts: np.ndarray) -> list[Stat]:
    return [
        Stat([f"{family}_f1_micro_14", f"{family}_f1_macro_14"], lambda idx: _f1s(counts[idx], FINDINGS)),
        Stat([f"{family}_f1_micro_5", f"{family}_f1_macro_5"], lambda idx: _f1s(counts[idx], FIVE)),
        # one F1 per finding (the report's per-finding plot); NaN where a finding is positive nowhere
        Stat([f"{family}.f1.{f}" for f in FINDINGS], lambda idx: _per_finding(counts[idx])),
    ]


def chexpert_rule_stats(preds: list[str], refs: list[str]) -> list[Stat]:
    pairs = [
        (positive_findings(label_report(p)), positive_findings(label_report(r)))
        for p, r in zip(preds, refs, strict=True)
    ]
    return _label_stats("chexpert_rule", _counts(pairs))


def chexbert_stats(preds: list[str], refs: list[str], labeler) -> list[Stat]:
    """The same F1s from CheXbert's labels (``analysis.eval.chexbert``), counted the same way."""
    pos = [positive_findings(d) for d in labeler.label(list(preds) + list(refs))]
    return _label_stats("chexbert", _counts(list(zip(pos[: len(preds)], pos[len(preds) :], strict=True))))


def _per_finding(counts: np.ndarray) -> list[float]:
    tp, fp, fn = counts.sum(axis=0).T.astype(float)
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return list(np.where(denom > 0, 2 * tp / denom, np.nan))


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
