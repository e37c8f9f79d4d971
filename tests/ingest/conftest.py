"""Fixtures of the ingest tests; the layouts themselves are in tests/ingest/layouts.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.layouts import CANARY


@pytest.fixture(scope="session")
def canary_root(tmp_path_factory) -> Path:
    """Roots whose path itself carries the canary (paths must stay in private/ too)."""
    return tmp_path_factory.mktemp(f"src-{CANARY}")
