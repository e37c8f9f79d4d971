"""The `cxr` command as users run it: a subprocess, exit codes, stderr."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

COMMANDS = [
    ["model", "tiny"],
    ["config", "show"],
    ["generate"],
    ["demo"],
    ["synth"],
    ["preprocess"],
    ["ingest"],
    ["build-data"],
    ["jobs", "status"],
    ["jobs", "cancel"],
    ["jobs", "requeue"],
    ["jobs", "rerun"],
    ["jobs", "probe"],
    ["score"],
    ["train", "sft"],
    ["train", "grpo"],
    ["sweep", "launch"],
    ["sweep", "status"],
    ["sweep", "resume"],
    ["sweep", "collect"],
    ["pipeline"],
    ["arena"],
    ["tables"],
    ["report"],
]


def run(cxr_bin, *args, cwd=None):
    return subprocess.run([cxr_bin, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_help_lists_commands(cxr_bin):
    r = run(cxr_bin, "--help")
    assert r.returncode == 0
    for name in (
        "generate",
        "demo",
        "model",
        "config",
        "synth",
        "preprocess",
        "build-data",
        "jobs",
        "sweep",
        "pipeline",
        "arena",
        "tables",
        "report",
    ):
        assert name in r.stdout


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(cxr_bin, cmd):
    r = run(cxr_bin, *cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert "Example: cxr " + cmd[0] in " ".join(r.stdout.split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["config", "show", "generate", "sampling.temprature=1"], "unknown key 'sampling.temprature'"),
        (["config", "show", "nostage"], "unknown stage 'nostage'"),
        (
            ["config", "show", "generate", "-c", "/nonexistent/x.yaml"],
            "config file /nonexistent/x.yaml does not exist",
        ),
        (
            ["generate", "-i", "/nonexistent/img.png", "-m", "/nonexistent/model"],
            "model folder /nonexistent/model does not exist",
        ),
    ],
)
def test_user_errors_are_one_line_without_traceback(cxr_bin, args, message):
    r = run(cxr_bin, *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_debug_flag_shows_the_traceback(cxr_bin):
    r = run(cxr_bin, "--debug", "config", "show", "generate", "nokey=1")
    assert r.returncode != 0 and "Traceback" in r.stderr and "ConfigError" in r.stderr


def test_missing_image_is_named(cxr_bin, tiny_model, tmp_path):
    r = run(cxr_bin, "generate", "-i", str(tmp_path / "none.png"), "-m", tiny_model)
    assert r.returncode == 2 and "none.png does not exist" in r.stderr
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    r = run(cxr_bin, "generate", "-i", str(bad), "-m", tiny_model)
    assert r.returncode == 2 and "bad.png cannot be read" in r.stderr


def test_config_show_prints_resolved_yaml(cxr_bin):
    r = run(cxr_bin, "config", "show", "generate", "backend=vllm", "sampling.temperature=0")
    assert r.returncode == 0
    assert "backend: vllm" in r.stdout and "temperature: 0.0" in r.stdout


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_model_tiny_is_deterministic_for_a_seed(cxr_bin, tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        r = run(cxr_bin, "model", "tiny", str(tmp_path / name), "--seed", seed)
        assert r.returncode == 0, r.stderr
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert a == b
    assert a["model.safetensors"] != c["model.safetensors"]


@pytest.mark.vllm
def test_demo_prints_both_backends_and_writes_a_run_folder(cxr_bin, tmp_path):
    import json

    import pandas as pd

    repo = Path(__file__).resolve().parents[2]
    r = run(
        cxr_bin,
        "demo",
        "--quick",
        "-c",
        str(repo / "configs" / "demo-quick.yaml"),
        "--workdir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = " ".join(r.stdout.split())
    assert "hf" in out and "vllm" in out and "format_ok" in out
    assert "greedy token ids identical across backends: yes" in out
    rows = pd.read_parquet(tmp_path / "run" / "generations.parquet")
    assert list(rows["backend"]) == ["hf", "vllm"]
    assert {"reasoning", "steps", "boxes", "answer", "format_ok", "raw"} <= set(rows.columns)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["kind"] == "demo"
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_generate_writes_rows_and_a_run_folder(cxr_bin, tiny_model, tmp_path):
    import json

    import pandas as pd

    from cxr.data.synthetic import synthetic_cxr

    img = tmp_path / "DOE^JOHN-chest.png"  # a PHI-like file name must stay out of meta.json
    synthetic_cxr(200, 240).save(img)
    run_dir = tmp_path / "run"
    r = run(
        cxr_bin,
        "generate",
        "-m",
        tiny_model,
        "-i",
        str(img),
        "-i",
        str(img),
        "--run-dir",
        str(run_dir),
        "-o",
        str(tmp_path / "rows.jsonl"),
        "sampling.max_new_tokens=8",
        "sampling.temperature=0",
    )
    assert r.returncode == 0, r.stderr
    rows = pd.read_parquet(run_dir / "generations.parquet")
    assert len(rows) == 2 and rows["num_tokens"].between(1, 8).all()
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 2
    meta = (run_dir / "meta.json").read_text()
    assert json.loads(meta)["command"] == ["cxr", "generate"] and "DOE^JOHN" not in meta
