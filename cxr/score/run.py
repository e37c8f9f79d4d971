"""Score parts: every (image, task) of a shard through one generation backend, in large batches.

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
from cxr.inference import Request
from cxr.score.output import done_marker, read_failures, read_part, write_part
from cxr.score.prompts import prompt_id, prompt_text

ID_COLUMNS = ("study_id", "image_id", "view")  # pseudonymous (preprocessing replaced the real ones)
FAILURE_COLUMNS = ["study_id", "image_id", "shard", "index", "task", "reason", "attempts"]


def parts_of(shards: str | Path) -> list[int]:
    return sorted(
        int(s) for s in pd.read_parquet(Path(shards) / "index.parquet", columns=["shard"])["shard"].unique()
    )


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
) -> dict:
    marker = done_marker(out, part)
    old_rows, old_fail = (read_part(out, part), read_failures(out, part)) if marker else (None, None)
    positions = np.flatnonzero(ds._cols["shard"] == part)
    if marker:
        if old_fail is None or not (old_fail["attempts"] < cfg.max_attempts).any():
            return marker  # done, nothing left to retry
        retry = old_fail[old_fail["attempts"] < cfg.max_attempts]
        by_id = {ds._cols["image_id"][p]: p for p in positions}
        todo = [(by_id[i], t) for i, t in zip(retry["image_id"], retry["task"], strict=True)]
        attempts = {
            (i, t): int(a)
            for i, t, a in zip(old_fail["image_id"], old_fail["task"], old_fail["attempts"], strict=True)
        }
    else:
        todo = [(int(p), t) for p in positions for t in cfg.tasks]
        attempts = {}
    started = time.time()
    rows, failures = [], []
    for lo in range(0, len(todo), cfg.batch_size):
        batch, requests = [], []
        for pos, task in todo[lo : lo + cfg.batch_size]:
            base = {**_row_base(ds, pos), "task": task}
            try:
                item = ds[pos]
                requests.append(Request(as_rgb(item["image"]), prompt_text(task), id=str(len(batch))))
                batch.append((base, item["resize"]))
            except Exception as e:  # an unreadable image: recorded, the rest of the part goes on
                key = (base["image_id"], task)
                failures.append(
                    {**base, "reason": f"{type(e).__name__}: {e}"[:300], "attempts": attempts.get(key, 0) + 1}
                )
        t0 = time.time()
        gens = backend.generate(requests) if requests else []
        latency = time.time() - t0
        for (base, stored), g in zip(batch, gens, strict=True):
            p = g.parsed
            rows.append(
                {
                    **base,
                    "prompt_id": prompt_id(base["task"]),
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
    fail = pd.DataFrame(kept + failures, columns=FAILURE_COLUMNS)
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
