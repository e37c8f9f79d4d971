"""Config system: defaults ← YAML ← dotlist, one-line errors naming the key, secrets, run records."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from cxr.config import STAGES, GenerateConfig, RunRecord, load_config, resolve_secret, secret_field, to_yaml
from cxr.config.schema import BackendName
from cxr.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_precedence_defaults_then_yaml_then_dotlist(tmp_path):
    p = write(tmp_path, "backend: vllm\nsampling:\n  temperature: 0.2\n  max_new_tokens: 7\n")
    cfg = load_config(GenerateConfig, p, ["sampling.temperature=0.9"])
    assert isinstance(cfg, GenerateConfig)
    assert cfg.backend is BackendName.vllm
    assert cfg.sampling.temperature == 0.9  # dotlist beats YAML
    assert cfg.sampling.max_new_tokens == 7  # YAML beats default
    assert cfg.sampling.top_p == 1.0  # default


@pytest.mark.parametrize(
    "yaml_text, overrides, expected",
    [
        ("sampling:\n  temprature: 1\n", [], r"c\.yaml: unknown key 'sampling\.temprature'"),
        ("nope: 1\n", [], r"c\.yaml: unknown key 'nope'"),
        ("sampling:\n  temperature: hot\n", [], r"c\.yaml: bad value for 'sampling\.temperature'"),
        (
            "",
            ["sampling.temprature=1"],
            r"override 'sampling\.temprature=1': unknown key 'sampling\.temprature'",
        ),
        ("", ["batch_size=many"], r"override 'batch_size=many': bad value for 'batch_size'"),
        ("", ["backend=tpu"], r"bad value for 'backend'.*hf, vllm"),
        ("", ["temperature"], r"override 'temperature': expected key=value"),
        ("", ["sampling.top_p=0"], r"sampling\.top_p must be in \(0, 1\]"),
        ("- a\n- b\n", [], r"c\.yaml: the top level must be a mapping"),
        ("a: [1\n", [], r"c\.yaml: not valid YAML \(line 2"),
    ],
)
def test_errors_are_one_line_and_name_the_key(tmp_path, yaml_text, overrides, expected):
    p = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError, match=expected) as e:
        load_config(GenerateConfig, p, overrides)
    assert "\n" not in str(e.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file .*missing.yaml does not exist"):
        load_config(GenerateConfig, tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", sorted(STAGES))
def test_shipped_yaml_recipes_load(name):
    """configs/<stage>.yaml must stay in step with its dataclass."""
    path = REPO / "configs" / f"{name}.yaml"
    assert path.is_file(), f"configs/{name}.yaml is missing"
    cfg = load_config(STAGES[name], path)
    assert isinstance(cfg, STAGES[name])
    header = path.read_text().splitlines()[0]
    assert header.startswith("# Launch:") and "cxr" in header, "recipes start with their launch command"


# -- secrets --------------------------------------------------------------------------------------
@dataclass
class _Deid:
    salt: str = "x"
    key: str = secret_field()


@dataclass
class _WithSecret:
    name: str = "run"
    deid: _Deid = field(default_factory=_Deid)


def test_secret_values_are_refused_and_references_resolved(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="'deid.key' is a secret") as e:
        load_config(_WithSecret, overrides=["deid.key=hunter2-CANARY"])
    assert "hunter2" not in str(e.value)

    monkeypatch.setenv("CXR_TEST_KEY", "s3cret-from-env")
    cfg = load_config(_WithSecret, overrides=["deid.key=env:CXR_TEST_KEY"])
    assert resolve_secret(cfg.deid.key, "deid.key") == "s3cret-from-env"
    keyfile = write(tmp_path, "s3cret-from-file\n", "key.txt")
    cfg2 = load_config(_WithSecret, overrides=[f"deid.key=file:{keyfile}"])
    assert resolve_secret(cfg2.deid.key, "deid.key") == "s3cret-from-file"

    dumped = to_yaml(cfg) + to_yaml(cfg2)
    assert "s3cret" not in dumped and "env:CXR_TEST_KEY" in dumped

    with pytest.raises(ConfigError, match="'deid.key': environment variable CXR_NOPE is not set"):
        resolve_secret("env:CXR_NOPE", "deid.key")
    with pytest.raises(ConfigError, match="secret file .* does not exist"):
        resolve_secret(f"file:{tmp_path}/none", "deid.key")


def test_run_record_writes_config_and_meta(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    cfg = load_config(GenerateConfig, overrides=["sampling.temperature=0.1"])
    run = tmp_path / "run"
    with RunRecord(run, cfg, kind="generate") as meta:
        assert json.loads((run / "meta.json").read_text())["status"] == "running"
        meta["rows"] = 3
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["end"] >= meta["start"] and meta["rows"] == 3
    assert meta["slurm"] == {"job_id": "4242", "array_task_id": "3", "restart_count": "1"}
    assert meta["packages"]["torch"].startswith("2.13") and meta["python"].startswith("3.")
    assert set(meta["git"]) == {"sha", "dirty"}
    back = load_config(GenerateConfig, run / "config.yaml")  # the dump is itself a valid config
    assert back == cfg
    assert yaml.safe_load((run / "config.yaml").read_text())["backend"] == "hf"


def test_run_record_marks_failure_without_the_message(tmp_path):
    with pytest.raises(RuntimeError), RunRecord(tmp_path / "r", GenerateConfig()):
        raise RuntimeError("/data/DOE^JOHN/1.dcm")
    meta = (tmp_path / "r" / "meta.json").read_text()
    assert json.loads(meta)["status"] == "failed" and "DOE^JOHN" not in meta
