"""The steps of ``cxr preprocess`` (run by ``jobs/preprocess.py``): discovery and plan, the array
task that writes shards, the merge of the tables. Reruns skip finished shards; ``kill -9`` anywhere,
then rerun, gives the same result as an uninterrupted run.

Layout of SHARDS (DESIGN.md): ``shard-*.h5``, ``index.parquet``, ``manifest.parquet``, ``plan.parquet``,
``records.parquet`` (RIS findings/labels/boxes by accession pseudonym, when given),
``parts/`` (per-shard tables), ``private/`` (mode 0700: source paths, job pickles and logs — the only
place where anything from the archive's paths or the hospital's identifiers may be).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from cxr.config.load import resolve_secret
from cxr.config.schema import PreprocessConfig
from cxr.errors import UserError
from preprocessing.deid import Pseudonymizer
from preprocessing.discover import classify, extend_plan, walk
from preprocessing.shards import MANIFEST_COLUMNS, _atomic_parquet, is_done, shard_name, write_shard


def pseudonymizer(cfg: PreprocessConfig) -> Pseudonymizer:
    key = resolve_secret(cfg.key, "preprocess.key").encode()
    if len(key) < 16:
        raise UserError("'preprocess.key': the de-identification key must be at least 16 bytes")
    return Pseudonymizer(key, date_mode=cfg.date_mode)


def private_dir(shards: Path) -> Path:
    d = shards / "private"
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    return d


def process_shards(shards: str, shard_ids: list[int], cfg: PreprocessConfig) -> list[dict]:
    """One array task: write the listed shards that are not finished yet."""
    shards_p = Path(shards)
    files = pd.read_parquet(shards_p / "private" / "files.parquet")
    plan = pd.read_parquet(shards_p / "plan.parquet")
    out = []
    for shard in shard_ids:
        if is_done(shards_p, shard):
            continue
        studies = set(plan.loc[plan["shard"] == shard, "study_id"])
        mine = files[files["study_id"].isin(studies)]
        out.append(
            write_shard(
                shards_p,
                shard,
                mine,
                Path(cfg.archive),
                size=cfg.size,
                dtype=cfg.dtype,
                j2k_reduce=cfg.j2k_reduce,
                compression_level=cfg.compression_level,
            )
        )
    return out


def discover(cfg: PreprocessConfig, shards: Path, p: Pseudonymizer, log=print) -> pd.DataFrame:
    """Scan headers, write private/files.parquet (candidates with their source paths) and the plan;
    returns the manifest rows of files that never reach a shard."""
    archive = Path(cfg.archive)
    rels = walk(archive)
    t0, found = time.perf_counter(), []
    for i, rel in enumerate(rels, 1):
        found.append(classify(archive, rel, p, tuple(cfg.views)))
        if i % 500 == 0 or i == len(rels):
            rate = i / max(time.perf_counter() - t0, 1e-9)
            log(f"discovery: {i}/{len(rels)} files, {rate:.0f} files/s, ETA {(len(rels) - i) / rate:.0f} s")
    seen: set[str] = set()
    cands, early = [], []
    for f in found:
        if f.status != "candidate":
            early.append({"file_id": f.file_id, "status": f.status, "reason": f.reason})
        elif f.attrs["image_id"] in seen:
            early.append({"file_id": f.file_id, "status": "skipped", "reason": "duplicate SOPInstanceUID"})
        else:
            seen.add(f.attrs["image_id"])
            cands.append({"file_id": f.file_id, "rel": f.rel, **f.attrs})
    files = pd.DataFrame(cands)
    priv = private_dir(shards)
    _atomic_parquet(files, priv / "files.parquet")
    old = pd.read_parquet(shards / "plan.parquet") if (shards / "plan.parquet").is_file() else None
    plan = extend_plan(old, list(files["study_id"]) if len(files) else [], cfg.studies_per_shard)
    _atomic_parquet(plan, shards / "plan.parquet")
    return pd.DataFrame(early, columns=["file_id", "status", "reason"])


def merge_tables(shards: Path, early: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    plan = pd.read_parquet(shards / "plan.parquet")
    idx, man = [], [early.assign(image_id=None, shard=-1, index=-1)[MANIFEST_COLUMNS]]
    for shard in sorted(set(plan["shard"])):
        parts = shards / "parts"
        idx.append(pd.read_parquet(parts / f"{shard_name(shard)}.index.parquet"))
        man.append(pd.read_parquet(parts / f"{shard_name(shard)}.manifest.parquet"))
    index = pd.concat(idx, ignore_index=True).sort_values(["shard", "index"]).reset_index(drop=True)
    manifest = pd.concat(man, ignore_index=True).sort_values("file_id").reset_index(drop=True)
    _atomic_parquet(index, shards / "index.parquet")
    _atomic_parquet(manifest, shards / "manifest.parquet")
    # read back: what callers get is exactly what is on disk (dtypes included)
    return pd.read_parquet(shards / "index.parquet"), pd.read_parquet(shards / "manifest.parquet")


def summary(manifest: pd.DataFrame) -> list[str]:
    lines = [
        f"{len(manifest)} files: "
        + ", ".join(f"{n} {s}" for s, n in sorted(Counter(manifest["status"]).items()))
    ]
    for status in ("rejected", "skipped"):
        for reason, n in Counter(manifest.loc[manifest["status"] == status, "reason"]).most_common():
            lines.append(f"  {status}: {n} × {reason}")
    return lines
