"""Grounding: predicted boxes against reference boxes, in the model-input pixels both are stated in.

- ``iou_mean``: per case, each reference box's IoU with the prediction it is matched to one-to-one
  (greedy, best pairs first, as COCO matches; 0 when unmatched), averaged over references, then
  over cases.
- ``box_precision@T`` / ``box_recall@T``: matches with IoU ≥ T (``cxr.rewards.corrected.match_boxes``,
  the reward's own matching) over all predicted / all reference boxes, pooled over cases.
- ``map`` (AP averaged over IoU 0.50:0.95) and ``ap50``: pycocotools' COCOeval, one category. The
  model states no confidences, so a box's score is 1/(1 + its rank) in the order it was stated.

Which boxes count as predicted: those in the answer (``\\boxed{[x1,y1,x2,y2]}`` for grounding
records); when the answer has none, those of the reasoning (the ``boxes`` column).
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from analysis.eval.bootstrap import Stat, mean_stat, ratio_stat
from cxr.format import find_boxes
from cxr.rewards.corrected import iou, match_boxes


def predicted_boxes(answer: object, reasoning_boxes) -> list[list[float]]:
    stated = find_boxes(answer) if isinstance(answer, str) else []
    boxes = stated or [list(b) for b in (reasoning_boxes if reasoning_boxes is not None else [])]
    return [list(map(float, b)) for b in dict.fromkeys(tuple(b) for b in boxes)]


def matched_ious(preds: list, refs: list) -> list[float]:
    """IoU of each reference with its one-to-one greedy match (0 when it gets none)."""
    pairs = sorted(((iou(p, r), i, j) for i, p in enumerate(preds) for j, r in enumerate(refs)), reverse=True)
    used_p, best = set(), [0.0] * len(refs)
    used_r: set[int] = set()
    for v, i, j in pairs:
        if v > 0 and i not in used_p and j not in used_r:
            used_p.add(i)
            used_r.add(j)
            best[j] = v
    return best


class CocoAP:
    """COCO AP of ranked boxes over cases, with pycocotools' COCOeval.

    ``evaluate()`` (the IoU matching inside each image) runs once; a bootstrap resample only redoes
    ``accumulate()`` + ``summarize()`` over the resampled images' evaluations, laid out as COCOeval
    lays them out (category × area range × image). A resample's value equals a fresh COCOeval on
    the resampled cases (tested)."""

    def __init__(self, preds: list[list], refs: list[list]):
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        self.n, self.ev = len(refs), None
        anns = []
        for k, rs in enumerate(refs):
            for r in rs:
                w, h = r[2] - r[0], r[3] - r[1]
                anns.append(
                    {"id": len(anns) + 1, "image_id": k + 1, "category_id": 1, "iscrowd": 0}
                    | {"bbox": [r[0], r[1], w, h], "area": w * h}
                )
        dets = [
            [k + 1, b[0], b[1], b[2] - b[0], b[3] - b[1], 1.0 / (1 + rank), 1]
            for k, ps in enumerate(preds)
            for rank, b in enumerate(ps)
        ]
        self.has_refs, self.has_dets = bool(anns), bool(dets)
        if not (anns and dets):
            return
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {
                "images": [{"id": k + 1} for k in range(self.n)],
                "annotations": anns,
                "categories": [{"id": 1, "name": "finding"}],
            }
            gt.createIndex()
            self.ev = COCOeval(gt, gt.loadRes(np.array(dets, dtype=float)), "bbox")
            self.ev.evaluate()
        self.per_area = [
            self.ev.evalImgs[a * self.n : (a + 1) * self.n] for a in range(len(self.ev.params.areaRng))
        ]
        self.params = copy.deepcopy(self.ev._paramsEval)

    def score(self, idx: np.ndarray) -> list[float]:
        """[AP@[.50:.95], AP@.50] over the cases at ``idx`` (repeats allowed)."""
        if self.ev is None:  # no box on one side: AP 0 without predictions, undefined without references
            return [0.0, 0.0] if self.has_refs else [float("nan")] * 2
        ev = self.ev
        ev.evalImgs = [area[i] for area in self.per_area for i in idx]
        # accumulate() walks params.imgIds and finds each image's evaluation by its position
        ev.params, ev._paramsEval = copy.copy(self.params), copy.copy(self.params)
        ev.params.imgIds = ev._paramsEval.imgIds = list(range(len(idx)))
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
            ev.summarize()
        return [float(x) if x >= 0 else float("nan") for x in ev.stats[:2]]


def coco_map(preds: list[list], refs: list[list]) -> tuple[float, float]:
    """(AP@[.50:.95], AP@.50) over cases: ``preds[k]`` in rank order, ``refs[k]`` reference boxes."""
    cap = CocoAP(preds, refs)
    if cap.ev is None:
        ap, ap50 = cap.score(np.arange(len(refs)))
        return ap, ap50
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval's own accumulate over the full set
        cap.ev.accumulate()
        cap.ev.summarize()
    ap, ap50 = (float(x) if x >= 0 else float("nan") for x in cap.ev.stats[:2])
    return ap, ap50


def grounding_stats(preds: list[list], refs: list[list], threshold: float) -> list[Stat]:
    """Cases are rows with at least one reference box."""
    tp = np.array([match_boxes(p, r, threshold) for p, r in zip(preds, refs, strict=True)], dtype=float)
    n_pred = np.array([len(p) for p in preds], dtype=float)
    n_ref = np.array([len(r) for r in refs], dtype=float)
    ious = np.array([np.mean(matched_ious(p, r)) for p, r in zip(preds, refs, strict=True)], dtype=float)
    return [
        mean_stat("iou_mean", ious),
        ratio_stat(f"box_precision@{threshold:g}", tp, n_pred),
        ratio_stat(f"box_recall@{threshold:g}", tp, n_ref),
        Stat(
            ["map", "ap50"],
            CocoAP(preds, refs).score,
            corpus=True,
        ),
    ]
