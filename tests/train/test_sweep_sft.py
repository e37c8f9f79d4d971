"""A sweep of the real stage-1 job (not the toy): each run trains the tiny model in its own folder,
exports it, logs its Trainer metrics to metrics.jsonl, and the table has them."""

from __future__ import annotations

import pandas as pd
import yaml

from sweeps import store
from sweeps.collect import collect
from sweeps.launch import launch
from sweeps.spec import load_spec
from tests.train.test_sft import sft_overrides


def test_sft_sweep_trains_each_run_and_tables_its_loss(sft_data, tiny_model, tmp_path):
    data, shards = sft_data
    base = [o for o in sft_overrides(data, shards, "unused", tiny_model) if not o.startswith("out=")]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "sft-lr",
                "job": "sft",
                "out": str(tmp_path / "sweep"),
                "overrides": [*base, "max_steps=2", "save_steps=100", "report_to=[]"],
                "axes": {"lr": [1e-3, 1e-4]},
                "metric": {"name": "train_loss", "mode": "min"},
                "executor": {"array_parallelism": 1},
            }
        )
    )
    launched = launch(load_spec(spec_file))
    launched.submission.wait(timeout_s=900)
    _, _, df = collect(launched.folder)
    assert len(df) == 2 and set(df["state"]) == {"completed"}, df[["state", "reason"]]
    assert sorted(df["cfg.lr"]) == [1e-4, 1e-3]
    assert (
        df["final.loss"].notna().all()
        and df["best.loss"].notna().all()
        and df["final.train_loss"].notna().all()
    )
    for rid in df["run_id"]:
        d = store.run_dir(launched.folder, rid)
        assert (d / "export" / "config.json").is_file()  # each run exported its model
        assert (d / "meta.json").is_file() and (d / "config.yaml").is_file()
    rows = pd.read_json(store.run_dir(launched.folder, df["run_id"][0]) / "metrics.jsonl", lines=True)
    assert list(rows.dropna(subset=["loss"])["step"]) == [1, 2]
