"""Sweeps end to end with the toy job: six runs, throttle 2, one diverges on purpose. Status shows
it failed (never completed); resume with the fix reruns only that run, in the same folder; collect
gives six rows. The same on the Slurm testbed gives the same table. Bayes: the study survives a
killed worker and finishes its budget."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from jobs.records import load_groups
from sweeps import store
from sweeps.collect import collect
from sweeps.launch import launch, resume
from sweeps.spec import load_spec
from sweeps.status import run_states

LRS = [0.01, 0.03, 0.1, 0.2, 0.3, 4.0]  # 4.0 diverges: the failure on purpose
BAD = "lr=4.0"


def write_spec(tmp_path: Path, out: Path, **fields) -> Path:
    data = {
        "name": "toy6",
        "job": "toy",
        "out": str(out),
        "overrides": ["epochs=5", "n=256"],
        "axes": {"lr": LRS},
        "metric": {"name": "val_loss", "mode": "min"},
        "executor": {"array_parallelism": 2, "time_min": 10},
        **fields,
    }
    p = tmp_path / f"{out.name}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def max_concurrent(folder: Path) -> int:
    """Most runs alive at one moment, from their own start/end records."""
    events = []
    for rid in store.run_ids(folder):
        st = store.read_json(store.run_dir(folder, rid) / "status.json")
        events += [(st["started"], 1), (st["ended"], -1)]
    live = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        live += step
        peak = max(peak, live)
    return peak


def by_label(folder: Path) -> dict[str, str]:
    return {" ".join(f"{k}={v}" for k, v in r.params.items()): r.state for r in run_states(folder)}


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["run_id", "state"] + [c for c in df.columns if c.startswith(("cfg.", "final.", "best."))]
    return df[cols].sort_values("run_id").reset_index(drop=True)


def cli(cxr_bin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [cxr_bin, *args], capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"}
    )


def test_local_sweep_fails_one_run_resumes_only_it_and_collects_six_rows(cxr_bin, tmp_path):
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, out)
    r = cli(cxr_bin, "sweep", "launch", str(spec))  # local: runs here, then prints the status
    assert r.returncode == 0, r.stderr
    assert "5 completed, 1 failed" in r.stdout
    states = by_label(out)
    assert states.pop(BAD) == "failed" and set(states.values()) == {"completed"}
    bad = next(x for x in run_states(out) if x.state == "failed")
    assert "diverged" in bad.reason
    assert max_concurrent(out) <= 2  # the throttle held

    r = cli(cxr_bin, "sweep", "launch", str(spec))
    assert r.returncode == 2 and "already holds a sweep" in r.stderr
    r = cli(cxr_bin, "sweep", "resume", str(out), "lr=1")
    assert r.returncode == 2 and "sweep axis" in r.stderr

    before = {x.id: store.read_json(store.run_dir(out, x.id) / "status.json") for x in run_states(out)}
    r = cli(cxr_bin, "sweep", "resume", str(out), "clip_norm=1.0")
    assert r.returncode == 0, r.stderr
    assert "6 completed" in r.stdout
    (resumed,) = [g for g in load_groups(out) if g.name == "sweep-resume"]
    assert resumed.labels == [bad.id]  # only the failed run went back
    after = {x.id: store.read_json(store.run_dir(out, x.id) / "status.json") for x in run_states(out)}
    for rid, st in after.items():
        assert st["attempts"] == (2 if rid == bad.id else 1)
        if rid != bad.id:
            assert st == before[rid]  # untouched
    d = store.run_dir(out, bad.id)
    assert yaml.safe_load((d / "config.yaml").read_text())["clip_norm"] == 1.0
    assert yaml.safe_load((d / "config.launch.yaml").read_text())["clip_norm"] == 0.0

    r = cli(cxr_bin, "sweep", "resume", str(out))
    assert r.returncode == 0 and "nothing to resume" in r.stdout
    r = cli(cxr_bin, "sweep", "collect", str(out))
    assert r.returncode == 0, r.stderr
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == 6 and set(df["state"]) == {"completed"} and df["run_id"].is_unique
    assert sorted(df["cfg.lr"]) == LRS and (df["final.val_loss"] > 0).all()
    assert df.loc[df["cfg.lr"] == 4.0, "fixes"].item() == json.dumps([["clip_norm=1.0"]])
    assert df["wall_s"].notna().all()
    assert list(df["restarts"]) == [1 if lr == 4.0 else 0 for lr in df["cfg.lr"]]  # rerun in its folder
    assert len(pd.read_csv(out / "results.csv")) == 6


def test_seeds_give_a_mean_and_std_per_config(tmp_path):
    out = tmp_path / "seeds"
    spec = load_spec(write_spec(tmp_path, out, axes={"lr": [0.03, 0.1]}, seeds=[0, 1, 2]))
    sub = launch(spec).submission
    sub.wait()
    _, summary_path, df = collect(out)
    assert len(df) == 6
    s = pd.read_parquet(summary_path)
    assert list(s["cfg.lr"]) == [0.03, 0.1] and list(s["n"]) == [3, 3]
    for lr in (0.03, 0.1):
        vals = df.loc[df["cfg.lr"] == lr, "final.val_loss"]
        row = s[s["cfg.lr"] == lr]
        assert np.isclose(row["final.val_loss.mean"].item(), vals.mean())
        assert np.isclose(row["final.val_loss.std"].item(), vals.std())


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_sweep_one_array_throttled_failed_run_resumed_same_table_as_local(tmp_path, slurm_run_dir):
    local_out = tmp_path / "local"
    sub = launch(load_spec(write_spec(tmp_path, local_out))).submission
    sub.wait()
    resume(local_out, ["clip_norm=1.0"]).submission.wait()
    _, _, local = collect(local_out)

    out = slurm_run_dir / "sweep"
    spec = load_spec(
        write_spec(tmp_path, out),
        [
            "executor.kind=slurm",
            "executor.cpus_per_task=1",
            "executor.mem_gb=2",
            "executor.setup=[export OMP_NUM_THREADS=1]",
        ],
    )
    launched = launch(spec)  # returns once queued
    (group,) = load_groups(out)
    assert len(group.job_ids) == 6 and len({j.split("_")[0] for j in group.job_ids}) == 1  # one array
    assert any(r.state in ("pending", "running") for r in run_states(out))
    launched.submission.wait(timeout_s=600)
    states = by_label(out)
    assert states.pop(BAD) == "failed" and set(states.values()) == {"completed"}, states
    assert max_concurrent(out) <= 2
    sacct = launched.submission.states()
    assert sorted(sacct.values()) == ["COMPLETED"] * 5 + ["FAILED"]  # the scheduler agrees: not completed

    again = resume(out, ["clip_norm=1.0"])
    assert again.runs == 1
    again.submission.wait(timeout_s=600)
    _, _, df = collect(out)
    assert len(df) == 6 and set(df["state"]) == {"completed"}
    assert df["job_id"].notna().all() and df["node"].notna().all()
    a, b = comparable(df), comparable(local)
    assert list(a.columns) == list(b.columns) and (a["run_id"] == b["run_id"]).all()
    for c in a.columns:
        if c.startswith(("final.", "best.")):
            assert np.allclose(a[c], b[c], rtol=1e-5), c
        else:
            assert (a[c].astype(str) == b[c].astype(str)).all(), c


def test_bayes_study_resumes_after_its_worker_is_killed(tmp_path):
    out = tmp_path / "bayes"
    spec = load_spec(
        write_spec(
            tmp_path,
            out,
            mode="bayes",
            overrides=["epochs=4", "n=256", "epoch_s=0.4"],
            axes={"lr": {"loguniform": [0.005, 0.3]}, "batch_size": {"int": [8, 64]}},
            bayes={"trials": 4, "parallelism": 1, "startup_trials": 2},
        )
    )
    launched = launch(spec)
    (worker,) = launched.submission.job_ids  # a local job's id is its pid
    deadline = time.monotonic() + 300
    victim = None
    while victim is None and time.monotonic() < deadline:  # kill it inside its second trial
        rows = run_states(out)
        if sum(r.state == "completed" for r in rows) == 1:
            running = [
                r
                for r in rows
                if store.read_json(store.run_dir(out, r.id) / "status.json").get("state") == "running"
            ]
            if running and len(epochs_logged(out, running[0].id)) >= 2:
                victim = running[0].id
        time.sleep(0.1)
    assert victim, "the worker never reached a second trial"
    os.kill(int(worker), signal.SIGKILL)
    launched.submission.wait(timeout_s=60)
    assert {r.id: r.state for r in run_states(out)}[victim] == "failed"  # its worker died mid-trial

    again = resume(out)
    assert again.runs == 1
    again.submission.wait(timeout_s=300)

    from sweeps import bayes

    study = bayes.load(out, spec)
    trials = study.get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    stale = [t for t in trials if t.user_attrs.get("stale")]
    assert len(complete) == 4 and len(stale) == 1  # the budget, plus the released trial
    assert victim in {t.user_attrs["run_id"] for t in complete}  # asked again: same params, same run
    rows = {r.id: r for r in run_states(out)}
    assert len(rows) == 4 and all(r.state == "completed" for r in rows.values())
    assert rows[victim].attempts == 2 and all(r.attempts == 1 for k, r in rows.items() if k != victim)
    steps = [
        json.loads(line)["step"]
        for line in (store.run_dir(out, victim) / "metrics.jsonl").read_text().splitlines()
    ]
    # resumed from its checkpoint (≥ 2 epochs were saved): from scratch would log ≥ 6 lines; an epoch cut
    # between its log line and its checkpoint is logged twice
    assert sorted(set(steps)) == [1, 2, 3, 4] and len(steps) <= 5, steps
    assert resume(out).runs == 0  # budget spent
    _, _, df = collect(out)
    assert len(df) == 4 and df["trial"].notna().all() and df["final.val_loss"].notna().all()


def wait_until(cond, timeout_s: float = 300, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def epochs_logged(folder: Path, rid: str) -> list[int]:
    p = store.run_dir(folder, rid) / "metrics.jsonl"
    return [json.loads(x)["step"] for x in p.read_text().splitlines()] if p.is_file() else []


def test_cancelled_runs_show_cancelled_and_resume_from_their_checkpoints(tmp_path):
    from jobs import control

    out = tmp_path / "cancel"
    spec = load_spec(
        write_spec(tmp_path, out, axes={"lr": [0.03, 0.1]}, overrides=["epochs=30", "epoch_s=0.5"])
    )
    launched = launch(spec)
    ids = launched.submission.group.labels
    wait_until(lambda: all(len(epochs_logged(out, r)) >= 2 for r in ids), what="two epochs of each run")
    control.cancel(out)
    launched.submission.wait(timeout_s=60)
    assert {r.state for r in run_states(out)} == {"cancelled"}
    done_before = {r: max(epochs_logged(out, r)) for r in ids}

    again = resume(out, ["epoch_s=0"])
    assert sorted(again.submission.group.labels) == sorted(ids)
    again.submission.wait(timeout_s=300)
    assert {r.state for r in run_states(out)} == {"completed"}
    for r in ids:
        steps = epochs_logged(out, r)
        # continued after its last checkpoint (an epoch cut between its log line and its checkpoint is
        # logged twice; readers keep the last line)
        assert sorted(set(steps)) == list(range(1, 31)) and len(steps) <= 31, steps
        assert done_before[r] >= 2


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_preempted_run_requeues_and_resumes_from_its_checkpoint(tmp_path, slurm_run_dir):
    from jobs.state import SlurmStates

    out = slurm_run_dir / "preempt"
    spec = load_spec(
        write_spec(tmp_path, out, axes={"lr": [0.05]}, overrides=["epochs=16", "epoch_s=0.5"]),
        ["executor.kind=slurm", "executor.cpus_per_task=1", "executor.mem_gb=2"],
    )
    launched = launch(spec)
    (rid,) = launched.submission.group.labels
    wait_until(lambda: len(epochs_logged(out, rid)) >= 3, what="three epochs")
    SlurmStates().signal(launched.submission.job_ids, "USR2")  # what preemption sends
    wait_until(
        lambda: run_states(out)[0].state in ("preempted", "completed") or run_states(out)[0].attempts > 1
    )
    launched.submission.wait(timeout_s=300)
    (row,) = run_states(out)
    assert row.state == "completed" and row.attempts == 2
    steps = epochs_logged(out, rid)
    assert sorted(set(steps)) == list(range(1, 17)) and len(steps) <= 17, steps  # resumed, not restarted
    _, _, df = collect(out)
    assert df["restarts"].item() == 1
