"""Ask the judge: every pair of contestants × every case × both orders, through one generation backend.

The judge is a VLM served like any other model (``cxr.inference.make_backend``), so it also sees the
case's image from the shards: it can check the answers against the film, not only against each other.
One backend is opened for the whole arena; requests go in chunks so progress can be logged and a
killed arena resumes from its last finished chunk (``OUT/judgments.parts/<plan key>/``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.arena.cases import Contestant, question_of
from analysis.arena.verdict import favoured, judge_question, parse_verdict
from cxr.config.schema import GenerateConfig
from cxr.data.shards import ShardDataset
from cxr.inference import Request, make_backend
from cxr.score.run import as_rgb

ORDERS = ("ab", "ba")  # ab: model_a's answer shown as A; ba: model_b's answer shown as A


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


def plan_key(calls: pd.DataFrame, judge: GenerateConfig, chunk: int) -> str:
    """What the judgments depend on: every call's text and order, the judge and how calls are chunked.
    A rerun with the same key may reuse an earlier run's chunks; any change starts afresh."""
    from cxr.config import to_yaml

    h = hashlib.sha256(to_yaml(judge).encode())
    h.update(str(max(chunk, judge.batch_size)).encode())
    for r in calls[["case", "model_a", "model_b", "order", "question"]].itertuples(index=False):
        h.update("\0".join(map(str, r)).encode() + b"\1")
    return h.hexdigest()[:16]


def ask(
    calls: pd.DataFrame,
    judge: GenerateConfig,
    shards,
    log: Callable[[str], None] = print,
    parts: Path | None = None,
    chunk: int = 64,
) -> pd.DataFrame:
    """Run the judge over ``calls``; adds ``raw`` (its text), ``parsed`` (A/B/tie/invalid) and
    ``favoured`` (the model it preferred, ``tie`` or ``invalid``).

    With ``parts`` (a folder per ``plan_key``), each chunk's texts are kept there as it finishes, and
    chunks found there are not asked again: a killed arena resumes where it stopped."""
    size = max(chunk, judge.batch_size)  # vLLM schedules a chunk's requests together
    chunks = {lo: calls.iloc[lo : lo + size] for lo in range(0, len(calls), size)}
    texts: dict[int, list[str]] = {}
    if parts is not None:
        parts.mkdir(parents=True, exist_ok=True)
        for lo in chunks:
            f = parts / f"chunk-{lo:08d}.parquet"
            if f.is_file():
                texts[lo] = pd.read_parquet(f)["raw"].tolist()
        if texts:
            log(f"arena: {sum(map(len, texts.values()))}/{len(calls)} judgments kept from an earlier run")
    todo = [lo for lo in chunks if lo not in texts]
    if todo:
        ds = ShardDataset(shards)
        where = {img: pos for pos, img in enumerate(ds._cols["image_id"])}
        with make_backend(judge) as backend:
            for lo in todo:
                chunk = chunks[lo]
                # each image read once per chunk; not kept across chunks (a whole archive would not fit)
                images = {i: as_rgb(np.asarray(ds[where[i]]["image"])) for i in chunk["image_id"].unique()}
                reqs = [
                    Request(images[r.image_id], r.question, id=str(k))
                    for k, r in enumerate(chunk.itertuples(index=False))
                ]
                texts[lo] = [g.text for g in backend.generate(reqs)]
                if parts is not None:
                    f = parts / f"chunk-{lo:08d}.parquet"
                    tmp = f.with_name(f".{f.name}.tmp")
                    pd.DataFrame({"raw": texts[lo]}).to_parquet(tmp, index=False)
                    os.replace(tmp, f)
                log(f"arena: {sum(map(len, texts.values()))}/{len(calls)} judgments")
    raw = [t for lo in chunks for t in texts[lo]]
    out = calls.drop(columns=["question"]).assign(raw=raw)
    out["parsed"] = [parse_verdict(t) for t in raw]
    out["favoured"] = [
        favoured(v, a, b) for v, a, b in zip(out["parsed"], out["shown_a"], out["shown_b"], strict=True)
    ]
    return out
