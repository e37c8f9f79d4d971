"""Reward components over (completion, record) and the mixes GRPO trains on.

A record carries ``answer`` (the ground-truth string), ``task`` and ``boxes`` (reference boxes in
model-input pixels: a list of ``{"label", "box"}`` or its JSON, as `cxr build-data` writes it). Every
component returns a float, or ``None`` where it does not apply to the record (TRL then leaves it out
of that completion's sum). A mix is ``{component: weight}``; the total is the weighted sum. Presets:

- ``deepmedix`` (default): the seed's reward, ``0.9·accuracy + 0.1·format + coordinate``;
- ``corrected``: word-level answer score, format, IoU grounding and CheXpert-rule findings F1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from cxr.rewards import corrected
from cxr.rewards import deepmedix as seed

Component = Callable[[str, Mapping], "float | None"]

PRESETS: dict[str, dict[str, float]] = {
    "deepmedix": {"deepmedix_accuracy": 0.9, "deepmedix_format": 0.1, "deepmedix_coordinate": 1.0},
    "corrected": {"answer_words": 1.0, "deepmedix_format": 0.1, "grounding_iou": 0.5, "report_findings": 0.5},
}


def reference_boxes(record: Mapping) -> list[list[float]]:
    raw = record.get("boxes") or []
    items = json.loads(raw) if isinstance(raw, str) else raw
    return [list(b["box"]) if isinstance(b, Mapping) else list(b) for b in items]


def components(iou_threshold: float = 0.5) -> dict[str, Component]:
    return {
        "deepmedix_accuracy": lambda c, r: seed.accuracy_reward(seed.normalize(c), str(r["answer"])),
        "deepmedix_format": lambda c, r: seed.format_reward(seed.normalize(c)),
        "deepmedix_coordinate": lambda c, r: seed.coordinate_reward(seed.normalize(c)),
        "answer_words": lambda c, r: corrected.answer_words(c, str(r["answer"])),
        "grounding_iou": lambda c, r: corrected.grounding_iou(c, reference_boxes(r), iou_threshold),
        "report_findings": lambda c, r: corrected.report_findings(
            c, str(r["answer"]), str(r.get("task", ""))
        ),
    }


def resolve_mix(preset: str, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """``weights`` (when given) replaces the preset; names are checked against the components."""
    if weights:
        mix = dict(weights)
    elif preset in PRESETS:
        mix = dict(PRESETS[preset])
    else:
        raise ValueError(f"reward.preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    unknown = sorted(set(mix) - set(components()))
    if unknown:
        raise ValueError(f"reward.weights: unknown component(s) {unknown} (known: {', '.join(components())})")
    return mix


def score(completion: str, record: Mapping, mix: Mapping[str, float], iou_threshold: float = 0.5) -> dict:
    """Every component of the mix and ``total`` (the weighted sum of those that apply)."""
    comps = components(iou_threshold)
    out = {name: comps[name](completion, record) for name in mix}
    out["total"] = sum(mix[n] * v for n, v in out.items() if v is not None)
    return out


def completion_text(completion) -> str:
    """TRL passes plain strings, or conversational ``[{"role": "assistant", "content": …}]``."""
    if isinstance(completion, str):
        return completion
    parts = []
    for msg in completion:
        content = msg.get("content", "") if isinstance(msg, Mapping) else msg
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(str(c.get("text", "")) for c in content if isinstance(c, Mapping))
    return "".join(parts)


class TrlReward:
    """One component as a TRL reward function. TRL names a reward after its ``__name__`` (so it logs
    ``rewards/<name>/mean``) and passes the dataset's extra columns as lists; a class instance rather
    than a closure so it pickles."""

    def __init__(self, name: str, iou_threshold: float = 0.5):
        self.__name__ = name
        self.iou_threshold = iou_threshold

    def __call__(self, completions, answer, task=None, boxes=None, **_):
        fn = components(self.iou_threshold)[self.__name__]
        n = len(completions)
        task = task if task is not None else [""] * n
        boxes = boxes if boxes is not None else [[]] * n
        return [
            fn(completion_text(c), {"answer": a, "task": t, "boxes": b})
            for c, a, t, b in zip(completions, answer, task, boxes, strict=True)
        ]


def trl_reward_funcs(mix: Mapping[str, float], iou_threshold: float = 0.5) -> tuple[list, list[float]]:
    """One TRL reward function per component of the mix, and the matching ``reward_weights``."""
    return [TrlReward(n, iou_threshold) for n in mix], [float(mix[n]) for n in mix]
