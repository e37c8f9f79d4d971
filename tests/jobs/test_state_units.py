"""State parsing and polling logic (no cluster needed)."""

from __future__ import annotations

import os

import pytest

from jobs.distributed import dist_env, port_for_job
from jobs.state import parse_table, wait_for


def test_parse_sacct_and_squeue_lines():
    text = "12|COMPLETED\n12.batch|COMPLETED\n13_0|RUNNING\n13_[1-3,5%2]|PENDING\n14|CANCELLED by 0\n15|OUT_OF_MEMORY+\n"
    assert parse_table(text) == {
        "12": "COMPLETED",
        "13_0": "RUNNING",
        "13_1": "PENDING",
        "13_2": "PENDING",
        "13_3": "PENDING",
        "13_5": "PENDING",
        "14": "CANCELLED",
        "15": "OUT_OF_MEMORY",
    }


def test_wait_for_backs_off_and_stops_on_terminal(monkeypatch):
    sleeps, calls = [], iter([{"1": "PENDING"}] * 4 + [{"1": "RUNNING"}, {"1": "COMPLETED"}])
    monkeypatch.setattr("jobs.state.time.sleep", sleeps.append)
    assert wait_for(lambda ids: next(calls), ["1"], first_s=1, max_s=2) == {"1": "COMPLETED"}
    assert sleeps == [1, 1.5, 2, 2, 1]  # grows while nothing changes, capped, reset on change


def test_wait_for_times_out(monkeypatch):
    monkeypatch.setattr("jobs.state.time.sleep", lambda s: None)
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr("jobs.state.time.monotonic", lambda: next(clock))
    with pytest.raises(TimeoutError, match="not finished"):
        wait_for(lambda ids: {"1": "RUNNING"}, ["1"], timeout_s=30)


def test_dist_env_from_srun_variables(monkeypatch):
    for k in list(os.environ):
        if k.startswith(("SLURM_", "SUBMITIT_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NODEID", "1")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[07-08]")
    monkeypatch.setenv("SLURM_JOB_ID", "123456")
    env = dist_env()
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size, env.node_rank) == (5, 8, 1, 4, 1)
    assert env.master_addr == "gpu07" and env.master_port == port_for_job("123456")
    assert port_for_job("123456") != port_for_job("123457")
