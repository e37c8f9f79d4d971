"""Score folders for arena tests: real small shards, synthetic score rows (the arena reads the folder
format `cxr score` writes — _run.json + part-*.parquet — and judges answers, whoever produced them)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cxr.score.prompts import prompt_id
from tests.conftest import small_shards


@pytest.fixture(scope="session")
def arena_shards(tmp_path_factory, deid_key):
    return small_shards(tmp_path_factory.mktemp("arena"), seed=11, studies=3)


def write_scores(
    folder: Path, shards: Path, answers: list[str], *, task: str = "report", pid: str | None = None
):
    """A score folder whose rows answer the first len(answers) images of ``shards`` with ``answers``."""
    index = pd.read_parquet(shards / "index.parquet").head(len(answers))
    rows = index[["study_id", "image_id", "view", "shard", "index"]].assign(
        task=task,
        prompt_id=pid or prompt_id(task),
        raw=[f"<think>looked</think> \\boxed{{{a}}}" for a in answers],
        reasoning="looked",
        steps=[[] for _ in answers],
        answer=answers,
        format_ok=True,
    )
    folder.mkdir(parents=True)
    rows.to_parquet(folder / "part-00000.parquet", index=False)
    (folder / "_run.json").write_text(json.dumps({"hashes": {}, "config": {"shards": str(shards)}}))
    return folder


# Fixture folders of the tables/report/notebook tests (a toy sweep, a score folder, eval/arena folders).
from tests.analysis.tables_fixtures import (  # noqa: E402,F401
    arena_dir,
    eval_dir,
    references,
    report_shards,
    scores,
    toy_sweep,
)
