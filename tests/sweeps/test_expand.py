"""Spec → runs: grid and random expansion, config-hash ids (stable across processes), and every
bad spec reported before anything is written or submitted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cxr.errors import ConfigError, UserError
from jobs.registry import get
from sweeps.expand import base_config, expand, resolve, run_id
from sweeps.launch import launch, preview
from sweeps.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def spec_file(tmp_path: Path, **fields) -> Path:
    data = {"name": "t", "job": "toy", "out": str(tmp_path / "sweep"), **fields}
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def ids_in_subprocess(path: Path) -> list[list]:
    code = (
        "import json,sys; from sweeps.spec import load_spec; from sweeps.expand import expand; "
        "from jobs.registry import get; s=load_spec(sys.argv[1]); "
        "print(json.dumps([[r.id, r.params] for r in expand(s, get(s.job))]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(out.stdout)


def test_grid_is_the_product_times_seeds_in_a_fixed_order(tmp_path):
    spec = load_spec(spec_file(tmp_path, axes={"lr": [0.1, 0.2], "batch_size": [8, 16, 32]}, seeds=[0, 1]))
    runs = expand(spec, get("toy"))
    assert len(runs) == 12 and len({r.id for r in runs}) == 12
    assert [r.params for r in runs[:3]] == [
        {"lr": 0.1, "batch_size": 8, "seed": 0},
        {"lr": 0.1, "batch_size": 8, "seed": 1},
        {"lr": 0.1, "batch_size": 16, "seed": 0},
    ]
    assert runs[0].config["lr"] == 0.1 and runs[0].config["batch_size"] == 8 and runs[0].config["seed"] == 0


def test_ids_and_random_draws_are_the_same_in_another_process(tmp_path):
    axes = {"lr": {"loguniform": [1e-4, 1.0]}, "batch_size": {"int": [4, 64]}, "dim": {"choice": [4, 8]}}
    path = spec_file(tmp_path, mode="random", samples=5, seeds=[0, 1], axes=axes)
    spec = load_spec(path)
    here = [[r.id, r.params] for r in expand(spec, get("toy"))]
    assert here == ids_in_subprocess(path)
    for _, p in here:
        assert 1e-4 <= p["lr"] <= 1.0 and 4 <= p["batch_size"] <= 64 and p["dim"] in (4, 8)
    other = load_spec(path, ["sampler_seed=1"])
    assert [r.params for r in expand(other, get("toy"))] != [p for _, p in here]


def test_the_id_names_what_a_run_computes_not_where_or_how_it_runs(tmp_path):
    base = base_config(load_spec(spec_file(tmp_path, axes={"lr": [0.1]})), get("toy"))
    _, a = resolve(base, {"lr": 0.1}, "a")
    _, b = resolve(base, {"lr": 0.1, "out": "/elsewhere", "executor.time_min": 999}, "b")
    _, c = resolve(base, {"lr": 0.1, "epochs": 3}, "c")
    assert run_id("toy", a) == run_id("toy", b) != run_id("toy", c)
    assert run_id("toy", a) != run_id("sft-like", a)
    # an int where the config wants a float resolves to the same run as the float
    _, d = resolve(base, {"lr": 1}, "d")
    _, e = resolve(base, {"lr": 1.0}, "e")
    assert run_id("toy", d) == run_id("toy", e)


def test_repeated_draws_run_once(tmp_path):
    spec = load_spec(spec_file(tmp_path, mode="random", samples=20, axes={"lr": [0.1, 0.2]}))
    assert sorted(r.params["lr"] for r in expand(spec, get("toy"))) == [0.1, 0.2]


def test_the_fast_resolver_equals_omegaconf_for_a_real_stage(tmp_path):
    spec = load_spec(
        spec_file(
            tmp_path, job="sft", axes={"lr": [1e-5, 1], "lora.r": [4, 8], "precision": ["fp32", "bf16"]}
        )
    )
    base = base_config(spec, get("sft"))
    for r in expand(spec, get("sft")):
        assert resolve(base, r.params, "x")[1] == r.config


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"axes": {"lr": [0.1], "no_such_key": [1]}}, "no_such_key"),
        ({"axes": {"lr": [0.1, "fast"]}}, "lr=fast"),
        ({"axes": {"batch_size": [8, 0]}}, "batch_size=0"),  # the config's own range check
        ({"axes": {"lr": {"uniform": [0, 1]}}}, "needs mode random or bayes"),
        ({"mode": "random", "axes": {"lr": {"uniform": [1, 0]}}, "samples": 2}, "low < high"),
        ({"mode": "random", "axes": {"lr": {"normal": [0, 1]}}, "samples": 2}, "axis 'lr'"),
        ({"mode": "random", "axes": {"lr": [0.1]}}, "samples"),
        ({"mode": "bayes", "axes": {"lr": [0.1]}}, "metric.name"),
        ({"axes": {"executor.time_min": [5]}}, "belong to the sweep"),
        ({"job": "nope", "axes": {"lr": [0.1]}}, "unknown job 'nope'"),
        (
            {"mode": "bayes", "metric": {"name": "val_loss"}, "axes": {"batch_size": {"choice": [8, 0]}}},
            "axis batch_size=0",
        ),
        ({"overrides": ["epochs=zero"], "axes": {"lr": [0.1]}}, "epochs"),
    ],
)
def test_a_bad_spec_is_one_clear_error_and_nothing_is_written(tmp_path, fields, message):
    path = spec_file(tmp_path, **fields)
    with pytest.raises((ConfigError, UserError)) as e:
        launch(load_spec(path))
    assert message in str(e.value)
    assert "Traceback" not in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "sweep").exists()


def test_dry_run_prints_count_first_configs_and_the_array_script(tmp_path):
    spec = load_spec(
        spec_file(tmp_path, axes={"lr": [0.1, 0.2, 0.3]}, seeds=[0, 1]),
        ["executor.kind=slurm", "executor.array_parallelism=2", "executor.partition=cpu"],
    )
    text = preview(spec)
    assert text.startswith("sweep t: 6 run(s) of job toy (grid)")
    assert "lr=0.1 seed=0" in text and "… 3 more" in text
    assert "#SBATCH --array=0-5%2" in text and "#SBATCH --partition=cpu" in text
    assert not (tmp_path / "sweep").exists()


def test_the_cli_reports_a_bad_axis_in_one_line(cxr_bin, tmp_path):
    path = spec_file(tmp_path, axes={"lr": [0.1], "no_such_key": [1]})
    r = subprocess.run([cxr_bin, "sweep", "launch", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "no_such_key" in r.stderr and "Traceback" not in r.stderr
