"""Cold-start (b): grounded reasoning written by a teacher model through the generation backends
(vLLM on a cluster), kept only when it is well formed and agrees with the record's answer.

Acceptance mirrors the seed's reward where it is exact: the format check must pass, and the boxed
answer must equal the reference (short answers, case-insensitive) or name the same set of findings
(``a|b`` lists). For free-text reports the seed's reward is a similarity score with no pass mark, so
report samples are kept on format alone unless ``reports=False``. Each record gets up to ``tries``
samples (sampling on); the first accepted one is kept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pandas as pd

from cxr.format import parse_output


def accepts(completion: str, answer: str, *, reports: bool = True) -> tuple[bool, str]:
    """(kept?, why not)."""
    p = parse_output(completion)
    if not p.format_ok:
        return False, "format"
    if p.answer is None:
        return False, "no answer"
    ref = answer.strip()
    if "|" in ref or ref == "none":
        ok = {x.strip().lower() for x in p.answer.split("|")} == {x.strip().lower() for x in ref.split("|")}
        return ok, "" if ok else "wrong findings"
    if len(ref.split()) <= 2 or ref.startswith("["):
        ok = p.answer.strip().lower() == ref.lower()
        return ok, "" if ok else "wrong answer"
    return (True, "") if reports else (False, "report")


def teacher_samples(
    records: pd.DataFrame, images, backend, *, tries: int = 2, reports: bool = True
) -> tuple[pd.DataFrame, Counter]:
    """``images(k)`` → the PIL image of record k; ``backend`` a ``cxr.inference`` backend (sampling
    settings from its config; each try uses a different seed). Returns accepted rows + rejection counts."""
    from cxr.inference import Request

    todo = list(range(len(records)))
    kept: dict[int, str] = {}
    why: Counter = Counter()
    base = backend.cfg
    for attempt in range(tries):
        if not todo:
            break
        backend.cfg = replace(base, sampling=replace(base.sampling, seed=base.sampling.seed + attempt))
        gens = backend.generate(
            [Request(images(k), str(records["question"].iloc[k]), id=str(k)) for k in todo]
        )
        left = []
        for k, g in zip(todo, gens, strict=True):
            ok, reason = accepts(g.text, str(records["answer"].iloc[k]), reports=reports)
            if ok:
                kept[k] = g.text
            else:
                why[reason] += 1
                left.append(k)
        todo = left
    backend.cfg = base
    out = records.iloc[sorted(kept)].copy()
    out["completion"] = [kept[k] for k in sorted(kept)]
    out["source"] = "teacher"
    return out.reset_index(drop=True), why
