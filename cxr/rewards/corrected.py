"""Corrected reward components, beside the seed's (``cxr.rewards.deepmedix``).

- ``answer_words``: the seed's accuracy branches on a 0–1 scale, with BLEU over *words* instead of
  characters, and a missing ``\\boxed{}`` scoring 0 instead of answering "None".
- ``grounding_iou``: the boxes a completion states (reasoning and answer) against the record's reference boxes: one-to-one greedy
  matching by IoU (highest first, as COCO matches), F1 of precision and recall at ``iou_threshold``;
  0 when references exist and the completion has no box; ``None`` (not applicable) for a record
  without reference boxes.
- ``report_findings``: for report records, finding-level F1 of the CheXpert-rule labeler
  (``cxr.metrics.chexpert_rules``) between the answer and the reference; ``None`` for other tasks.
"""

from __future__ import annotations

import re

from cxr.format.parse import find_boxes, last_boxed
from cxr.rewards import deepmedix as seed

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case alphanumeric tokens (rouge-score's tokenisation, without stemming)."""
    return _WORD.findall(text.lower())


def word_report_score(ans: str, g: str) -> float:
    hyp, ref = words(ans), words(g)
    if not hyp or not ref:
        return 0.0
    b1 = seed.bleu(ref, hyp, (1, 0, 0, 0))
    b4 = seed.bleu(ref, hyp, (0.25, 0.25, 0.25, 0.25))
    return (b1 + b4 + seed.rouge1(ans, g)) / 3


def answer_words(completion: str, answer: str) -> float:
    p = seed.normalize(completion)
    ans = last_boxed(p)
    if ans is None:
        return 0.0
    ans = ans or " "
    if seed.is_list_answer(answer):
        return seed.list_f1(ans, answer)
    if seed.is_short_answer(answer):
        return 1.0 if ans.lower() == answer.lower() else 0.0
    return word_report_score(ans, answer)


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(preds: list, refs: list, threshold: float) -> int:
    """Matches with IoU ≥ threshold, each box used at most once, best pairs first."""
    pairs = sorted(((iou(p, r), i, j) for i, p in enumerate(preds) for j, r in enumerate(refs)), reverse=True)
    used_p, used_r, tp = set(), set(), 0
    for v, i, j in pairs:
        if v < threshold:
            break
        if i not in used_p and j not in used_r:
            used_p.add(i)
            used_r.add(j)
            tp += 1
    return tp


def grounding_iou(completion: str, refs: list, threshold: float = 0.5) -> float | None:
    if not refs:
        return None
    # Every box the completion states (reasoning and answer); one cited twice is one claim.
    preds = [list(b) for b in dict.fromkeys(tuple(b) for b in find_boxes(completion))]
    if not preds:
        return 0.0
    tp = match_boxes(preds, refs, threshold)
    precision, recall = tp / len(preds), tp / len(refs)
    return 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)


def report_findings(completion: str, answer: str, task: str) -> float | None:
    if task != "report":
        return None
    from cxr.metrics.chexpert_rules import findings_f1

    ans = last_boxed(seed.normalize(completion))
    return 0.0 if ans is None else findings_f1(ans, answer)
