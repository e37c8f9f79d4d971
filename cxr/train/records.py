"""Instruction / cold-start records as a TRL conversational vision dataset, images read lazily
from the shards (records hold only ``shard``/``index``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from cxr.data.shards import ShardDataset
from cxr.errors import UserError
from cxr.format import grounded_prompt


class SftRecords:
    def __init__(
        self,
        data: str | Path,
        shards: str | Path,
        *,
        stage: str,
        split: str = "train",
        grounded: bool | None = None,
        tasks: list[str] | None = None,
        max_records: int = 0,
    ):
        """``stage`` picks the file (coldstart → coldstart-*.parquet); ``grounded`` (default: coldstart
        only) appends the seed's reasoning suffix to prompts, as stage 3 does on instruction records;
        ``tasks`` keeps only those record tasks."""
        data = Path(data)
        name = f"coldstart-{split}.parquet" if stage == "coldstart" else f"{split}.parquet"
        if not (data / name).is_file():
            raise UserError(f"{data / name} does not exist (run `cxr build-data SHARDS {data}`)")
        self.rows = pd.read_parquet(data / name)
        if tasks:
            unknown = sorted(set(tasks) - set(self.rows["task"]))
            if unknown:
                raise UserError(f"{data / name} has no records of task(s) {unknown}")
            self.rows = self.rows[self.rows["task"].isin(tasks)].reset_index(drop=True)
        if max_records > 0:
            self.rows = self.rows.iloc[:max_records].reset_index(drop=True)
        if len(self.rows) == 0:
            raise UserError(f"{data / name} has no records")
        self.stage = stage
        self.grounded = stage == "coldstart" if grounded is None else grounded
        self.images = ShardDataset(shards)
        self._pos = {
            (int(s), int(i)): k
            for k, (s, i) in enumerate(
                zip(self.images.index["shard"], self.images.index["index"], strict=True)
            )
        }
        missing = [
            (s, i)
            for s, i in zip(self.rows["shard"], self.rows["index"], strict=True)
            if (int(s), int(i)) not in self._pos
        ]
        if missing:
            raise UserError(
                f"{len(missing)} record(s) point at images not in {shards} (e.g. shard {missing[0][0]}, index {missing[0][1]})"
            )

    def __len__(self) -> int:
        return len(self.rows)

    def prompt_text(self, k: int) -> str:
        q = str(self.rows["question"].iloc[k])
        return grounded_prompt(q) if self.grounded else q

    def target_text(self, k: int) -> str:
        col = "completion" if self.stage == "coldstart" else "answer"
        return str(self.rows[col].iloc[k])

    def image(self, k: int) -> Image.Image:
        r = self.rows.iloc[k]
        return Image.fromarray(self.images[self._pos[(int(r["shard"]), int(r["index"]))]]["image"]).convert(
            "RGB"
        )

    def prompt(self, k: int) -> list[dict]:
        return [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt_text(k)}]}
        ]

    def example(self, k: int) -> dict:
        return {
            "prompt": self.prompt(k),
            "completion": [{"role": "assistant", "content": [{"type": "text", "text": self.target_text(k)}]}],
            "images": [self.image(k)],
        }

    def rl_example(self, k: int) -> dict:
        """A GRPO row: the prompt and image, plus what the rewards read (answer, task, reference boxes)."""
        r = self.rows.iloc[k]
        return {
            "prompt": self.prompt(k),
            "images": [self.image(k)],
            "answer": str(r["answer"]),
            "task": str(r["task"]),
            "boxes": str(r["boxes"]),
            "record_id": str(r["record_id"]),
        }


def as_hf_dataset(records: SftRecords, *, rl: bool = False):
    """A ``datasets.Dataset`` (what TRL accepts) of record positions whose rows are built on access:
    images are read from the shards when a batch needs them, never held in memory or on disk twice.
    ``rl``: GRPO rows (prompt, images and the reward columns) instead of SFT rows."""
    import datasets

    ds = datasets.Dataset.from_dict({"k": list(range(len(records)))})
    build = records.rl_example if rl else records.example

    def transform(batch: dict) -> dict:
        rows = [build(int(k)) for k in batch["k"]]
        return {key: [r[key] for r in rows] for key in rows[0]}

    ds.set_transform(transform)
    return ds
