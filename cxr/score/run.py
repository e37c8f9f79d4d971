"""Score parts: every (image, task) of a shard through one generation backend, in large batches.

With ``records`` (a build-data split, ``ScoreConfig.records``) the work is every record whose image
is in the shard instead, each asked its own question with the grounded suffix; its rows carry
``record_id`` and the record's task, so ``cxr eval`` can join them one to one.

A part is one shard. ``score_parts`` skips parts already marked done, retries the rows of done parts
that failed fewer than ``max_attempts`` times, and writes each part whole (``cxr.score.output``).
An image that cannot be read becomes a failure row with its reason; the rest of the part is scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cxr.config.schema import ScoreConfig
from cxr.data.shards import ShardDataset
from cxr.errors import UserError
from cxr.format import grounded_prompt
from cxr.inference import Request
from cxr.score.output import done_marker, read_failures, read_part, write_part
from cxr.score.prompts import prompt_id, prompt_text

ID_COLUMNS = ("study_id", "image_id", "view")  # pseudonymous (preprocessing replaced the real ones)
FAILURE_COLUMNS = ["study_id", "image_id", "shard", "index", "task", "reason", "attempts"]
RECORD_COLUMNS = ("record_id", "task", "image_id", "question")


def parts_of(shards: str | Path, records: pd.DataFrame | None = None) -> list[int]:
    """Every shard, or with records only the shards that hold a record's image."""
    if records is not None:
        return sorted(int(s) for s in records["shard"].unique())
    return sorted(
        int(s) for s in pd.read_parquet(Path(shards) / "index.parquet", columns=["shard"])["shard"].unique()
    )


def load_records(path: str | Path, shards: str | Path) -> pd.DataFrame:
    """The records of a build-data split whose images are in ``shards``, located by image_id (only the
    columns scoring needs: no patient or accession ids travel into the score rows)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"records={path} does not exist (a `cxr build-data` split, e.g. DATA/test.parquet)")
    df = pd.read_parquet(path)
    missing = [c for c in RECORD_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"records={path} lacks column(s) {', '.join(missing)}")
    if df["record_id"].duplicated().any():
        raise UserError(f"records={path} has duplicate record_id values")
    index = pd.read_parquet(Path(shards) / "index.parquet", columns=["image_id", "shard"])
    df = df[list(RECORD_COLUMNS)].merge(index.drop_duplicates("image_id"), on="image_id", how="inner")
    if df.empty:
        raise UserError(f"records={path}: none of its images is in {shards}")
    return df.sort_values(["shard", "record_id"]).reset_index(drop=True)


def _work(cfg: ScoreConfig, ds: ShardDataset, part: int, records: pd.DataFrame | None) -> list[tuple]:
    """(position, task, prompt, record_id) for every prompt of the part, in a fixed order."""
    positions = np.flatnonzero(ds._cols["shard"] == part)
    if records is None:
        return [(int(p), t, prompt_text(t), None) for p in positions for t in cfg.tasks]
    by_id = {ds._cols["image_id"][p]: int(p) for p in positions}
    mine = records[records["shard"] == part]
    return [
        (by_id[r.image_id], r.task, grounded_prompt(r.question), r.record_id)
        for r in mine.itertuples(index=False)
    ]


def _key(image_id, task, record_id):
    """What a prompt is known by across reruns: its record, else its (image, task)."""
    return record_id if record_id is not None and record_id == record_id else (image_id, task)


def as_rgb(image: np.ndarray) -> Image.Image:
    """A stored shard image (uint8 or uint16 grey) as the RGB image the processor expects."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    return Image.fromarray(image).convert("RGB")


def _row_base(ds: ShardDataset, pos: int) -> dict:
    row = {c: ds._cols[c][pos] for c in ID_COLUMNS if c in ds._cols}
    row.update(shard=int(ds._cols["shard"][pos]), index=int(ds._cols["index"][pos]))
    return row


