"""Shards in several parts for scoring tests (30 studies, 8 per shard → 4 parts)."""

from __future__ import annotations

import pytest

from cxr.config import load_config
from cxr.config.schema import PreprocessConfig
from jobs.preprocess import preprocess
from preprocessing.synth import SynthSpec, synth_archive


@pytest.fixture(scope="session")
def score_shards(tmp_path_factory, deid_key):
    root = tmp_path_factory.mktemp("score")
    synth_archive(root / "archive", SynthSpec(studies=30, seed=7, min_size=160, max_size=200, bad_share=0))
    preprocess(
        load_config(
            PreprocessConfig,
            overrides=[
                f"archive={root / 'archive' / 'dicom'}",
                f"shards={root / 'shards'}",
                "size=128",
                "studies_per_shard=8",
            ],
        ),
        log=lambda s: None,
    )
    return root / "shards"
