"""What a sweep submits to Slurm, pinned (sbatch mocked by submitit's helper; the real-Slurm test is
in test_sweep.py): one array with the %N throttle, split past MaxArraySize into arrays chained with
afterany, and the --dry-run script is the one submitted.
Regenerate after an intended change: CXR_UPDATE_GOLDEN=1 pytest tests/sweeps/test_golden.py"""

from __future__ import annotations

import yaml
from submitit.slurm.test_slurm import mocked_slurm

from sweeps.launch import launch, preview
from sweeps.spec import load_spec
from tests.jobs.test_golden_sbatch import GOLDEN, check, normalise, submitted_scripts


def test_a_sweep_is_one_throttled_array_split_past_max_array_size(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.jobs.test_golden_sbatch.GOLDEN", GOLDEN.parents[1] / "sweeps" / "golden")
    out = tmp_path / "sweep"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "golden",
                "job": "toy",
                "out": str(out),
                "axes": {"lr": [0.01, 0.02, 0.03], "batch_size": [16, 32]},
                "executor": {
                    "kind": "slurm",
                    "array_parallelism": 2,
                    "max_array_size": 4,
                    "partition": "cpu",
                    "time_min": 30,
                    "job_name": "sweep-golden",
                },
            }
        )
    )
    spec = load_spec(spec_file)
    dry = normalise(preview(spec), out)
    with mocked_slurm():
        sub = launch(spec).submission
    assert sub.job_ids == ["12_0", "12_1", "12_2", "12_3", "13_0", "13_1"]
    first, second = submitted_scripts(out)
    check("sweep_0", first)
    check("sweep_1", second)
    assert "#SBATCH --array=0-3%2" in first and "dependency" not in first
    assert "#SBATCH --array=0-1%2" in second and "#SBATCH --dependency=afterany:12" in second
    # the dry run shows the whole sweep as one array (what a site without the split would get)
    assert "#SBATCH --array=0-5%2" in dry and "#SBATCH --partition=cpu" in dry
    assert dry.split("sbatch script")[1].split("\n", 1)[1].replace("0-5%2", "0-3%2").strip() == first.strip()