def score_part(
    cfg: ScoreConfig,
    out: Path,
    part: int,
    hashes: dict,
    backend,
    ds: ShardDataset,
    log: Callable[[str], None] = print,
    records: pd.DataFrame | None = None,
) -> dict:
    marker = done_marker(out, part)
    old_rows, old_fail = (read_part(out, part), read_failures(out, part)) if marker else (None, None)
    work = _work(cfg, ds, part, records)
    image_ids = ds._cols["image_id"]
    if marker:
        if old_fail is None or not (old_fail["attempts"] < cfg.max_attempts).any():
            return marker  # done, nothing left to retry
        rids = old_fail["record_id"] if "record_id" in old_fail.columns else [None] * len(old_fail)
        keys = [_key(*k) for k in zip(old_fail["image_id"], old_fail["task"], rids, strict=True)]
        attempts = dict(zip(keys, old_fail["attempts"].astype(int), strict=True))
        retry = {k for k, a in attempts.items() if a < cfg.max_attempts}
        todo = [w for w in work if _key(image_ids[w[0]], w[1], w[3]) in retry]
    else:
        todo, attempts = work, {}
    started = time.time()
    rows, failures = [], []
    for lo in range(0, len(todo), cfg.batch_size):
        batch, requests = [], []
        for pos, task, text, record_id in todo[lo : lo + cfg.batch_size]:
            base = {**_row_base(ds, pos), "task": task}
            if records is not None:
                base["record_id"] = record_id
            try:
                item = ds[pos]
                requests.append(Request(as_rgb(item["image"]), text, id=str(len(batch))))
                batch.append((base, item["resize"], text))
            except Exception as e:  # an unreadable image: recorded, the rest of the part goes on
                key = _key(base["image_id"], task, record_id)
                failures.append(
                    {**base, "reason": f"{type(e).__name__}: {e}"[:300], "attempts": attempts.get(key, 0) + 1}
                )
        t0 = time.time()
        gens = backend.generate(requests) if requests else []
        latency = time.time() - t0
        for (base, stored, text), g in zip(batch, gens, strict=True):
            p = g.parsed
            rows.append(
                {
                    **base,
                    "prompt_id": prompt_id(base["task"], text),
                    "raw": g.text,
                    "reasoning": p.reasoning,
                    "steps": p.steps,
                    "boxes": p.boxes,
                    "boxes_original": [stored.to_original(g.resize.to_original(b)) for b in p.boxes]
                    if g.resize
                    else [],
                    "answer": p.answer,
                    "format_ok": p.format_ok,
                    "num_tokens": len(g.token_ids),
                    "finish_reason": "length" if len(g.token_ids) >= cfg.sampling.max_new_tokens else "stop",
                    "latency_s": latency,  # wall time of the backend call that produced the row (a batch)
                }
            )
        done = min(lo + cfg.batch_size, len(todo))
        rate = done / max(time.time() - started, 1e-9)
        log(
            f"part {part}: {done}/{len(todo)} prompts, {rate:.2f}/s, ETA {(len(todo) - done) / max(rate, 1e-9):.0f} s"
        )
    new = pd.DataFrame(rows)
    all_rows = new if old_rows is None else pd.concat([old_rows, new], ignore_index=True)
    # failures past the cap stay on record; the retried ones either scored now or failed again (in `failures`)
    kept = [] if old_fail is None else old_fail[old_fail["attempts"] >= cfg.max_attempts].to_dict("records")
    columns = FAILURE_COLUMNS + (["record_id"] if records is not None else [])
    fail = pd.DataFrame(kept + failures, columns=columns)
    marker = {
        "part": part,
        "rows": len(all_rows),
        "failed": len(fail),
        "attempt": (marker or {}).get("attempt", 0) + 1,
        "hashes": hashes,
        "seconds": round(time.time() - started, 3),
        "prompts": len(todo),
    }
    write_part(out, part, all_rows, fail, marker)
    return marker
