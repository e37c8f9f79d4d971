"""The scores folder: parts written once, marked done, never mixed across models or prompts.

    OUT/_run.json                 what produced the folder: model / prompt / sampling hashes, config
    OUT/part-NNNNN.parquet        one per shard; written under a temporary name, fsynced, renamed
    OUT/_done/part-NNNNN.json     written after the rename: rows, failures, attempts, hashes, timing
    OUT/_failures/part-NNNNN.parquet  rows that errored in that part (reason, attempts)
    OUT/_failures.parquet         all of them, gathered when the run ends
    OUT/_jobs/                    the array's submitit folders and logs

Everything but the parts starts with "_" (temporaries with "."), which pyarrow skips, so the folder
itself is the table: ``pd.read_parquet(OUT)``, ``duckdb.sql("FROM 'OUT/part-*.parquet'")``. A part file appears whole or not at all, so ``read_parquet('OUT/part-*.parquet')`` never sees a row
twice; a part renamed but not yet marked (killed in between) is scored again and replaced, not
appended to.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from cxr.config.load import to_container
from cxr.config.schema import ScoreConfig
from cxr.errors import UserError
from cxr.score.prompts import prompt_text

RUN_FILE, FAILURES_FILE = "_run.json", "_failures.parquet"
MODEL_FILES = (
    "*.safetensors",
    "*.bin",
    "config.json",
    "generation_config.json",
    "tokenizer*.json",
    "preprocessor_config.json",
    "chat_template*",
)


def _sha(items) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(item if isinstance(item, bytes) else str(item).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def model_hash(path: str | Path) -> str:
    """Content hash of the weights, config and tokenizer files (not of the folder's name)."""
    root = Path(path)
    files = sorted({f for pat in MODEL_FILES for f in root.glob(pat) if f.is_file()})
    if not files:
        raise UserError(f"model.path={path!r} holds no model files")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 24):
                h.update(chunk)
    return h.hexdigest()[:16]


def run_hashes(cfg: ScoreConfig) -> dict[str, str]:
    s = cfg.sampling
    return {
        "model": model_hash(cfg.model.path),
        "prompt": _records_sha(cfg.records)
        if cfg.records
        else _sha([f"{t}={prompt_text(t)}" for t in sorted(cfg.tasks)]),
        # the backend and image bounds change outputs as much as the sampling parameters do
        "sampling": _sha(
            [
                cfg.backend,
                s.temperature,
                s.top_p,
                s.top_k,
                s.max_new_tokens,
                s.repetition_penalty,
                s.seed,
                cfg.image.min_pixels,
                cfg.image.max_pixels,
                cfg.model.dtype,
            ]
        ),
    }


def _records_sha(path: str) -> str:
    """The records' questions as asked (with the grounded suffix), by record_id."""
    from cxr.format import grounded_prompt

    df = pd.read_parquet(path, columns=["record_id", "question"]).sort_values("record_id")
    return _sha(f"{r}={grounded_prompt(q)}" for r, q in zip(df["record_id"], df["question"], strict=True))


def open_run(cfg: ScoreConfig) -> tuple[Path, dict[str, str]]:
    """The folder to write into: OUT itself, or with ``new_version`` the first OUT/_vN whose hashes
    match (or a fresh one). A mismatch without ``new_version`` is refused, naming what changed."""
    hashes = run_hashes(cfg)
    base = Path(cfg.out)
    # OUT/_vN: the leading "_" keeps a new version out of pd.read_parquet(OUT), which stays one version
    candidates = [base] + [base / f"_v{n}" for n in range(2, 1000)]
    for out in candidates:
        rec = out / RUN_FILE
        if not rec.is_file():
            out.mkdir(parents=True, exist_ok=True)
            _write_json(rec, {"hashes": hashes, "config": to_container(cfg)})
            return out, hashes
        old = json.loads(rec.read_text())["hashes"]
        if old == hashes:
            return out, hashes
        if not cfg.new_version:
            changed = ", ".join(k for k in hashes if old.get(k) != hashes[k])
            raise UserError(
                f"{out} holds scores from another {changed} (hashes {old} vs now {hashes}); "
                "rerun with new_version=true to write beside them, or pick another out"
            )
    raise UserError(f"{base}: too many versions")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def part_name(part: int) -> str:
    return f"part-{part:05d}"


def done_marker(out: Path, part: int) -> dict | None:
    p = out / "_done" / f"{part_name(part)}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def read_part(out: Path, part: int) -> pd.DataFrame | None:
    p = out / f"{part_name(part)}.parquet"
    return pd.read_parquet(p) if p.is_file() else None


def read_failures(out: Path, part: int) -> pd.DataFrame | None:
    p = out / "_failures" / f"{part_name(part)}.parquet"
    return pd.read_parquet(p) if p.is_file() else None


def _types() -> dict:
    import pyarrow as pa

    box = pa.list_(pa.list_(pa.float64()))
    text = pa.string()
    return {
        **dict.fromkeys(
            ("study_id", "image_id", "view", "record_id", "task", "prompt_id", "raw", "reasoning"), text
        ),
        **dict.fromkeys(("answer", "finish_reason"), text),
        **dict.fromkeys(("shard", "index", "num_tokens"), pa.int64()),
        "steps": pa.list_(text),
        "boxes": box,
        "boxes_original": box,
        "format_ok": pa.bool_(),
        "latency_s": pa.float64(),
    }


def part_table(rows: pd.DataFrame):
    """Rows as an Arrow table with fixed column types. Inferred types vary with the data (a part whose
    answers are all missing gets a ``null`` column, one without boxes ``list<null>``), and parts with
    different types cannot be read as one table."""
    import pyarrow as pa

    table = pa.Table.from_pandas(rows, preserve_index=False)
    for name, typ in _types().items():
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(i).cast(typ))
    return table


def write_part(out: Path, part: int, rows: pd.DataFrame, failures: pd.DataFrame, marker: dict) -> None:
    """Part file (atomic, fsynced), its failures, then the done marker — in that order."""
    import pyarrow.parquet as pq

    name = part_name(part)
    tmp = out / f".{name}.parquet.tmp{os.getpid()}"
    pq.write_table(part_table(rows), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out / f"{name}.parquet")
    (out / "_failures").mkdir(exist_ok=True)
    fail_path = out / "_failures" / f"{name}.parquet"
    if len(failures):
        ftmp = fail_path.with_name(f".{fail_path.name}.tmp{os.getpid()}")
        failures.to_parquet(ftmp, index=False)
        os.replace(ftmp, fail_path)
    else:
        fail_path.unlink(missing_ok=True)
    (out / "_done").mkdir(exist_ok=True)
    _write_json(out / "_done" / f"{name}.json", marker)


def gather_failures(out: Path) -> int:
    parts = sorted((out / "_failures").glob("part-*.parquet"))
    frames = [pd.read_parquet(p) for p in parts]
    path = out / FAILURES_FILE
    if frames:
        df = pd.concat(frames, ignore_index=True)
        df.to_parquet(path, index=False)
        return len(df)
    path.unlink(missing_ok=True)
    return 0
