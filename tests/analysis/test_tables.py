"""The openers and `cxr tables`: each folder kind opens as the table its producer promises; a sweep
opens the same with or without `cxr sweep collect`; SQL runs over the registered views."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

import analysis
from analysis import tables
from cxr.errors import UserError
from tests.analysis.tables_fixtures import CANARY, env


def test_a_sweep_opens_the_same_before_and_after_collect(toy_sweep, tmp_path):
    collected = pd.read_parquet(toy_sweep / "results.parquet")
    bare = shutil.copytree(toy_sweep, tmp_path / "bare")
    for name in ("results.parquet", "results.csv", "summary.parquet", "summary.csv"):
        (bare / name).unlink()
    rebuilt = tables.open_sweep(bare)
    pd.testing.assert_frame_equal(rebuilt, collected, check_dtype=False)
    pd.testing.assert_frame_equal(
        tables.open_sweep_summary(bare), pd.read_parquet(toy_sweep / "summary.parquet"), check_dtype=False
    )
    assert tables.varying_keys(rebuilt) == ["cfg.lr"] and tables.seed_column(rebuilt) == "cfg.seed"


def test_runs_open_from_a_folder_a_glob_or_one_run_and_a_relogged_step_counts_once(toy_sweep, tmp_path):
    runs = tables.open_runs(toy_sweep / "runs")
    assert len(runs) == 12 and (runs["status"] == "ok").all()
    assert len(tables.open_runs(f"{toy_sweep}/runs/*")) == 12 and tables.kind(f"{toy_sweep}/runs/*") == "runs"
    one = shutil.copytree(toy_sweep / "runs" / runs["run"][0], tmp_path / "one")
    with (one / "metrics.jsonl").open("a") as f:  # a resumed run logs its last step again
        f.write(json.dumps({"step": 10, "val_loss": 123.0}) + "\n" + '{"step": 11, "val_lo')  # + a cut line
    assert tables.kind(one) == "run"
    r = tables.open_runs(one)
    assert len(r) == 1 and r["final.val_loss"][0] == 123.0
    h = tables.history(one)
    assert not h.duplicated(["step", "key"]).any() and h["step"].max() == 10


def test_scores_eval_arena_and_shards_open_and_are_detected(scores, eval_dir, arena_dir, report_shards):
    s = tables.open_scores(scores)
    assert len(s) == len(pd.read_parquet(scores)) > 0 and {"image_id", "task", "boxes_original"} <= set(
        s.columns
    )
    assert tables.score_run(scores)["config"]["shards"] == str(report_shards)
    assert list(tables.open_eval(eval_dir).columns[:4]) == ["metric", "task", "slice", "slice_value"]
    assert tables.open_arena(arena_dir)["model"].tolist() == ["sft", "grpo", "tiny"]
    assert tables.open_arena(arena_dir, "winrate").loc["grpo", "tiny"] == 0.9
    images = tables.open_shards(report_shards)
    assert "patient_id" not in images and "accession_id" not in images and len(images) > 0
    for path, kind in [
        (scores, "scores"),
        (eval_dir, "eval"),
        (arena_dir, "arena"),
        (report_shards, "shards"),
    ]:
        assert tables.kind(path) == kind
        assert len(analysis.open(path)) > 0


def test_a_folder_of_no_known_kind_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a run, sweep, score, eval, arena or shards folder"):
        tables.open(tmp_path)
    with pytest.raises(UserError, match="no such folder"):
        tables.open(tmp_path / "missing")


def test_connect_registers_views_and_stacks_two_folders_of_one_kind(scores, eval_dir, arena_dir, tmp_path):
    second = shutil.copytree(scores, tmp_path / "other-model")
    con = analysis.connect(scores, second, eval_dir, arena_dir)
    n = len(pd.read_parquet(scores))
    per = dict(con.sql("SELECT source, count(*) FROM scores GROUP BY source").fetchall())
    assert per == {scores.name: n, "other-model": n}
    top = con.sql("SELECT model FROM ratings ORDER BY strength DESC LIMIT 1").fetchall()[0][0]
    assert top == "grpo"
    f1 = con.sql("SELECT count(*) FROM metrics WHERE metric LIKE 'chexpert_rule.f1.%' AND slice = 'all'")
    assert f1.fetchall()[0][0] == 5


def cxr(*args):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)], env=env(), capture_output=True, text=True
    )


def test_cxr_tables_prints_the_head_runs_sql_and_writes_csv(toy_sweep, eval_dir, report_shards, tmp_path):
    r = cxr("tables", toy_sweep, "-n", "3")
    assert r.returncode == 0, r.stderr
    assert "12 rows" in r.stdout and "first 3" in r.stdout and "(sweep)" in r.stdout
    out = tmp_path / "lr.csv"
    sql = (
        'SELECT "cfg.lr" AS lr, avg("final.val_loss") AS loss, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1'
    )
    r = cxr("tables", toy_sweep, "--sql", sql, "--csv", out)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out)
    assert df["lr"].tolist() == [0.01, 0.03, 0.1, 0.3] and (df["n"] == 3).all()
    expect = pd.read_parquet(toy_sweep / "results.parquet").groupby("cfg.lr")["final.val_loss"].mean()
    assert df["loss"].round(9).tolist() == expect.round(9).tolist()
    r = cxr("tables", eval_dir, "--sql", "SELECT nope FROM metrics")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "views: metrics" in r.stderr
    two = sorted((toy_sweep / "runs").iterdir())[:2]  # `cxr tables runs/*` unquoted: the shell expands it
    r = cxr("tables", *two, "--csv", tmp_path / "two.csv")
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(tmp_path / "two.csv")["run"].tolist() == [p.name for p in two]
    r = cxr("tables", toy_sweep, eval_dir)
    assert r.returncode == 2 and "different kinds" in r.stderr
    r = cxr("tables", report_shards)
    assert r.returncode == 0 and CANARY not in r.stdout


def test_analysis_reads_folders_without_importing_the_rooms_that_write_them():
    code = (
        "import sys, analysis, analysis.report, analysis.review, analysis.plots; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sweeps', 'jobs', 'preprocessing', 'cli'}))"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
