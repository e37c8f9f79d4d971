"""Write one shard: decode, normalise, letterbox-resize, store; tables beside it. Atomic.

A shard is committed by renaming ``shard-NNNNN.h5`` into place *after* its two part tables
(``parts/shard-NNNNN.index.parquet``, ``…manifest.parquet``) are in place, so "the .h5 exists" means
"this shard is complete". Leftover temporary files are from a killed task and are redone. The
content depends only on the inputs (files sorted by pseudonym, no timestamps in HDF5), so a rerun
after ``kill -9`` gives byte-identical image arrays and identical tables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from cxr.format.boxes import letterbox_record
from preprocessing.decode import (
    Decoded,
    ReadBuffer,
    Rejected,
    codec_failure,
    decode,
    native_pixels,
    quiet_pydicom,
    read,
)
from preprocessing.imagefile import decode_image, image_size, is_image_file
from preprocessing.journal import REASON as JOURNAL_REASON
from preprocessing.journal import CrashJournal, task_failure


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def is_done(shards: Path, shard: int) -> bool:
    return (shards / f"{shard_name(shard)}.h5").is_file()


def to_stored(dec: Decoded, size: int):
    """Letterbox a decoded image's stored form into size×size; returns (array, ResizeRecord)."""
    import cv2

    rec = letterbox_record(dec.orig_w, dec.orig_h, size)
    small = dec.stored
    if small.shape != (rec.content_h, rec.content_w):  # decode(target=…) usually resized already
        small = cv2.resize(small, (rec.content_w, rec.content_h), interpolation=cv2.INTER_AREA)  # antialiased
    out = cv2.copyMakeBorder(
        small, rec.pad_top, rec.pad_bottom, rec.pad_left, rec.pad_right, cv2.BORDER_CONSTANT, value=0
    )
    return out, rec


def _decode_file(
    path: Path, size: int, j2k_reduce: int, dtype: str, buffer: ReadBuffer | None = None
) -> Decoded:
    """A DICOM file, or an image file (PNG/JPEG) from a public dataset, decoded straight to the letterbox content."""
    if is_image_file(path):
        w, h = image_size(path)
        rec = letterbox_record(w, h, size)
        return decode_image(path, target=(rec.content_w, rec.content_h), dtype=dtype)
    native = native_pixels(path, buffer)
    dcm, pixels = native if native is not None else (read(path), None)
    rec = letterbox_record(int(dcm.get("Columns", 0)) or 1, int(dcm.get("Rows", 0)) or 1, size)
    return decode(
        dcm, j2k_reduce=j2k_reduce, target=(rec.content_w, rec.content_h), pixels=pixels, dtype=dtype
    )


def source(row) -> str:
    """A candidate's path under the archive: from the name's own bytes when the table has them (a
    name that is not UTF-8 is escaped in ``rel``)."""
    raw = getattr(row, "rel_bytes", None)
    return os.fsdecode(raw) if isinstance(raw, bytes) and raw else row.rel


def _process(row, journal: CrashJournal, archive: Path, size: int, j2k_reduce: int, dtype: str, buffer):
    """(stored array, resize record, decoded) for one candidate, or why it is rejected (no PHI)."""
    if row.file_id in journal.suspects:
        return JOURNAL_REASON
    journal.start(row.file_id)
    try:
        with quiet_pydicom():  # its warnings quote malformed values: PHI
            dec = _decode_file(archive / source(row), size, j2k_reduce, dtype, buffer)
        arr, rec = to_stored(dec, size)
    except BaseException as e:  # one bad file never stops a task; the reason carries no message text
        if task_failure(e):  # out of memory, an I/O error: the task fails, and the journal counts it
            raise
        journal.done()
        if not codec_failure(e):  # Ctrl-C and the like
            raise
        return (
            str(e) if isinstance(e, Rejected) else f"unexpected error while processing ({type(e).__name__})"
        )
    journal.done()
    return arr, rec, dec


