"""A small dataset for training tests: synthetic archive → shards → instruction + cold-start records."""

from __future__ import annotations

import pytest

from cxr.config import load_config
from cxr.config.schema import BuildDataConfig
from cxr.data.build import build_dataset
from tests.conftest import small_shards

MAX_PIXELS = 112 * 112  # 16 image tokens: fast steps, enough to learn the format


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory, deid_key):
    root = tmp_path_factory.mktemp("train")
    small_shards(root, seed=5, extra=(f"ris={root / 'archive' / 'ris' / 'ris.csv'}",))
    build_dataset(
        load_config(
            BuildDataConfig,
            overrides=[f"shards={root / 'shards'}", f"out={root / 'data'}", f"image.max_pixels={MAX_PIXELS}"],
        )
    )
    return root / "data", root / "shards"


@pytest.fixture(scope="session")
def coldstart_model(sft_data, tiny_model, tmp_path_factory) -> str:
    """Stage 2 of the tiny model (~1 min): emits the grounded format, so GRPO rewards vary."""
    from cxr.config.schema import SftConfig
    from cxr.train.sft import run_sft

    data, shards = sft_data
    out = tmp_path_factory.mktemp("coldstart") / "run"
    overrides = [
        f"data={data}",
        f"shards={shards}",
        f"out={out}",
        f"model.path={tiny_model}",
        "stage=coldstart",
        "max_steps=150",
        "batch_size=8",
        "lr=3e-3",
        "freeze_vision=false",
        "save_steps=1000",
        "logging_steps=50",
        "report_to=[]",
        f"image.max_pixels={MAX_PIXELS}",
    ]
    return run_sft(load_config(SftConfig, overrides=overrides))
