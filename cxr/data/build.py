"""`cxr build-data`: shards → OUT/{train,val,test}.parquet (+ coldstart-*.parquet), with config.yaml/meta.json."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cxr.config.runinfo import RunRecord
from cxr.config.schema import BuildDataConfig
from cxr.data.coldstart import coldstart_samples
from cxr.data.instructions import SPLITS, build_records, load_shards


def build_dataset(cfg: BuildDataConfig) -> dict[str, int]:
    out = Path(cfg.out)
    index, records = load_shards(cfg.shards)
    with RunRecord(out, cfg, kind="build-data") as meta:
        recs = build_records(
            index,
            records,
            tasks=list(cfg.tasks),
            fractions=list(cfg.split),
            official_split=cfg.official_split,
            seed=cfg.seed,
            min_pixels=cfg.image.min_pixels,
            max_pixels=cfg.image.max_pixels,
        )
        cold = coldstart_samples(recs, index, cfg.seed) if cfg.coldstart else None
        counts: dict[str, int] = {}
        for split in SPLITS:
            part = recs[recs["split"] == split].reset_index(drop=True)
            part.to_parquet(out / f"{split}.parquet", index=False)
            counts[split] = len(part)
            if cold is not None:
                cold[cold["split"] == split].reset_index(drop=True).to_parquet(
                    out / f"coldstart-{split}.parquet", index=False
                )
        meta["counts"] = counts
        meta["tasks"] = dict(Counter(recs["task"]))
        if cfg.teacher.model.path:
            meta["teacher"] = _teacher(cfg, recs, out)
    return counts


def _teacher(cfg: BuildDataConfig, recs, out: Path) -> dict:
    """Cold-start (b): the teacher's accepted samples per split → coldstart-teacher-*.parquet."""
    from dataclasses import replace

    from cxr.data.teacher import teacher_samples
    from cxr.inference import make_backend
    from cxr.train.records import SftRecords

    gen = replace(cfg.teacher, image=cfg.image)
    stats = {}
    with make_backend(gen) as backend:
        for split in SPLITS:
            part = recs[recs["split"] == split].reset_index(drop=True)
            if not len(part):
                continue
            images = SftRecords(out, cfg.shards, stage="instruction", split=split).image
            kept, why = teacher_samples(part, images, backend, tries=cfg.teacher_tries)
            kept.to_parquet(out / f"coldstart-teacher-{split}.parquet", index=False)
            stats[split] = {"records": len(part), "kept": len(kept), "rejected": dict(why)}
    return stats
