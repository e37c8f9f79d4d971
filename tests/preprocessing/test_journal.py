"""A file whose decoder kills the process (a segfault in a C codec, the OOM killer) cannot stop its
shard for ever: at the second death with it in flight it is rejected; one death rejects nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pandas as pd
import pytest

from preprocessing.journal import REASON

REPO = Path(__file__).resolve().parents[2]
# The shard writer in a process of its own, whose decoder really segfaults on one named file, as a
# broken C codec would (ctypes reads address 0); the journal under test is the real one.
SCRIPT = """
import ctypes, os, signal, sys
from pathlib import Path
import pandas as pd
import preprocessing.shards as sh
files, out, archive, victim, how = sys.argv[1:6]
if how == "term-bypassed":  # what submitit does with SIGTERM: log it and go on
    signal.signal(signal.SIGTERM, lambda *a: None)
real, seen = sh._decode_file, []
def failing(path, *a, **k):
    if seen and how == "term-bypassed":
        os.kill(os.getpid(), signal.SIGKILL)  # Slurm's SIGKILL, KillWait after the SIGTERM
    if path.name == victim:
        seen.append(path)
        if how == "segv":
            ctypes.string_at(0)
        if how.startswith("term"):
            os.kill(os.getpid(), signal.SIGTERM)
        if how == "memory":
            raise MemoryError
    return real(path, *a, **k)
sh._decode_file = failing
sh.write_shard(Path(out), 0, pd.read_parquet(files), Path(archive), size=64, dtype="uint8",
               j2k_reduce=0, compression_level=1, log=lambda s: None)
"""


@pytest.fixture
def one_shard(archive, shards, tmp_path):
    root, _ = archive
    out, manifest = shards
    plan = pd.read_parquet(out / "plan.parquet")
    files = pd.read_parquet(out / "private" / "files.parquet")
    mine = files[files["study_id"].isin(plan.loc[plan["shard"] == 0, "study_id"])]
    ok = set(manifest.loc[manifest["status"] == "ok", "file_id"])
    order = mine.sort_values(["study_id", "image_id", "file_id"])  # as write_shard goes
    victim = Path(order[order["file_id"].isin(ok)]["rel"].iloc[0]).name  # a good file, others after it
    table = tmp_path / "files.parquet"
    mine.to_parquet(table)
    return table, root / "dicom", victim, manifest.set_index("file_id")["status"]


def _run(table, out: Path, archive, victim: str, how: str = "segv") -> int:
    out.mkdir(exist_ok=True)
    cmd = [sys.executable, "-c", SCRIPT, str(table), str(out), str(archive), victim, how]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=300).returncode


def _shard(out: Path) -> tuple[np.ndarray, pd.DataFrame]:
    with h5py.File(out / "shard-00000.h5", "r") as f:
        images = f["images"][...]
    return images, pd.read_parquet(out / "parts" / "shard-00000.manifest.parquet")


def test_one_death_rejects_nothing(one_shard, tmp_path):
    table, archive, victim, _ = one_shard
    clean, out = tmp_path / "clean", tmp_path / "crashed"
    assert _run(table, clean, archive, "") == 0
    assert _run(table, out, archive, victim) == -signal.SIGSEGV
    assert _run(table, out, archive, "") == 0  # e.g. it was a kill -9 or a time limit, not the file
    (a, ma), (b, mb) = _shard(clean), _shard(out)
    assert np.array_equal(a, b)
    pd.testing.assert_frame_equal(ma, mb)
    assert not list((out / "parts").glob(".shard-00000.*"))  # the journal is gone with the commit


def test_a_file_that_kills_its_decoder_twice_is_rejected(one_shard, tmp_path):
    table, archive, victim, status = one_shard
    out = tmp_path / "shards"
    assert _run(table, out, archive, victim) == -signal.SIGSEGV
    assert _run(table, out, archive, victim) == -signal.SIGSEGV
    assert _run(table, out, archive, victim) == 0
    _, manifest = _shard(out)
    files = pd.read_parquet(table).set_index("file_id")
    names = manifest["file_id"].map(lambda f: Path(files.loc[f, "rel"]).name)
    row = manifest[names == victim].iloc[0]
    assert row["status"] == "rejected" and row["reason"] == REASON
    others = manifest[names != victim]
    assert list(others["status"]) == list(status.loc[others["file_id"]])  # as without the crashes


@pytest.mark.parametrize("how", ["term", "term-bypassed"])
def test_being_stopped_from_outside_never_counts(one_shard, tmp_path, how):
    """scancel and Slurm's time limit send SIGTERM (then SIGKILL): twice at the same file is no
    reason to reject it, even when the job runs on after the SIGTERM and is killed at a later file."""
    table, archive, victim, status = one_shard
    out = tmp_path / "shards"
    for _ in range(2):
        assert _run(table, out, archive, victim, how) in (-signal.SIGTERM, -signal.SIGKILL)
    assert _run(table, out, archive, "") == 0
    _, manifest = _shard(out)
    assert list(manifest["status"]) == list(status.loc[manifest["file_id"]])


def test_running_out_of_memory_gets_a_retry_then_a_rejection(one_shard, tmp_path):
    """A MemoryError fails the task instead of rejecting the file for good (it may not happen on a
    rerun); at the second, the file is rejected like one that crashes its decoder."""
    table, archive, victim, _ = one_shard
    out = tmp_path / "shards"
    assert _run(table, out, archive, victim, "memory") == 1
    assert _run(table, out, archive, victim, "memory") == 1
    assert _run(table, out, archive, victim, "memory") == 0
    _, manifest = _shard(out)
    files = pd.read_parquet(table).set_index("file_id")
    names = manifest["file_id"].map(lambda f: Path(files.loc[f, "rel"]).name)
    assert manifest.loc[names == victim, "reason"].tolist() == [REASON]
