"""One contender of ``benchmarks/preprocess.py``, alone in a fresh process.

Usage: ``python benchmarks/preprocess_worker.py KIND REPS ARGS.json`` → prints the best of REPS
passes in seconds. Why a fresh process each: what ran before in a process (synthesis, the other
contenders) changes how glibc serves 10 MB pixel buffers (reused heap pages vs fresh, zero-filled
mmaps), and pure decode's speed with it, by up to 3x. Each decoded array is dropped at once: a
baseline that keeps them (a list of ``pixel_array``) times the allocation of fresh memory instead.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path


def main() -> None:
    warnings.simplefilter("ignore")
    kind, reps, args = sys.argv[1], int(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text())
    if kind == "decode":  # the baseline: pydicom's pixel_array, nothing else
        import pydicom

        def once() -> None:
            for f in args["files"]:
                pydicom.dcmread(f).pixel_array  # noqa: B018 (decoding is the point)

    elif kind == "pipeline":  # one shard of the given files: decode, LUTs, checks, resize, HDF5, tables
        import cv2
        import pandas as pd

        from preprocessing.shards import write_shard

        cv2.setNumThreads(1)  # per core: pydicom's decode is single-threaded too
        files = pd.read_parquet(args["files_table"])

        def once() -> None:
            out = Path(args["out"]) / f"shard-{time.monotonic_ns()}"
            out.mkdir(parents=True)
            write_shard(
                out,
                0,
                files,
                Path(args["archive"]),
                size=512,
                dtype="uint8",
                j2k_reduce=0,
                compression_level=args["compression_level"],
                log=lambda s: None,
            )

    elif kind == "e2e":  # cxr preprocess with the debug executor: discovery, plan, shards, tables
        from jobs.preprocess import preprocess

        def once() -> None:
            cfg = one_shard_config(args["archive"], f"{args['out']}/e2e-{time.monotonic_ns()}")
            preprocess(cfg, log=lambda s: None)

    elif kind == "split":  # where the pipeline's time goes, per stage; prints JSON, ms per image
        print(json.dumps(split(args, reps)))
        return
    else:
        raise SystemExit(f"unknown contender {kind!r}")
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - t)
    print(best)


def one_shard_config(archive, shards):
    """``cxr preprocess`` of the whole archive into one shard, in this process (debug executor)."""
    from cxr.config import load_config
    from cxr.config.schema import PreprocessConfig

    return load_config(
        PreprocessConfig,
        overrides=[f"archive={archive}", f"shards={shards}", "executor.kind=debug", "studies_per_shard=1000"],
    )


def split(args: dict, reps: int) -> dict:
    """The pipeline's stages, cumulatively, on the same files (best pass of each), beside pure decode.

    Each line adds one stage to the one before, so differences between lines are the stages' costs.
    """
    import cv2
    import h5py
    import pydicom

    from cxr.format.boxes import letterbox_record
    from preprocessing.decode import ReadBuffer, _resample, decode, native_pixels
    from preprocessing.shards import create_images, to_stored

    cv2.setNumThreads(1)
    files, buf = args["files"], ReadBuffer()
    targets = []
    for f in files:
        rec = letterbox_record(*native_pixels(f)[1].shape[::-1], 512)
        targets.append((rec.content_w, rec.content_h))
    best: dict[str, float] = {}

    def clock(name: str, t: float) -> None:
        best[name] = min(best.get(name, float("inf")), (time.perf_counter() - t) * 1e3 / len(files))

    for i in range(reps):
        t = time.perf_counter()
        for f in files:
            pydicom.dcmread(f).pixel_array  # noqa: B018
        clock("pure decode (the baseline)", t)
        t = time.perf_counter()
        for f in files:
            native_pixels(f, buf)
        clock("1 header + pixel read", t)
        t = time.perf_counter()
        for f, target in zip(files, targets, strict=True):
            _resample(native_pixels(f, buf)[1], target)
        clock("2 + resize", t)
        t = time.perf_counter()
        decs = []
        for f, target in zip(files, targets, strict=True):
            ds, pixels = native_pixels(f, buf)
            decs.append(decode(ds, target=target, pixels=pixels))
        clock("3 + tone, quantise, checks", t)
        t = time.perf_counter()
        stored = [to_stored(d, 512)[0] for d in decs]
        clock("4 letterbox alone", t)
        t = time.perf_counter()
        with h5py.File(Path(args["out"]) / f"split-{i}.h5", "w") as h5:
            images = create_images(h5, len(stored), 512, "uint8", args["compression_level"])
            for j, a in enumerate(stored):
                images[j] = a
        clock("5 HDF5 write with Blosc-zstd alone", t)
    return {k: round(v, 3) for k, v in best.items()}


if __name__ == "__main__":
    main()