def create_images(h5, n: int, size: int, dtype: str, compression_level: int):
    """The shard's ``images`` dataset: one image per chunk, Blosc-zstd over bitshuffled bytes."""
    import hdf5plugin

    return h5.create_dataset(
        "images",
        shape=(n, size, size),
        maxshape=(None, size, size),
        dtype=dtype,
        chunks=(1, size, size),
        track_times=False,
        **hdf5plugin.Blosc(cname="zstd", clevel=compression_level, shuffle=hdf5plugin.Blosc.BITSHUFFLE),
    )


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_shard(
    shards: Path,
    shard: int,
    files: pd.DataFrame,
    archive: Path,
    *,
    size: int,
    dtype: str,
    j2k_reduce: int,
    compression_level: int,
    log=print,
) -> dict:
    """``files``: this shard's candidates (file_id, rel, study_id, image_id and safe attributes)."""
    import h5py

    name = shard_name(shard)
    for stale in [*shards.glob(f".{name}.h5.tmp*"), *shards.glob(f"parts/.{name}.*.tmp*")]:
        stale.unlink()  # a killed earlier attempt
    files = files.sort_values(["study_id", "image_id", "file_id"]).reset_index(drop=True)
    tmp = shards / f".{name}.h5.tmp{os.getpid()}"
    index_rows, manifest_rows = [], []
    t0, n_ok = time.perf_counter(), 0
    buffer = ReadBuffer()  # the pixels of one file at a time
    journal = CrashJournal(shards / "parts", name)  # a file that kills the process twice is rejected
    try:
        with h5py.File(tmp, "w", track_order=False) as h5:
            ds = create_images(h5, len(files), size, dtype, compression_level)
            for row in files.itertuples(index=False):
                got = _process(row, journal, archive, size, j2k_reduce, dtype, buffer)
                if isinstance(got, str):
                    manifest_rows.append(
                        {
                            "file_id": row.file_id,
                            "status": "rejected",
                            "reason": got,
                            "image_id": row.image_id,
                            "shard": shard,
                            "index": -1,
                        }
                    )
                    continue
                arr, rec, dec = got
                ds[n_ok] = arr
                index_rows.append(
                    {
                        "image_id": row.image_id,
                        "study_id": row.study_id,
                        "patient_id": row.patient_id,
                        "accession_id": row.accession_id,
                        "shard": shard,
                        "index": n_ok,
                        "view": row.view,
                        "modality": row.modality,
                        "sex": row.sex,
                        "age_band": row.age_band,
                        "study_date": row.study_date,
                        "pixel_spacing_mm": row.pixel_spacing_mm,
                        "orig_w": dec.orig_w,
                        "orig_h": dec.orig_h,
                        "content_w": rec.content_w,
                        "content_h": rec.content_h,
                        "pad_left": rec.pad_left,
                        "pad_top": rec.pad_top,
                        "pad_right": rec.pad_right,
                        "pad_bottom": rec.pad_bottom,
                        "size": size,
                        "dtype": dtype,
                        "decode_path": dec.decode_path,
                    }
                )
                manifest_rows.append(
                    {
                        "file_id": row.file_id,
                        "status": "ok",
                        "reason": "",
                        "image_id": row.image_id,
                        "shard": shard,
                        "index": n_ok,
                    }
                )
                n_ok += 1
                if n_ok % 50 == 0:
                    rate = n_ok / (time.perf_counter() - t0)
                    log(f"{name}: {n_ok}/{len(files)} images, {rate:.1f} img/s")
            ds.resize(n_ok, axis=0)  # allocated for every candidate up front; rejected ones leave no gap
            h5.attrs["format"] = "cxr-harness shard v1"
    finally:
        journal.close()
    parts = shards / "parts"
    parts.mkdir(exist_ok=True)
    _atomic_parquet(pd.DataFrame(index_rows, columns=INDEX_COLUMNS), parts / f"{name}.index.parquet")
    _atomic_parquet(pd.DataFrame(manifest_rows, columns=MANIFEST_COLUMNS), parts / f"{name}.manifest.parquet")
    os.replace(tmp, shards / f"{name}.h5")  # the commit
    journal.clear()
    dt = time.perf_counter() - t0
    log(f"{name}: done, {n_ok} ok, {len(files) - n_ok} rejected, {len(files) / max(dt, 1e-9):.1f} files/s")
    return {"shard": shard, "ok": n_ok, "rejected": len(files) - n_ok, "seconds": dt}


INDEX_COLUMNS = [
    "image_id",
    "study_id",
    "patient_id",
    "accession_id",
    "shard",
    "index",
    "view",
    "modality",
    "sex",
    "age_band",
    "study_date",
    "pixel_spacing_mm",
    "orig_w",
    "orig_h",
    "content_w",
    "content_h",
    "pad_left",
    "pad_top",
    "pad_right",
    "pad_bottom",
    "size",
    "dtype",
    "decode_path",
]
MANIFEST_COLUMNS = ["file_id", "status", "reason", "image_id", "shard", "index"]
