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
import ctypes, sys
from pathlib import Path
import pandas as pd
import preprocessing.shards as sh
files, out, archive, victim = sys.argv[1:5]
real = sh._decode_file
def crashing(path, *a, **k):
    if path.name == victim:
        ctypes.string_at(0)
    return real(path, *a, **k)
sh._decode_file = crashing
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
    victim = Path(mine[mine["file_id"].isin(ok)]["rel"].iloc[-1]).name  # a good file
    table = tmp_path / "files.parquet"
    mine.to_parquet(table)
    return table, root / "dicom", victim, manifest.set_index("file_id")["status"]


def _run(table, out: Path, archive, victim: str) -> int:
    out.mkdir(exist_ok=True)
    cmd = [sys.executable, "-c", SCRIPT, str(table), str(out), str(archive), victim]
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
