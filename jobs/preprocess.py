"""The preprocess job: discovery and plan in this process, one array task per group of shards
through the executor in ``cfg.executor`` (local by default, Slurm with a throttle), then the merge."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pandas as pd

from cxr.config.schema import PreprocessConfig
from cxr.errors import UserError
from jobs.submission import map_array
from preprocessing.run import discover, merge_tables, private_dir, process_shards, pseudonymizer
from preprocessing.shards import _atomic_parquet, is_done


def _wait_with_progress(sub, shards: Path, todo: list[int], t0: float, log) -> dict[str, str]:
    """Wait for the array, printing shards done, rate and ETA whenever a shard finishes."""
    from jobs.state import wait_for

    last = [-1]

    def query(_ids):
        states = sub.states()
        done = sum(is_done(shards, s) for s in todo)
        if done != last[0]:
            last[0] = done
            dt = time.perf_counter() - t0
            eta = f", ETA {dt / done * (len(todo) - done):.0f} s" if 0 < done < len(todo) else ""
            log(f"shards: {done}/{len(todo)} written, {done / max(dt, 1e-9) * 60:.1f} shards/min{eta}")
        return states

    if sub.group.kind == "debug":
        return sub.wait()
    return wait_for(query, sub.job_ids, first_s=1.0, max_s=15.0)


def write_planned(cfg: PreprocessConfig, shards: Path, log=print) -> None:
    """Write every planned shard that is not finished (one array task per group of shards)."""
    plan = pd.read_parquet(shards / "plan.parquet")
    todo = sorted(s for s in set(plan["shard"]) if not is_done(shards, s))
    log(f"plan: {plan['shard'].nunique()} shard(s), {len(todo)} to write")
    if todo:
        groups = [todo[i : i + cfg.shards_per_task] for i in range(0, len(todo), cfg.shards_per_task)]
        # job pickles carry the archive path and logs may too: they live in private/
        t0 = time.perf_counter()  # before submitting: the local executor blocks while it throttles
        sub = map_array(
            functools.partial(process_shards, str(shards), cfg=cfg),
            groups,
            cfg=cfg.executor,
            run_dir=private_dir(shards),
            name="preprocess",
        )
        states = _wait_with_progress(sub, shards, todo, t0, log)
        bad = [o for o in sub.outcomes() if not o.ok]
        if bad:
            raise UserError(
                f"{len(bad)} preprocessing task(s) failed ({', '.join(sorted({o.state for o in bad}))}); "
                f"logs in {shards / 'private' / 'jobs'}; rerun the same command to redo only those shards"
            )
        log(f"tasks: {len(states)} done in {time.perf_counter() - t0:.1f} s")


def preprocess(cfg: PreprocessConfig, log=print) -> pd.DataFrame:
    archive, shards = Path(cfg.archive), Path(cfg.shards)
    if not archive.is_dir():
        raise UserError(f"archive folder {archive} does not exist")
    shards.mkdir(parents=True, exist_ok=True)
    p = pseudonymizer(cfg)
    if cfg.ris:  # read first: a bad RIS export stops the run before hours of decoding
        from preprocessing.ris import load_ris

        records = load_ris(cfg.ris, p)
    early = discover(cfg, shards, p, log)
    write_planned(cfg, shards, log)
    _, manifest = merge_tables(shards, early)
    if cfg.ris:
        _atomic_parquet(records, shards / "records.parquet")
    return manifest
