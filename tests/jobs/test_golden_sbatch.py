"""What the Slurm layer submits, pinned as golden sbatch files (sbatch mocked by submitit's own
test helper). The real-Slurm tests in test_slurm.py run the same paths against the testbed.
Regenerate after an intended change: CXR_UPDATE_GOLDEN=1 pytest tests/jobs/test_golden_sbatch.py"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from pathlib import Path

import pytest
from submitit.slurm.test_slurm import mocked_slurm

from cxr.config.schema import ExecutorConfig
from cxr.errors import ConfigError
from jobs import examples
from jobs.executor import sbatch_script
from jobs.submission import map_array, submit

GOLDEN = Path(__file__).parent / "golden"


def normalise(text: str, folder: Path) -> str:
    return text.replace(str(folder), "{FOLDER}").replace(shlex.quote(sys.executable), "{PYTHON}")


def submitted_scripts(folder: Path) -> list[str]:
    files = sorted(folder.rglob("*_submission.sh"), key=lambda p: p.name)
    return [normalise(p.read_text(), folder) for p in files]


def check(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.sbatch"
    if os.environ.get("CXR_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.is_file(), f"{path} is missing (CXR_UPDATE_GOLDEN=1 writes it)"
    assert text == path.read_text(), f"{name}: the sbatch differs from {path}"


FULL = ExecutorConfig(
    kind="slurm",
    job_name="sft",
    partition="gpu",
    account="radiology",
    qos="normal",
    time_min=240,
    nodes=1,
    tasks_per_node=4,
    gpus_per_node=4,
    cpus_per_task=8,
    mem_gb=200,
    signal_delay_s=300,
    setup=["module load cuda/12.4", "source ~/miniforge3/bin/activate cxr-harness"],
    additional={"constraint": "a100", "mail_type": "END", "exclusive": True},
)


def test_single_job_with_setup_signal_and_extra_options(tmp_path):
    with mocked_slurm():
        submit(examples.square, 3, cfg=FULL, run_dir=tmp_path)
    (script,) = submitted_scripts(tmp_path)
    check("single_full", script)
    assert "#SBATCH --signal=USR2@300" in script and "#SBATCH --constraint=a100" in script
    assert "#SBATCH --mail-type=END" in script and "#SBATCH --exclusive" in script
    assert script.index("module load cuda/12.4") < script.index("srun")


def test_array_with_throttle(tmp_path):
    cfg = ExecutorConfig(kind="slurm", array_parallelism=2, max_array_size=100, time_min=30)
    with mocked_slurm():
        sub = map_array(examples.square, list(range(6)), cfg=cfg, run_dir=tmp_path, name="squares")
    assert sub.job_ids == [f"12_{i}" for i in range(6)]
    (script,) = submitted_scripts(tmp_path)
    check("array_throttle", script)
    assert "#SBATCH --array=0-5%2" in script


def test_dependency(tmp_path):
    cfg = ExecutorConfig(kind="slurm", time_min=10)
    with mocked_slurm():
        submit(examples.square, 2, cfg=cfg, run_dir=tmp_path, dependency="afterok:41")
    (script,) = submitted_scripts(tmp_path)
    check("dependency", script)
    assert "#SBATCH --dependency=afterok:41" in script


def test_nodes_by_tasks(tmp_path):
    cfg = ExecutorConfig(
        kind="slurm", nodes=2, tasks_per_node=4, gpus_per_node=4, cpus_per_task=10, time_min=120
    )
    with mocked_slurm():
        submit(examples.allreduce_probe, cfg=cfg, run_dir=tmp_path, name="probe")
    (script,) = submitted_scripts(tmp_path)
    check("nodes_by_tasks", script)
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=4" in script


def test_split_arrays_chain_with_afterany(tmp_path):
    cfg = ExecutorConfig(kind="slurm", array_parallelism=2, max_array_size=4, time_min=30)
    with mocked_slurm():
        sub = map_array(
            functools.partial(examples.fail_on, bad=-1), list(range(6)), cfg=cfg, run_dir=tmp_path
        )
    assert sub.job_ids == ["12_0", "12_1", "12_2", "12_3", "13_0", "13_1"]
    first, second = submitted_scripts(tmp_path)
    check("split_0", first)
    check("split_1", second)
    assert "#SBATCH --array=0-3%2" in first and "dependency" not in first
    assert "#SBATCH --array=0-1%2" in second and "#SBATCH --dependency=afterany:12" in second


def test_dry_run_is_what_gets_submitted(tmp_path):
    with mocked_slurm():
        sub = submit(examples.square, 3, cfg=FULL, run_dir=tmp_path)
    (script,) = submitted_scripts(tmp_path)
    preview = normalise(sbatch_script(FULL, sub.group.folder), tmp_path)
    assert preview == script


def test_a_signal_that_would_come_before_the_step_starts_is_refused(tmp_path):
    # the default 120 s delay on a 2-minute job: Slurm would signal at its first check, and drop it
    with pytest.raises(ConfigError, match=r"signal_delay_s=120 with executor\.time_min=2.*<= 60"):
        sbatch_script(ExecutorConfig(kind="slurm", time_min=2), tmp_path)
    assert "--signal=USR2@60" in sbatch_script(
        ExecutorConfig(kind="slurm", time_min=2, signal_delay_s=60), tmp_path
    )
    assert "--signal=USR2@0" in sbatch_script(
        ExecutorConfig(kind="slurm", time_min=1, signal_delay_s=0), tmp_path
    )
