"""`cxr pipeline`: stages as one chain (afterok on the Slurm testbed, in order locally), a failed stage
stops the chain, and a rerun skips what is done and continues."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from cxr.config import load_config
from cxr.config.pipeline import PipelineConfig
from jobs.pipeline import marker, pipeline
from jobs.records import load_groups

TINY = [
    "synth.studies=16",
    "preprocess.size=128",
    "preprocess.studies_per_shard=8",
    "build_data.image.max_pixels=12544",
    "sft.max_steps=2",
    "sft.batch_size=4",
    "sft.save_steps=1000",
    "sft.report_to=[]",
    "sft.image.max_pixels=12544",
]


def write_config(tmp_path: Path, workdir: Path) -> Path:
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml.safe_dump({"workdir": str(workdir), "stages": ["preprocess", "build_data", "sft"]}))
    return p


def canaries_outside_private(workdir: Path) -> list[str]:
    """Files outside archive/ and any private/ folder that carry a synthetic archive's PHI canary."""
    hits = []
    for f in workdir.rglob("*"):
        rel = f.relative_to(workdir).parts
        if not f.is_file() or rel[0] == "archive" or "private" in rel:
            continue
        if b"CANARY-PHI" in f.read_bytes():
            hits.append(str(f.relative_to(workdir)))
    return hits


def test_local_pipeline_stops_at_a_failed_stage_and_a_rerun_continues(cxr_bin, tiny_model, tmp_path):
    workdir = tmp_path / "work"
    spec = write_config(tmp_path, workdir)
    r = subprocess.run(
        [cxr_bin, "pipeline", str(spec), *TINY, f"base_model={tmp_path / 'no-model'}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "stage sft failed" in r.stderr and "rerun the same command" in r.stderr
    assert marker(load_config(PipelineConfig, spec), "build_data").is_file()
    assert not marker(load_config(PipelineConfig, spec), "sft").is_file()

    r = subprocess.run(
        [cxr_bin, "pipeline", str(spec), *TINY, f"base_model={tiny_model}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = " ".join(r.stdout.split())
    assert "preprocess: done before" in out and "build_data: done before" in out and "sft: completed" in out
    done = json.loads(marker(load_config(PipelineConfig, spec), "sft").read_text())
    assert Path(done["result"]).name == "export" and (Path(done["result"]) / "config.json").is_file()
    assert canaries_outside_private(workdir) == []
    private = workdir / "pipeline" / "private"
    assert private.stat().st_mode & 0o777 == 0o700 and (private / "jobs.json").is_file()


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_pipeline_is_a_chain_of_afterok_jobs(tiny_model, slurm_run_dir, tmp_path):
    workdir = slurm_run_dir / "work"
    cfg = load_config(
        PipelineConfig,
        write_config(tmp_path, workdir),
        [
            *TINY,
            f"base_model={tiny_model}",
            "executor.kind=slurm",
            "preprocess.executor.mem_gb=2",
            "sft.executor.mem_gb=4",
            "sft.executor.cpus_per_task=2",
        ],
    )
    run, status = pipeline(cfg, log=lambda s: None)
    assert set(status.values()) == {"submitted"}
    groups = load_groups(workdir / "pipeline" / "private")
    assert [g.name for g in groups] == ["preprocess", "build_data", "sft"]
    assert groups[0].dependency is None
    for parent, child in zip(groups, groups[1:], strict=False):
        assert child.dependency == f"afterok:{parent.job_ids[0]}"
    reports = run.wait(timeout_s=900)
    assert [r.state for r in reports] == ["COMPLETED"] * 3, reports
    assert all(marker(cfg, s).is_file() for s in ("preprocess", "build_data", "sft"))
    again, status = pipeline(cfg, log=lambda s: None)
    assert again is None and set(status.values()) == {"done before"}
