"""The sweep folder: everything a later shell (status, resume, collect) needs is in it.

DIR/spec.yaml                the spec as resolved at launch
DIR/sweep.json               job, mode, git SHA, executor, runs [{id, index, params}], resumes
DIR/runs/<id>/config.yaml    the run's resolved job config (what its task loads)
DIR/runs/<id>/status.json    the task's own record: state, attempts, error, host, Slurm ids
DIR/runs/<id>/meta.json, metrics.jsonl, checkpoints …   written by the job itself
DIR/jobs.json, DIR/jobs/     submissions through jobs/ (one array per launch or resume)
DIR/optuna.journal           bayes mode: the study (journal file: safe on NFS)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from cxr.config.runinfo import git_state, write_atomic
from cxr.errors import UserError

SWEEP = "sweep.json"


def read(folder: str | Path) -> dict[str, Any]:
    p = Path(folder) / SWEEP
    if not p.is_file():
        raise UserError(f"{folder} is not a sweep folder (no {SWEEP}); `cxr sweep launch SPEC` makes one")
    try:
        return json.loads(p.read_text())
    except ValueError:
        raise UserError(f"{p} is not valid JSON") from None


def write(folder: Path, data: dict[str, Any]) -> None:
    write_atomic(folder / SWEEP, json.dumps(data, indent=1, default=str) + "\n")


def create(folder: Path, spec_data: dict, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runs").mkdir(exist_ok=True)
    write_atomic(folder / "spec.yaml", yaml.safe_dump(spec_data, sort_keys=False))
    write(folder, {**record, "created": time.time(), "git": git_state(), "resumes": []})


def dump_yaml(data: dict) -> str:
    """safe_dump through libyaml when present (10× faster: a 1,000-run sweep writes 1,000 configs)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False)


def run_dir(folder: str | Path, rid: str) -> Path:
    return Path(folder) / "runs" / rid


def write_config(folder: Path, rid: str, config: dict, params: dict) -> Path:
    d = run_dir(folder, rid)
    d.mkdir(parents=True, exist_ok=True)
    config = {**config, "out": str(d.resolve())}
    write_atomic(d / "config.yaml", dump_yaml(config))
    write_atomic(d / "params.json", json.dumps(params, default=str) + "\n")
    return d


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def update_status(d: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into runs/<id>/status.json (atomically; one task owns a run at a time)."""
    st = read_json(d / "status.json")
    st.update(fields)
    write_atomic(d / "status.json", json.dumps(st, indent=1, default=str) + "\n")
    return st


def run_ids(folder: str | Path, record: dict | None = None) -> list[str]:
    """The sweep's runs: listed at launch (grid/random), or the folders trials made (bayes)."""
    record = record or read(folder)
    if record.get("runs"):
        return [r["id"] for r in record["runs"]]
    runs = Path(folder) / "runs"
    dirs = [d for d in runs.iterdir() if (d / "config.yaml").is_file()] if runs.is_dir() else []
    return [
        d.name for d in sorted(dirs, key=lambda d: (read_json(d / "status.json").get("trial", 1e9), d.name))
    ]


def pid_host() -> dict[str, Any]:
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid()}
