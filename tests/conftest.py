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


def _slurm_up() -> bool:
    import subprocess

    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and "idle" in r.stdout or "mix" in r.stdout or "alloc" in r.stdout


@pytest.fixture(scope="session")
def slurm_cluster():
    """The real Slurm testbed (tools/slurm-testbed). Started here if this is root and it is down.
    Skips where it cannot run, unless CXR_REQUIRE_SYSTEM=1 (make test as root, CI): then it fails."""
    import subprocess

    if not _slurm_up() and os.geteuid() == 0:
        subprocess.run([os.path.join(REPO, "tools", "slurm-testbed"), "start"], check=False, timeout=600)
    if not _slurm_up():
        if os.environ.get("CXR_REQUIRE_SYSTEM") == "1":
            pytest.fail(
                "the Slurm testbed is not up (tools/slurm-testbed start; logs in /var/lib/cxr-slurm-testbed/log)"
            )
        pytest.skip("no Slurm cluster (run tools/slurm-testbed start as root)")
    return True


def require_tool(name: str) -> str:
    """A system tool a test needs (tools/system-deps installs them); fail instead of skip when required."""
    exe = shutil.which(name)
    if exe is None:
        if os.environ.get("CXR_REQUIRE_SYSTEM") == "1":
            pytest.fail(f"{name} is not installed (tools/system-deps)")
        pytest.skip(f"{name} is not installed (tools/system-deps)")
    return exe


@pytest.fixture(scope="session")
def deid_key():
    os.environ["CXR_DEID_KEY"] = "test-site-key-0123456789"
    return "env:CXR_DEID_KEY"


@pytest.fixture
def slurm_run_dir(slurm_cluster, tmp_path_factory):
    # Fresh folder per test: Slurm job ids restart at 1 after a state reset and a reused submitit
    # folder would hand back stale result pickles. Under /tmp so every slurmd "node" sees it.
    return tmp_path_factory.mktemp("slurm-run")


def small_shards(root, *, seed: int, studies: int = 30, extra: tuple[str, ...] = ()):
    """Synthetic archive (small images, no bad files) → 128-px shards under ``root``; returns the
    shards folder. Needs the ``deid_key`` fixture."""
    from cxr.config import load_config
    from cxr.config.schema import PreprocessConfig
    from jobs.preprocess import preprocess
    from preprocessing.synth import SynthSpec, synth_archive

    synth_archive(
        root / "archive", SynthSpec(studies=studies, seed=seed, min_size=160, max_size=200, bad_share=0)
    )
    overrides = [f"archive={root / 'archive' / 'dicom'}", f"shards={root / 'shards'}", "size=128", *extra]
    preprocess(load_config(PreprocessConfig, overrides=overrides), log=lambda s: None)
    return root / "shards"
