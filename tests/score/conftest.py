"""Shards in several parts for scoring tests (30 studies, 8 per shard → 4 parts)."""

from __future__ import annotations

import pytest

from tests.conftest import small_shards


@pytest.fixture(scope="session")
def score_shards(tmp_path_factory, deid_key):
    return small_shards(tmp_path_factory.mktemp("score"), seed=7, extra=("studies_per_shard=8",))
