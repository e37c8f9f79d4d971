"""Preprocessing speed, every ratio against a baseline measured in the same run (issue 4).

1. our pipeline (decode → LUTs → checks → letterbox 512 → Blosc-zstd HDF5), img/s on one core,
   vs pure decode (``pixel_array``) of the same uncompressed files      — goal ≥ 0.8×
   (and the same on JPEG-LS files, where decoding dominates; the note splits our time by stage,
   and the "ceiling" row is the ratio this pipeline would reach if it did nothing but the stages the
   issue requires, our read + antialiased resize + Blosc-zstd HDF5 write, each timed alone)
2. the same vs a naive pydicom → PIL → PNG loop on the same files
3. reduced-resolution J2K decode (1/4 size) vs full J2K decode           — goal ≥ 10×
4. random reads of the shards through a DataLoader vs the same images as a PNG folder — goal ≥ 5×
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, report  # noqa: E402
from preprocess_worker import one_shard_config  # noqa: E402

N_PLAIN = int(os.environ.get("BENCH_FILES", "24"))
N_J2K = int(os.environ.get("BENCH_J2K_FILES", "6"))
N_JLS = int(os.environ.get("BENCH_JLS_FILES", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SIDE = (2000, 2500)
REPS = 4  # passes per process; the best counts


def in_fresh_process(kind: str, args: dict, tmp: Path) -> str:
    """What ``kind`` (see preprocess_worker.py) prints in a new process: its best time, or JSON."""
    spec = tmp / f"{kind}.json"
    spec.write_text(json.dumps(args, default=str))
    root = Path(__file__).resolve().parent
    out = subprocess.run(
        [sys.executable, str(root / "preprocess_worker.py"), kind, str(REPS), str(spec)],
        cwd=root.parent,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"benchmark worker {kind} failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    os.environ.setdefault("CXR_DEID_KEY", "benchmark-key-0123456789")
    warnings.simplefilter("ignore")
    import cv2
    import numpy as np

    cv2.setNumThreads(1)  # "per core": pydicom's decode (the baseline) is single-threaded too
    import pandas as pd
    import pydicom
    import torch
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from cxr.data.shards import ShardDataset
    from jobs.preprocess import preprocess
    from preprocessing.decode import decode, read
    from preprocessing.synth import SynthSpec, synth_archive

    tmp = Path(tempfile.mkdtemp(prefix="bench-pre-"))
    synth_archive(
        tmp / "plain",
        SynthSpec(
            studies=N_PLAIN, seed=1, min_size=SIDE[0], max_size=SIDE[1], bad_share=0, syntaxes=["explicit"]
        ),
    )
    synth_archive(
        tmp / "j2k",
        SynthSpec(
            studies=N_J2K, seed=2, min_size=SIDE[0], max_size=SIDE[1], bad_share=0, syntaxes=["j2k-lossless"]
        ),
    )
    synth_archive(
        tmp / "jls",
        SynthSpec(
            studies=N_JLS, seed=3, min_size=SIDE[0], max_size=SIDE[1], bad_share=0, syntaxes=["jpeg-ls"]
        ),
    )
    plain = sorted((tmp / "plain" / "dicom").rglob("*.dcm"))
    j2k = sorted((tmp / "j2k" / "dicom").rglob("*.dcm"))
    rows = []

    def prepared(name: str) -> tuple[dict, dict]:
        """Discovery and plan of one archive (the files table the pipeline runs on); the workers' args."""
        cfg = one_shard_config(tmp / name / "dicom", tmp / f"{name}-shards")
        preprocess(cfg, log=lambda s: None)
        files = sorted((tmp / name / "dicom").rglob("*.dcm"))
        for f in files:  # warm the page cache for every contender alike
            f.read_bytes()
        shard_args = {
            "files_table": tmp / f"{name}-shards" / "private" / "files.parquet",
            "archive": tmp / name / "dicom",
            "out": tmp / f"{name}-reps",
            "compression_level": cfg.compression_level,
        }
        return {"files": files}, shard_args

    decode_args, shard_args = prepared("plain")
    jls_decode, jls_shard = prepared("jls")
    contenders = {  # name: (worker kind, its arguments)
        "decode": ("decode", decode_args),
        "ours": ("pipeline", shard_args),
        "e2e": ("e2e", shard_args),
        "decode jls": ("decode", jls_decode),
        "ours jls": ("pipeline", jls_shard),
    }
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(ROUNDS):  # rounds alternate, so drift in the machine's speed hits all alike
        for name, (kind, args) in contenders.items():
            best[name] = min(best[name], float(in_fresh_process(kind, args, tmp)))
    t_decode, t_ours, t_e2e = best["decode"], best["ours"], best["e2e"]

    def naive():
        out = tmp / "png-naive"
        out.mkdir(exist_ok=True)
        for i, f in enumerate(plain):
            ds = pydicom.dcmread(f)
            a = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float32)
            a = (a - a.min()) / max(float(a.max() - a.min()), 1e-6)
            if ds.PhotometricInterpretation == "MONOCHROME1":
                a = 1 - a
            im = Image.fromarray((a * 255).astype(np.uint8))
            im.thumbnail((512, 512), Image.Resampling.LANCZOS)
            im.save(out / f"{i}.png")

    t_naive = timed(naive)
    n = len(plain)
    rows.append(
        {
            "case": f"pipeline vs pure decode ({n} uncompressed, {SIDE[0]}-{SIDE[1]} px)",
            "baseline img/s": n / t_decode,
            "ours img/s": n / t_ours,
            "ratio": t_decode / t_ours,
            "goal": ">= 0.8",
        }
    )
    n_jls = len(jls_decode["files"])
    rows.append(
        {
            "case": f"pipeline vs pure decode ({n_jls} JPEG-LS lossless, same sizes)",
            "baseline img/s": n_jls / best["decode jls"],
            "ours img/s": n_jls / best["ours jls"],
            "ratio": best["decode jls"] / best["ours jls"],
            "goal": "-",
        }
    )
    rows.append(
        {
            "case": "pipeline vs naive pydicom→PIL→PNG",
            "baseline img/s": n / t_naive,
            "ours img/s": n / t_ours,
            "ratio": t_naive / t_ours,
            "goal": "> 1",
        }
    )
    rows.append(
        {
            "case": "end to end (discovery, plan, tables) vs pure decode",
            "baseline img/s": n / t_decode,
            "ours img/s": n / t_e2e,
            "ratio": t_decode / t_e2e,
            "goal": "-",
        }
    )

    t_full = best_of(lambda: [decode(read(f)) for f in j2k], repeat=2)
    t_red = best_of(lambda: [decode(read(f), j2k_reduce=2) for f in j2k], repeat=2)
    rows.append(
        {
            "case": f"J2K decode at 1/4 vs full ({len(j2k)} lossless)",
            "baseline img/s": len(j2k) / t_full,
            "ours img/s": len(j2k) / t_red,
            "ratio": t_full / t_red,
            "goal": ">= 10",
        }
    )

    # read-back: the shards vs the same stored images as a PNG folder, random order, one worker
    ds = ShardDataset(tmp / "plain-shards")
    png_dir = tmp / "png"
    png_dir.mkdir()
    for i in range(len(ds)):
        Image.fromarray(ds[i]["image"]).save(png_dir / f"{i}.png")
    ds.close()
    reps = 8  # several epochs over the small set
    idx = np.random.default_rng(0).permutation(np.tile(np.arange(len(ds)), reps)).tolist()

    class Png(torch.utils.data.Dataset):
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            return np.asarray(Image.open(png_dir / f"{i}.png"))

    class Sh(torch.utils.data.Dataset):
        def __init__(self):
            self.ds = ShardDataset(tmp / "plain-shards")

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            return self.ds[i]["image"]

    def read_all(dataset):
        loader = torch.utils.data.DataLoader(dataset, batch_size=8, sampler=idx, num_workers=1)
        for _ in loader:
            pass

    t_png = best_of(lambda: read_all(Png()))
    t_sh = best_of(lambda: read_all(Sh()))
    m = len(idx)
    rows.append(
        {
            "case": f"DataLoader random reads: shards vs PNG folder ({m} reads)",
            "baseline img/s": m / t_png,
            "ours img/s": m / t_sh,
            "ratio": t_png / t_sh,
            "goal": ">= 5",
        }
    )
    index = pd.read_parquet(tmp / "plain-shards" / "index.parquet")
    stages = json.loads(in_fresh_process("split", {**decode_args, **shard_args}, tmp))
    split = "; ".join(f"{k} {v:.2f}" for k, v in stages.items())
    # The stages the issue itself requires, as this pipeline does them, each timed alone (best pass):
    # read the pixels, shrink them antialiased, write the result as Blosc-zstd HDF5. Their sum bounds
    # our pipeline-vs-decode ratio from above, whatever else it does (tone, checks, tables).
    floor_ms = stages["2 + resize"] + stages["5 HDF5 write with Blosc-zstd alone"]
    rows.insert(
        1,
        {
            "case": "ceiling: pure decode vs read + resize + HDF5 write alone (ms/img)",
            "baseline img/s": 1e3 / stages["pure decode (the baseline)"],
            "ours img/s": 1e3 / floor_ms,
            "ratio": stages["pure decode (the baseline)"] / floor_ms,
            "goal": "-",
        },
    )
    report(
        "preprocess",
        rows,
        f"{n} + {len(j2k)} synthetic CXR files from RG1, {os.cpu_count()} cores; "
        f"{len(index)} images stored as 512² uint8; OpenCV on one thread; each contender in fresh "
        f"processes, best of {ROUNDS}x{REPS} passes.\nWhere the time goes, ms per image (cumulative "
        f"where numbered 1-3): {split}",
    )


if __name__ == "__main__":
    main()
