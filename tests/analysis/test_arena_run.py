"""`cxr arena` end to end with the tiny model as judge (hf backend, a few cases), and its one-line errors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from analysis.arena.run import case_counts, combine, tables
from tests.analysis.conftest import write_scores
from tests.analysis.test_notebooks import pngs
from tests.analysis.test_notebooks import run as run_notebook

JUDGE = ["--backend", "hf", "judge.sampling.max_new_tokens=8", "judge.image.max_pixels=12544", "bootstrap=50"]


def cxr(cxr_bin, *args):
    return subprocess.run([cxr_bin, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def folders(arena_shards, tmp_path_factory):
    root = tmp_path_factory.mktemp("scores")
    return [
        write_scores(root / "sft", arena_shards, ["No effusion.", "Clear lungs.", "Cardiomegaly."]),
        write_scores(root / "grpo", arena_shards, ["Small left effusion.", "Clear.", "Enlarged heart."]),
        write_scores(root / "cold", arena_shards, ["", "Normal.", "Heart size normal.", "extra"]),
    ]


def test_cxr_arena_end_to_end_with_the_tiny_judge(cxr_bin, tiny_model, folders, arena_shards, tmp_path):
    out = tmp_path / "arena"
    sft, grpo, cold = folders
    r = cxr(cxr_bin, "arena", f"base={sft}", str(grpo), str(cold), "--judge", tiny_model, str(out), *JUDGE)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Report Arena" in r.stdout
    j = pd.read_parquet(out / "judgments.parquet")
    # 3 pairs × 3 common cases (cold's 4th image is not in the others) × 2 orders
    assert len(j) == 3 * 3 * 2 and set(j["order"]) == {"ab", "ba"}
    assert set(j["model_a"]) | set(j["model_b"]) == {"base", "grpo", "cold"}
    assert set(j["parsed"]) <= {"A", "B", "tie", "invalid"} and j["raw"].map(type).eq(str).all()
    swapped = j[j["order"] == "ba"]
    assert (swapped["shown_a"] == swapped["model_b"]).all() and (
        swapped["shown_b"] == swapped["model_a"]
    ).all()
    assert len(pd.read_parquet(out / "outcomes.parquet")) == 3 * 3
    ratings = pd.read_parquet(out / "ratings.parquet")
    assert list(ratings.columns) == ["model", "strength", "ci_low", "ci_high", "wins", "ties", "losses", "n"]
    assert list(ratings["model"]) == ["base", "grpo", "cold"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 3 and summary["judgments"] == 18 and summary["reference"] == "base"
    assert summary["invalid_rate"] == pytest.approx((j["parsed"] == "invalid").mean())
    assert (
        ratings["n"].sum() == 2 * summary["valid_case_pairs"]
    )  # each valid case-pair counts for both models
    if summary["valid_case_pairs"]:  # the random tiny judge may never give a readable verdict
        assert ratings.loc[0, "strength"] == 0.0
    winrate = pd.read_parquet(out / "winrate.parquet")
    assert list(winrate.index) == list(winrate.columns) == ["base", "grpo", "cold"]
    for name in ("judgments", "ratings", "winrate", "outcomes"):
        assert (out / f"{name}.csv").is_file()
    assert (out / "config.yaml").is_file() and json.loads((out / "meta.json").read_text())["status"] == "ok"
    # the arena notebook on this real arena (its own test uses a folder with known ratings)
    plots = run_notebook("arena.ipynb", tmp_path, CXR_ARENA=out)
    assert pngs(plots / "arena") == {"ratings.png", "winrate.png"}


def test_outcome_tables_from_known_judgments():
    """The same path the end-to-end run takes, on verdicts we choose: combine → counts → records."""
    rows = []
    for case, (v_ab, v_ba) in {"c1": ("A", "B"), "c2": ("A", "A"), "c3": ("invalid", "B")}.items():
        for order, v in (("ab", v_ab), ("ba", v_ba)):
            rows.append(
                dict(case=case, image_id=case, task="report", model_a="x", model_b="y", order=order, parsed=v)
            )
    outcomes = combine(pd.DataFrame(rows))
    assert dict(zip(outcomes["case"], outcomes["outcome"], strict=True)) == {
        "c1": "x",
        "c2": "tie",
        "c3": "invalid",
    }
    counts = case_counts(outcomes, ["x", "y"], ["c1", "c2", "c3"])
    assert counts.sum(axis=0)[0, 1].tolist() == [1, 0, 1]
    record, winrate = tables(counts, ["x", "y"])
    assert record.to_dict("list") == {
        "model": ["x", "y"],
        "wins": [1, 0],
        "ties": [1, 1],
        "losses": [0, 1],
        "n": [2, 2],
    }
    assert winrate.loc["x", "y"] == 0.75 and winrate.loc["y", "x"] == 0.25


@pytest.mark.parametrize(
    "args, message",
    [
        (["{a}", "OUT"], "need at least two score folders and OUT"),
        (["{a}", "/nonexistent/scores", "OUT"], "score folder /nonexistent/scores does not exist"),
        (["{a}", "{empty}", "OUT"], "is not a `cxr score` output folder"),
        (["{a}", "{other}", "OUT"], "no common cases"),
        (["{a}", "{other_prompt}", "OUT"], "different prompts"),
        (["x={a}", "x={b}", "OUT"], "share the name 'x'"),
        (["{a}", "{b}", "OUT", "shards={empty}"], "not a shards folder"),
        (["{a}", "{b}", "OUT", "shards={other_shards}"], "3 case image(s) are not in it"),
        (["{a}", "{b}", "OUT", "max_cases=-1"], "max_cases, bootstrap and ridge must be >= 0"),
    ],
)
def test_user_errors_are_one_line(cxr_bin, tiny_model, folders, arena_shards, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {
        "a": folders[0],
        "b": folders[1],
        "empty": tmp_path / "empty",
        "other": write_scores(tmp_path / "other", arena_shards, ["x"], task="view"),
        "other_prompt": write_scores(tmp_path / "op", arena_shards, ["x"], pid="report-0000000000"),
    }
    paths["other_shards"] = tmp_path / "other_shards"
    paths["other_shards"].mkdir()
    pd.DataFrame({"image_id": ["i-unrelated"]}).to_parquet(paths["other_shards"] / "index.parquet")
    argv = [a.format(**paths).replace("OUT", str(tmp_path / "out")) for a in args]
    r = cxr(cxr_bin, "arena", *argv, "--judge", tiny_model)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists(), "nothing is written for bad input"


def test_a_missing_judge_model_is_named(cxr_bin, folders, tmp_path):
    r = cxr(
        cxr_bin,
        "arena",
        str(folders[0]),
        str(folders[1]),
        "--judge",
        "/nonexistent/judge",
        str(tmp_path / "o"),
    )
    assert r.returncode == 2 and "judge.model.path='/nonexistent/judge': no model folder" in r.stderr


def test_help_has_an_example(cxr_bin):
    r = cxr(cxr_bin, "arena", "--help")
    assert r.returncode == 0 and "Example: cxr arena" in " ".join(r.stdout.split())


def test_ratings_from_simulated_cases_rank_and_bracket_the_truth():
    from analysis.arena.bradley_terry import simulate_davidson
    from analysis.arena.run import ratings
    from cxr.config import load_config
    from cxr.config.schema import ArenaConfig

    truth = np.array([0.0, 1.0, -1.0])
    counts = simulate_davidson(truth, 0.5, n_cases=400, seed=2)
    rated, fit = ratings(
        counts, ["ref", "good", "bad"], load_config(ArenaConfig, overrides=["bootstrap=200"])
    )
    assert list(rated.sort_values("strength")["model"]) == ["bad", "ref", "good"]
    assert (rated["ci_low"] <= truth).all() and (truth <= rated["ci_high"]).all()
    assert (rated["n"] == 2 * 400).all() and (
        rated["wins"] + rated["ties"] + rated["losses"] == rated["n"]
    ).all()
    assert fit["converged"] and 0.3 < fit["tie"] < 0.8


def test_a_real_cxr_score_folder_against_another_with_a_case_sample(
    tiny_model, arena_shards, folders, tmp_path
):
    """The folder `cxr score` writes is what the arena reads (not only the synthetic ones above)."""
    from analysis.arena import run_arena
    from cxr.config import load_config
    from cxr.config.schema import ArenaConfig, ScoreConfig
    from jobs.score import score

    scored = score(
        load_config(
            ScoreConfig,
            overrides=[
                f"shards={arena_shards}",
                f"model.path={tiny_model}",
                f"out={tmp_path / 'real'}",
                "backend=hf",
                "sampling.temperature=0",
                "sampling.max_new_tokens=16",
                "image.max_pixels=12544",
                "executor.kind=debug",
            ],
        ),
        log=lambda s: None,
    )
    cfg = load_config(
        ArenaConfig,
        overrides=[
            f"scores=[{scored},{folders[0]}]",
            "names=[tiny,sft]",
            f"out={tmp_path / 'arena'}",
            f"judge.model.path={tiny_model}",
            "judge.backend=hf",
            "judge.sampling.max_new_tokens=8",
            "judge.image.max_pixels=12544",
            "max_cases=2",
            "bootstrap=20",
        ],
    )
    out = run_arena(cfg, log=lambda s: None)
    j = pd.read_parquet(out / "judgments.parquet")
    assert len(j) == 2 * 2 and j["case"].nunique() == 2 and set(j["model_a"]) == {"tiny"}
    assert set(j["image_id"]) < set(pd.read_parquet(folders[0])["image_id"])
    assert (out / "ratings.parquet").is_file() and (out / "summary.json").is_file()


@pytest.mark.vllm
def test_the_judge_through_vllm_cpu(cxr_bin, tiny_model, folders, tmp_path):
    out = tmp_path / "arena"
    vllm = ["dtype=float32", "max_model_len=2048", "enforce_eager=true", "max_num_seqs=8", "in_process=true"]
    r = cxr(
        cxr_bin,
        "arena",
        str(folders[0]),
        str(folders[1]),
        "--judge",
        tiny_model,
        str(out),
        "--backend",
        "vllm",
        "max_cases=1",
        "judge.sampling.max_new_tokens=8",
        "judge.image.max_pixels=12544",
        *(f"judge.vllm.{kv}" for kv in vllm),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    j = pd.read_parquet(out / "judgments.parquet")
    assert len(j) == 2 and set(j["order"]) == {"ab", "ba"} and j["raw"].str.len().gt(0).all()
    assert json.loads((out / "meta.json").read_text())["status"] == "ok"


class Crash(Exception):
    pass


def test_a_killed_arena_resumes_from_its_last_finished_chunk(tiny_model, folders, tmp_path, monkeypatch):
    """The judge dies during the third chunk; the rerun asks only what was not answered, and the
    result equals an uninterrupted run (a greedy judge answers the same text the same way)."""
    from analysis.arena import judge as judge_mod
    from analysis.arena import run_arena
    from cxr.config import load_config
    from cxr.config.schema import ArenaConfig

    def cfg(out):
        listed = ",".join(f'"{f}"' for f in folders)
        return load_config(
            ArenaConfig,
            overrides=[
                f"scores=[{listed}]",
                f"out={out}",
                f"judge.model.path={tiny_model}",
                "judge.backend=hf",
                "judge.batch_size=4",
                "judge.sampling.max_new_tokens=8",
                "judge.image.max_pixels=12544",
                "chunk=4",
                "bootstrap=0",
            ],
        )

    real = judge_mod.make_backend
    asked: list[int] = []

    def counting(crash_at: int | None):
        def make(gen_cfg):
            backend = real(gen_cfg)
            generate = backend.generate

            def gen(reqs):
                if crash_at is not None and len(asked) == crash_at:
                    raise Crash
                asked.append(len(reqs))
                return generate(reqs)

            backend.generate = gen
            return backend

        return make

    out = tmp_path / "arena"
    monkeypatch.setattr(judge_mod, "make_backend", counting(crash_at=2))
    with pytest.raises(Crash):
        run_arena(cfg(out), log=lambda s: None)
    assert asked == [4, 4] and not (out / "judgments.parquet").exists()
    logs: list[str] = []
    monkeypatch.setattr(judge_mod, "make_backend", counting(crash_at=None))
    run_arena(cfg(out), log=logs.append)
    assert asked == [4, 4, 4, 4, 2]  # 18 calls: the two finished chunks were not asked again
    assert any("8/18 judgments kept from an earlier run" in s for s in logs)
    resumed = pd.read_parquet(out / "judgments.parquet")
    run_arena(cfg(tmp_path / "fresh"), log=lambda s: None)
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(tmp_path / "fresh" / "judgments.parquet"))
    assert json.loads((out / "meta.json").read_text())["status"] == "ok"
