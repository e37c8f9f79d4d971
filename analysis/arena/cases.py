"""The arena's contestants and cases, from `cxr score` folders.

A contestant is a score folder, named by its folder name or by ``name=path``. A case is an
(image_id, task) that every folder answered; the same case must have been asked with the same prompt
(``prompt_id``) everywhere, or the answers are not comparable and we refuse rather than guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cxr.errors import UserError
from cxr.score.prompts import PROMPTS, prompt_id

CASE_KEY = ["image_id", "task"]
COLUMNS = ["image_id", "task", "prompt_id", "answer", "raw"]
RESERVED = {"tie", "invalid"}  # outcome labels; a model may not be called so


@dataclass
class Contestant:
    name: str
    path: Path
    rows: pd.DataFrame  # image_id, task, prompt_id, answer, raw — one row per case


def _split_spec(spec: str) -> tuple[str | None, str]:
    name, sep, path = spec.partition("=")
    return (name, path) if sep and name and "/" not in name else (None, spec)


def read_answers(path: Path) -> pd.DataFrame:
    """The columns the arena needs, from this folder's own parts only: ``pd.read_parquet(folder)``
    would also read a ``new_version`` folder's ``v2/`` parts beneath it and mix two models' rows."""
    parts = sorted(path.glob("part-*.parquet"))
    have = set(pq.read_schema(parts[0]).names)
    missing = set(COLUMNS) - have
    if missing:
        raise UserError(f"{parts[0]}: score rows lack columns {sorted(missing)}")
    df = pd.concat([pd.read_parquet(p, columns=COLUMNS) for p in parts], ignore_index=True)
    return df.drop_duplicates(CASE_KEY, keep="last").reset_index(drop=True)


def load_contestants(scores: list[str], names: list[str]) -> list[Contestant]:
    if len(scores) < 2:
        raise UserError(f"arena: need at least two score folders to compare, got {len(scores)}")
    if names and len(names) != len(scores):
        raise UserError(f"names: {len(names)} given for {len(scores)} score folders")
    out = []
    for k, spec in enumerate(scores):
        name, path = _split_spec(spec)
        path = Path(path)
        name = names[k] if names else (name or path.name)
        if not path.is_dir():
            raise UserError(f"score folder {path} does not exist")
        if not (path / "_run.json").is_file() or not list(path.glob("part-*.parquet")):
            raise UserError(f"{path} is not a `cxr score` output folder (no _run.json or part-*.parquet)")
        if name in RESERVED:
            raise UserError(f"model name {name!r} is reserved; name the folder with name=path")
        df = read_answers(path)
        out.append(Contestant(name, path, df))
    seen = [c.name for c in out]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise UserError(f"two score folders share the name {dupes[0]!r}; name them with name=path")
    return out


def common_cases(contestants: list[Contestant], max_cases: int, seed: int) -> pd.DataFrame:
    """Cases (image_id, task, prompt_id) every contestant answered; a seeded sample if ``max_cases``."""
    keys = None
    for c in contestants:
        k = c.rows[CASE_KEY + ["prompt_id"]].rename(columns={"prompt_id": f"prompt_id:{c.name}"})
        keys = k if keys is None else keys.merge(k, on=CASE_KEY, how="inner")
    if keys is None or keys.empty:
        raise UserError(
            "no common cases: no (image_id, task) was answered by every score folder "
            f"({', '.join(c.name for c in contestants)})"
        )
    pid = keys[[f"prompt_id:{c.name}" for c in contestants]]
    differ = pid.nunique(axis=1) > 1
    if differ.any():
        row = keys[differ].iloc[0]
        raise UserError(
            f"score folders asked task {row['task']!r} with different prompts "
            f"({', '.join(sorted(set(pid[differ].iloc[0])))}); answers to different prompts are not "
            "comparable: rescore with the same prompt set"
        )
    cases = keys[CASE_KEY].assign(prompt_id=pid.iloc[:, 0]).sort_values(CASE_KEY).reset_index(drop=True)
    if max_cases and len(cases) > max_cases:
        pick = np.sort(np.random.default_rng(seed).choice(len(cases), size=max_cases, replace=False))
        cases = cases.iloc[pick].reset_index(drop=True)
    cases.insert(0, "case", [f"{i}|{t}" for i, t in zip(cases["image_id"], cases["task"], strict=True)])
    return cases


def question_of(task: str, pid: str) -> str:
    """The task's question as the models were asked it (without the reasoning suffix)."""
    if task not in PROMPTS:
        raise UserError(f"task {task!r} is not in the prompt set ({', '.join(PROMPTS)})")
    if prompt_id(task) != pid:
        raise UserError(
            f"task {task!r}: the scores were asked with prompt {pid}, this harness asks {prompt_id(task)}; "
            "rescore with this version"
        )
    return PROMPTS[task]


def shards_of(contestants: list[Contestant], override: str) -> Path:
    if override:
        path = Path(override)
    else:
        run = json.loads((contestants[0].path / "_run.json").read_text())
        path = Path(run.get("config", {}).get("shards", ""))
    if not (path / "index.parquet").is_file():
        raise UserError(f"shards={path}: not a shards folder (no index.parquet); set shards=SHARDS")
    return path


def check_images(cases: pd.DataFrame, shards: Path) -> None:
    """Every case's image must be in the shards the judge will look at (before anything is written)."""
    known = set(pd.read_parquet(shards / "index.parquet", columns=["image_id"])["image_id"])
    missing = set(cases["image_id"]) - known
    if missing:
        raise UserError(f"shards={shards}: {len(missing)} case image(s) are not in it; set shards=SHARDS")
