"""The local and debug executors run the same job functions as Slurm, with the same results, and
the local one honours array_parallelism."""

from __future__ import annotations

import functools

import pytest

from cxr.config.schema import ExecutorConfig
from jobs import control, examples
from jobs.chain import Link, submit_chain
from jobs.submission import Submitted, map_array, submit


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    return max(sum(1 for a, b in intervals if a <= t < b) for t, _ in intervals)


def test_local_array_throttle_and_results(tmp_path):
    cfg = ExecutorConfig(kind="local", array_parallelism=2, time_min=5)
    sub = map_array(
        functools.partial(examples.timestamps, seconds=1.0), list(range(5)), cfg=cfg, run_dir=tmp_path
    )
    states = sub.wait(timeout_s=120)
    assert set(states.values()) == {"COMPLETED"}
    outs = sub.outcomes()
    assert [o.value[0] for o in outs] == list(range(5))
    assert max_overlap([(o.value[1], o.value[2]) for o in outs]) == 2  # throttled, and parallel


def test_same_functions_same_results_across_local_and_debug(tmp_path):
    results = {}
    for kind in ("local", "debug"):
        sub = map_array(examples.square, [1, 2, 3], cfg=ExecutorConfig(kind=kind), run_dir=tmp_path / kind)
        sub.wait(timeout_s=120)
        results[kind] = [o.value for o in sub.outcomes()]
    assert results["local"] == results["debug"] == [1, 4, 9]


def test_failed_item_is_reported_and_rerun_alone(tmp_path):
    cfg = ExecutorConfig(kind="local", array_parallelism=3)
    sub = map_array(
        functools.partial(examples.fail_on, bad=2), [1, 2, 3], cfg=cfg, run_dir=tmp_path, name="items"
    )
    sub.wait(timeout_s=120)
    outs = sub.outcomes()
    assert [o.ok for o in outs] == [True, False, True]
    assert "ValueError: item 2 is bad" in outs[1].error
    (again,) = control.rerun_failed(tmp_path)
    assert len(again.job_ids) == 1  # only the failed item
    again.wait(timeout_s=120)
    (o,) = again.outcomes()
    assert not o.ok and "item 2 is bad" in o.error  # same call, same (deterministic) failure
    names = [s.group.name for s in Submitted.load(tmp_path)]
    assert names == ["items", "items-rerun"]


def test_local_chain_stops_at_the_failed_link(tmp_path):
    links = [
        Link("ok", examples.square, (2,)),
        Link("bad", examples.fail_on, (1, 1)),
        Link("after", examples.square, (3,)),
    ]
    run = submit_chain(links, cfg=ExecutorConfig(kind="local"), run_dir=tmp_path)
    states = [r.state for r in run.wait(timeout_s=120)]
    assert states == ["COMPLETED", "FAILED", "CANCELLED"]
    assert run.failed_link() == "bad"


def test_local_cancel_is_reported_as_cancelled(tmp_path):
    sub = submit(examples.sleep_then, 60, cfg=ExecutorConfig(kind="local"), run_dir=tmp_path, name="sleeper")
    assert set(sub.states().values()) == {"RUNNING"}
    rows = control.cancel(tmp_path)
    assert [r.state for r in rows] == ["CANCELLED"]
    assert sub.wait(timeout_s=30) == {sub.job_ids[0]: "CANCELLED"}


def test_local_multitask_job_forms_a_process_group(tmp_path):
    cfg = ExecutorConfig(kind="local", tasks_per_node=2, time_min=5)
    sub = submit(examples.allreduce_probe, cfg=cfg, run_dir=tmp_path)
    sub.wait(timeout_s=180)
    (o,) = sub.outcomes()
    assert o.ok, o.error
    assert o.value["world_size"] == 2 and o.value["rank_sum"] == 1.0 and o.value["backend"] == "gloo"


def test_empty_array_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no items"):
        map_array(examples.square, [], cfg=ExecutorConfig(), run_dir=tmp_path)
