"""Random access to preprocessed shards (SHARDS/shard-*.h5 + index.parquet), joined with records.

h5py handles are not fork-safe, so each process opens its own, lazily, on first access (the
handle cache is keyed by PID): safe under a DataLoader with workers. Returns the image as stored
(uint8/uint16, letterboxed) and its ResizeRecord, so boxes can be mapped to original pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxr.errors import UserError
from cxr.format.boxes import ResizeRecord


class ShardDataset:
    def __init__(self, shards: str | Path, records: pd.DataFrame | None = None, on: str = "study_id"):
        """``records``: optional per-study (or per-image) rows — report text, labels, boxes — joined on ``on``."""
        self.root = Path(shards)
        index_path = self.root / "index.parquet"
        if not index_path.is_file():
            raise UserError(
                f"{self.root} has no index.parquet: not a shards folder (run `cxr preprocess` first)"
            )
        self.index = pd.read_parquet(index_path)
        if records is not None:
            if on not in records.columns:
                raise UserError(f"records have no column {on!r} to join on")
            self.index = self.index.merge(records, on=on, how="left", validate="many_to_one")
        self._handles: dict[int, Any] = {}
        self._pid = -1

    def __len__(self) -> int:
        return len(self.index)

    def _file(self, shard: int):
        import h5py
        import hdf5plugin  # noqa: F401  (registers the Blosc filter for reading)

        if self._pid != os.getpid():  # a forked worker: never reuse the parent's handles
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:
            self._handles[shard] = h5py.File(self.root / f"shard-{shard:05d}.h5", "r")
        return self._handles[shard]

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.index.iloc[int(i)]
        image = np.asarray(self._file(int(row["shard"]))["images"][int(row["index"])])
        rec = ResizeRecord(
            int(row["orig_w"]),
            int(row["orig_h"]),
            int(row["content_w"]),
            int(row["content_h"]),
            int(row["pad_left"]),
            int(row["pad_top"]),
            int(row["pad_right"]),
            int(row["pad_bottom"]),
        )
        return {"image": image, "resize": rec, **{k: row[k] for k in self.index.columns}}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, -1
        return state

    def close(self) -> None:
        for h in self._handles.values():
            h.close()
        self._handles = {}
