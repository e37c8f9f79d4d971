"""Random access to preprocessed shards (SHARDS/shard-*.h5 + index.parquet), joined with records.

h5py handles are not fork-safe, so each process opens its own, lazily, on first access (the
handle cache is keyed by PID): safe under a DataLoader with workers. Returns the image as stored
(uint8/uint16, letterboxed) and its ResizeRecord, so boxes can be mapped to original pixels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from cxr.errors import UserError
from cxr.format.boxes import ResizeRecord, boxes_on


class ShardDataset:
    def __init__(
        self, shards: str | Path, records: pd.DataFrame | bool | None = None, on: str = "accession_id"
    ):
        """``records``: rows to join on ``on`` — report text, labels, boxes; ``True`` reads the folder's
        own ``records.parquet`` (the RIS export, keyed by accession pseudonym). A box the RIS drew on
        a named image (its ``image_id``) is kept on that image only."""
        self.root = Path(shards)
        index_path = self.root / "index.parquet"
        if not index_path.is_file():
            raise UserError(
                f"{self.root} has no index.parquet: not a shards folder (run `cxr preprocess` first)"
            )
        self.index = pd.read_parquet(index_path)
        if records is True:
            path = self.root / "records.parquet"
            if not path.is_file():
                raise UserError(
                    f"{self.root} has no records.parquet: preprocess with ris=PATH to attach them"
                )
            records = pd.read_parquet(path)
        if isinstance(records, pd.DataFrame):
            if on not in records.columns:
                raise UserError(f"records have no column {on!r} to join on")
            self.index = self.index.merge(records, on=on, how="left", validate="many_to_one")
            if {"boxes", "image_id"} <= set(self.index.columns):
                self.index["boxes"] = [
                    _boxes_on(b, image)
                    for b, image in zip(self.index["boxes"], self.index["image_id"], strict=True)
                ]
        # Plain numpy columns: pandas row access (iloc) costs more than reading the image itself.
        self._cols = {c: self.index[c].to_numpy() for c in self.index.columns}
        self._handles: dict[int, Any] = {}
        self._pid = -1

    def __len__(self) -> int:
        return len(self.index)

    def _file(self, shard: int):
        import h5py
        import hdf5plugin  # noqa: F401  (registers the Blosc filter for reading)

        if self._pid != os.getpid():  # a forked worker: never reuse the parent's handles
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:  # keep the dataset object: looking it up costs as much as a read
            self._handles[shard] = h5py.File(self.root / f"shard-{shard:05d}.h5", "r")["images"]
        return self._handles[shard]

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        row = {c: v[i] for c, v in self._cols.items()}
        image = self._file(int(row["shard"]))[int(row["index"])]
        rec = ResizeRecord.from_row(row)
        return {"image": image, "resize": rec, **row}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, -1
        return state

    def close(self) -> None:
        for h in self._handles.values():
            h.file.close()
        self._handles = {}


def _boxes_on(boxes, image_id: str):
    """A record's JSON boxes that belong on ``image_id`` (``cxr.format.boxes.boxes_on``)."""
    if not isinstance(boxes, str):
        return boxes  # no record for this image
    return json.dumps(boxes_on(json.loads(boxes or "[]"), image_id))
