"""A small synthetic archive and its shards, built once per session."""

from __future__ import annotations

import pytest

from cxr.config import load_config
from cxr.config.schema import PreprocessConfig
from preprocessing.synth import BAD_KINDS, SynthSpec, synth_archive

N_STUDIES = 18  # the first 8 studies carry one of each bad kind; the other 10 cover the 9 syntaxes


@pytest.fixture(scope="session")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    truth = synth_archive(
        root, SynthSpec(studies=N_STUDIES, seed=3, min_size=200, max_size=280, bad_share=8 / 18)
    )
    assert {v["bad"] for v in truth["files"].values() if "bad" in v} == set(BAD_KINDS)
    return root, truth


def preprocess_cfg(archive_root, shards, *extra):
    return load_config(
        PreprocessConfig,
        overrides=[
            f"archive={archive_root / 'dicom'}",
            f"shards={shards}",
            "studies_per_shard=3",
            "size=128",
            f"ris={archive_root / 'ris' / 'ris.csv'}",
            *extra,
        ],
    )


@pytest.fixture(scope="session")
def shards(archive, deid_key, tmp_path_factory):
    from jobs.preprocess import preprocess

    root, _ = archive
    out = tmp_path_factory.mktemp("shards")
    manifest = preprocess(preprocess_cfg(root, out), log=lambda s: None)
    return out, manifest
