"""The steps of ``cxr preprocess`` (run by ``jobs/preprocess.py``): discovery and plan, the array
task that writes shards, the merge of the tables. Reruns skip finished shards; ``kill -9`` anywhere,
then rerun, gives the same result as an uninterrupted run.

Layout of SHARDS (DESIGN.md): ``shard-*.h5``, ``index.parquet``, ``manifest.parquet``, ``plan.parquet``,
``records.parquet`` (RIS findings/labels/boxes by accession pseudonym, when given),
``parts/`` (per-shard tables), ``private/`` (mode 0700: ``sources.parquet``, the source path of every
file by its pseudonym; ``files.parquet``, the candidates; job pickles and logs — the only place where
anything from the archive's paths or the hospital's identifiers may be).

The plan's Parquet metadata records the settings its shards are written with; a rerun into the same
SHARDS with other ones is refused, so one folder never mixes image sizes, filters or pseudonym keys.
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
from preprocessing.discover import classify, extend_plan, printable, walk
from preprocessing.shards import (
    INDEX_COLUMNS,
    MANIFEST_COLUMNS,
    _atomic_parquet,
    is_done,
    shard_name,
    write_shard,
)


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


def plan_settings(cfg: PreprocessConfig) -> dict:
    """What must stay the same for every shard of one SHARDS folder (kept in plan.parquet's metadata;
    the key's check is kept apart, in private/, see ``check_key``)."""
    return {
        "size": cfg.size,
        "dtype": cfg.dtype,
        "j2k_reduce": cfg.j2k_reduce,
        "date_mode": cfg.date_mode,
        "views": sorted(cfg.views),
    }


def check_key(shards: Path, p: Pseudonymizer) -> None:
    """The same key as the folder's earlier runs, or a clear error: another key would give every
    patient and study new pseudonyms, mixed with the old ones. What is kept (private/key-check) is a
    pseudonym of a constant, in private/ so nobody can test guesses of a weak key against it."""
    path, mine = shards / "private" / "key-check", p.pseudonym("settings", "key check")
    if path.is_file() and path.read_text().strip() != mine:
        raise UserError(
            f"{shards}: the shards here were written with a different de-identification key. Use the "
            "site's key, or preprocess into a new SHARDS folder: one folder never mixes pseudonyms"
        )
    if not path.is_file():
        path.write_text(mine + "\n")


def check_settings(old: pd.DataFrame | None, now: dict, path: Path) -> None:
    was = old.attrs.get("settings") if old is not None else None
    if not was:  # a new folder, or a plan from before settings were recorded
        return
    diff = [k for k in now if k in was and was[k] != now[k]]
    if diff:
        said = "; ".join(f"{k}={was[k]} (this run: {now[k]})" for k in diff)
        raise UserError(
            f"{path}: the shards here were written with {said}. Rerun with the same settings, "
            "or preprocess into a new SHARDS folder: one folder never mixes them"
        )


def check_folder(shards: Path, settings: dict, p: Pseudonymizer) -> pd.DataFrame | None:
    """Before any work: the folder's settings and key are this run's (or it is new). Returns the
    folder's plan, if any."""
    plan = shards / "plan.parquet"
    old = pd.read_parquet(plan) if plan.is_file() else None
    check_settings(old, settings, plan)
    private_dir(shards)
    check_key(shards, p)
    return old


def discover(cfg: PreprocessConfig, shards: Path, p: Pseudonymizer, log=print) -> pd.DataFrame:
    """Scan headers, write private/sources.parquet (every file's source path), private/files.parquet
    (candidates) and the plan; returns the manifest rows of files that never reach a shard."""
    archive = Path(cfg.archive)
    if (shards / "dataset.json").is_file():
        raise UserError(
            f"{shards} holds `cxr ingest` shards; expected an empty folder or `cxr preprocess` shards"
        )
    settings = plan_settings(cfg)
    old = check_folder(shards, settings, p)
    priv = private_dir(shards)
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
            # rel as text (Parquet keeps UTF-8 only) and as the name's own bytes, which open it
            cands.append(
                {"file_id": f.file_id, "rel": printable(f.rel), "rel_bytes": os.fsencode(f.rel), **f.attrs}
            )
    files = pd.DataFrame(
        cands, columns=["file_id", "rel", "rel_bytes", "study_id", "image_id"] if not cands else None
    )
    sources = pd.DataFrame(
        {
            "file_id": [f.file_id for f in found],
            "path": [printable(f.rel) for f in found],  # a name that is not UTF-8 with \xNN escapes
            "path_bytes": [os.fsencode(f.rel) for f in found],
        },
        columns=["file_id", "path", "path_bytes"],
    )
    _atomic_parquet(sources, priv / "sources.parquet")  # how a person finds a rejected file
    _atomic_parquet(files, priv / "files.parquet")
    plan = extend_plan(old, list(files["study_id"]), cfg.studies_per_shard)
    plan.attrs = {"settings": settings}
    _atomic_parquet(plan, shards / "plan.parquet")
    return pd.DataFrame(early, columns=["file_id", "status", "reason"])


def merge_tables(shards: Path, early: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """index.parquet and manifest.parquet from the shards' part tables and the discovery's rows.

    A file added to a study whose shard was already written is listed as skipped: finished shards
    are never rewritten (their content is what earlier analyses used)."""
    plan = pd.read_parquet(shards / "plan.parquet")
    files = pd.read_parquet(shards / "private" / "files.parquet", columns=["file_id", "study_id", "image_id"])
    idx, man = [], []
    for shard in sorted(set(plan["shard"])):
        parts = shards / "parts"
        idx.append(pd.read_parquet(parts / f"{shard_name(shard)}.index.parquet"))
        man.append(pd.read_parquet(parts / f"{shard_name(shard)}.manifest.parquet"))
    listed = set().union(*(set(m["file_id"]) for m in man))
    stored = set().union(*(set(i["image_id"]) for i in idx))
    # a shard's own record of a file wins over what this run's discovery says of it
    man.append(
        early[~early["file_id"].isin(listed)].assign(image_id=None, shard=-1, index=-1)[MANIFEST_COLUMNS]
    )
    late = files[~files["file_id"].isin(listed)].merge(plan, on="study_id", how="left")
    if len(late):
        man.append(
            pd.DataFrame(
                {
                    "file_id": late["file_id"],
                    "status": "skipped",
                    "reason": [
                        "duplicate SOPInstanceUID"
                        if image in stored
                        else f"added to its study after {shard_name(s)} was written (finished shards are "
                        "never rewritten): preprocess into a new SHARDS folder to include it"
                        for s, image in zip(late["shard"], late["image_id"], strict=True)
                    ],
                    "image_id": None,
                    "shard": -1,
                    "index": -1,
                }
            )
        )
    index = (
        pd.concat(idx, ignore_index=True).sort_values(["shard", "index"]).reset_index(drop=True)
        if idx
        else pd.DataFrame(columns=INDEX_COLUMNS)  # nothing in the archive was a usable radiograph
    )
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
