"""`cxr score`: plan the parts in this process, one throttled array task per group of parts, wait
with progress, gather failures; `cxr score status` reads the folder.

Array tasks are ``submitit`` Checkpointables: at USR2 (preemption, time limit) the same call is
requeued; it skips the parts marked done and scores the rest, the interrupted part from its start
(a part is written whole or not at all, so nothing is lost or doubled).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import submitit

from cxr.config.schema import GenerateConfig, ScoreConfig
from cxr.errors import UserError
from cxr.score.output import FAILURES_FILE, RUN_FILE, done_marker, gather_failures, open_run, read_failures
from cxr.score.run import load_records, parts_of, score_part
from jobs.submission import map_array


def pending(cfg: ScoreConfig, out: Path, part: int) -> bool:
    if done_marker(out, part) is None:
        return True
    fail = read_failures(out, part)
    return fail is not None and bool((fail["attempts"] < cfg.max_attempts).any())


class ScoreTask(submitit.helpers.Checkpointable):
    def __init__(self, cfg: ScoreConfig, out: str, hashes: dict):
        self.cfg, self.out, self.hashes = cfg, out, hashes

    def __call__(self, parts: list[int]) -> dict:
        from cxr.data.shards import ShardDataset
        from cxr.inference import make_backend

        cfg, out = self.cfg, Path(self.out)
        todo = [p for p in parts if pending(cfg, out, p)]
        if not todo:
            return {"parts": 0, "rows": 0}
        gen = GenerateConfig(
            backend=cfg.backend,
            batch_size=cfg.batch_size,
            model=cfg.model,
            image=cfg.image,
            sampling=cfg.sampling,
            vllm=cfg.vllm,
        )
        ds = ShardDataset(cfg.shards)
        records = load_records(cfg.records, cfg.shards) if cfg.records else None
        rows = 0
        with make_backend(gen) as backend:
            for part in todo:
                rows += score_part(
                    cfg,
                    out,
                    part,
                    self.hashes,
                    backend,
                    ds,
                    log=lambda s: print(s, flush=True),
                    records=records,
                )["rows"]
        return {"parts": len(todo), "rows": rows}


def score(cfg: ScoreConfig, log=print) -> Path:
    shards = Path(cfg.shards)
    if not (shards / "index.parquet").is_file():
        raise UserError(f"{shards} has no index.parquet: not a shards folder (run `cxr preprocess` first)")
    records = load_records(cfg.records, shards) if cfg.records else None
    out, hashes = open_run(cfg)
    parts = parts_of(shards, records)
    todo = [p for p in parts if pending(cfg, out, p)]
    log(f"score: {len(parts)} part(s), {len(todo)} to do → {out}")
    if todo:
        groups = [todo[i : i + cfg.parts_per_task] for i in range(0, len(todo), cfg.parts_per_task)]
        t0 = time.perf_counter()
        sub = map_array(
            ScoreTask(replace(cfg, out=str(out)), str(out), hashes),
            groups,
            cfg=cfg.executor,
            run_dir=out / "_jobs",
            name="score",
        )
        sub.wait()
        bad = [o for o in sub.outcomes() if not o.ok]
        if bad:
            raise UserError(
                f"{len(bad)} scoring task(s) failed ({', '.join(sorted({o.state for o in bad}))}); logs in "
                f"{out / '_jobs' / 'jobs'}; rerun the same command to score only what is missing"
            )
        log(f"tasks: {len(groups)} done in {time.perf_counter() - t0:.1f} s")
    n_fail = gather_failures(out)
    log(f"failures: {n_fail} row(s) in {out / FAILURES_FILE}" if n_fail else "failures: none")
    return out


def status(out: str | Path) -> dict:
    """Parts done / pending / with failures, rows and throughput, from the folder alone."""
    out = Path(out)
    rec = out / RUN_FILE
    if not rec.is_file():
        raise UserError(f"{out} has no {RUN_FILE}: not a `cxr score` output folder")
    run = json.loads(rec.read_text())
    cfg = run["config"]
    records = load_records(cfg["records"], cfg["shards"]) if cfg.get("records") else None
    parts = parts_of(cfg["shards"], records)
    markers = {p: done_marker(out, p) for p in parts}
    done = [m for m in markers.values() if m]
    seconds = sum(m["seconds"] for m in done)
    prompts = sum(m["prompts"] for m in done)
    return {
        "parts": len(parts),
        "done": len(done),
        "pending": len(parts) - len(done),
        "with_failures": sum(1 for m in done if m["failed"]),
        "rows": sum(m["rows"] for m in done),
        "failed_rows": sum(m["failed"] for m in done),
        "prompts_per_s": round(prompts / seconds, 3) if seconds else None,
        "hashes": run["hashes"],
    }
