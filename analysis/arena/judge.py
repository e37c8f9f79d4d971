"""Ask the judge: every pair of contestants × every case × both orders, through one generation backend.

The judge is a VLM served like any other model (``cxr.inference.make_backend``), so it also sees the
case's image from the shards: it can check the answers against the film, not only against each other.
One backend is opened for the whole arena; requests go in chunks so progress can be logged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis.arena.cases import Contestant, question_of
from analysis.arena.verdict import favoured, judge_question, parse_verdict
from cxr.config.schema import GenerateConfig
from cxr.data.shards import ShardDataset
from cxr.inference import Request, make_backend
from cxr.score.run import as_rgb

ORDERS = ("ab", "ba")  # ab: model_a's answer shown as A; ba: model_b's answer shown as A
CHUNK = 64  # judge calls per backend call, at least (progress is logged per chunk)


def shown_answer(row: pd.Series) -> str:
    """The final answer if the model gave one (``\\boxed{}``), else its raw text: a model that broke
    the format still gets judged on what it said."""
    answer = row["answer"] if isinstance(row["answer"], str) else ""
    return answer if answer.strip() else (row["raw"] or "")


def plan(contestants: list[Contestant], cases: pd.DataFrame, max_chars: int) -> pd.DataFrame:
    """One row per judge call: case, model_a, model_b, order, shown_a, shown_b, question."""
    answers = {
        c.name: c.rows.set_index(["image_id", "task"]).apply(shown_answer, axis=1).to_dict()
        for c in contestants
    }
    questions = {
        (t, p): question_of(t, p) for t, p in set(zip(cases["task"], cases["prompt_id"], strict=True))
    }
    rows = []
    # case-major: a case's calls (every pair, both orders) sit together, so a chunk needs few images
    for case in cases.itertuples(index=False):
        key = (case.image_id, case.task)
        q = questions[(case.task, case.prompt_id)]
        for ca, cb in itertools.combinations(contestants, 2):
            for order in ORDERS:
                first, second = (ca.name, cb.name) if order == "ab" else (cb.name, ca.name)
                rows.append(
                    {
                        "case": case.case,
                        "image_id": case.image_id,
                        "task": case.task,
                        "model_a": ca.name,
                        "model_b": cb.name,
                        "order": order,
                        "shown_a": first,
                        "shown_b": second,
                        "question": judge_question(q, answers[first][key], answers[second][key], max_chars),
                    }
                )
    return pd.DataFrame(rows)


def ask(
    calls: pd.DataFrame, judge: GenerateConfig, shards, log: Callable[[str], None] = print
) -> pd.DataFrame:
    """Run the judge over ``calls``; adds ``raw`` (its text), ``parsed`` (A/B/tie/invalid) and
    ``favoured`` (the model it preferred, ``tie`` or ``invalid``)."""
    ds = ShardDataset(shards)
    where = {img: pos for pos, img in enumerate(ds._cols["image_id"])}
    size = max(CHUNK, judge.batch_size)  # vLLM schedules a chunk's requests together
    raw: list[str] = []
    with make_backend(judge) as backend:
        for lo in range(0, len(calls), size):
            chunk = calls.iloc[lo : lo + size]
            # each image read once per chunk; not kept across chunks (a whole archive would not fit)
            images = {i: as_rgb(np.asarray(ds[where[i]]["image"])) for i in chunk["image_id"].unique()}
            reqs = [
                Request(images[r.image_id], r.question, id=str(k))
                for k, r in enumerate(chunk.itertuples(index=False))
            ]
            raw.extend(g.text for g in backend.generate(reqs))
            log(f"arena: {len(raw)}/{len(calls)} judgments")
    out = calls.drop(columns=["question"]).assign(raw=raw)
    out["parsed"] = [parse_verdict(t) for t in raw]
    out["favoured"] = [
        favoured(v, a, b) for v, a, b in zip(out["parsed"], out["shown_a"], out["shown_b"], strict=True)
    ]
    return out
