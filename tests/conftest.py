"""Shared fixtures. The tiny model is built once per session; nothing here downloads."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from cxr.model import build_tiny

    return str(build_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0))


@pytest.fixture(scope="session")
def cxr_bin() -> str:
    exe = shutil.which("cxr") or os.path.join(os.path.dirname(sys.executable), "cxr")
    assert os.path.exists(exe), "the cxr console script is not installed (run `make setup`)"
    return exe


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
