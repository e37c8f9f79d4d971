"""Client time to launch a 1,000-run sweep as one array, against 1,000 single submitit jobs.

Submission is faked at the process boundary: a stand-in ``sbatch`` on PATH answers "Submitted batch
job N" (what the real one prints), so everything the client does — expanding and validating 1,000
configs, writing the sweep folder, pickling the calls, writing sbatch files, spawning sbatch — is
measured, and nothing reaches a cluster. Baseline, same run: the same 1,000 configs submitted one
``SlurmExecutor.submit`` each (what a loop over configs does). Goal: the sweep ≤ 2 s.

    .venv/bin/python benchmarks/sweep_submit.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report  # noqa: E402

FAKE_SBATCH = """#!/bin/sh
n=$(cat "$0.count" 2>/dev/null || echo 100); echo $((n + 1)) > "$0.count"
echo "Submitted batch job $n"
"""


def fake_slurm(tmp: Path) -> None:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(0o755)
    os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"


def spec_for(tmp: Path, runs: int):
    from sweeps.spec import load_spec

    lrs = [round(1e-6 * (i + 1), 9) for i in range(runs // 10)]
    p = tmp / "spec.yaml"
    p.write_text(
        "name: bench\njob: sft\n"
        f"out: {tmp / 'sweep'}\n"
        "overrides: [data=/data/cxr, shards=/data/shards, max_steps=1000]\n"
        f"axes:\n  lr: {lrs}\n  batch_size: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
        "executor: {kind: slurm, array_parallelism: 32, max_array_size: 1001, partition: gpu, time_min: 240}\n"
    )
    return load_spec(p)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cxr-bench-sweep-"))
    try:
        fake_slurm(tmp)
        import submitit

        from jobs.registry import get
        from sweeps.expand import expand
        from sweeps.launch import launch

        spec = spec_for(tmp, args.runs)
        kind = get("sft")
        expand(spec, kind)  # warm imports and caches, as a second command in a session would be

        t0 = time.perf_counter()
        runs = expand(spec, kind)
        t_expand = time.perf_counter() - t0
        t_launch = float("inf")
        for i in range(3):  # best of 3, each into a fresh folder
            spec = replace(spec, out=str(tmp / f"sweep{i}"))
            t0 = time.perf_counter()
            out = launch(spec)
            t_launch = min(t_launch, time.perf_counter() - t0)
        assert out.runs == len(runs) == args.runs and len(out.submission.job_ids) == args.runs

        from cxr.config.load import load_config
        from cxr.config.schema import SftConfig
        from jobs.sft import sft_task

        configs = [load_config(SftConfig, overrides=[f"{k}={v}" for k, v in r.params.items()]) for r in runs]
        ex = submitit.SlurmExecutor(folder=tmp / "singles")
        ex.update_parameters(partition="gpu", time=240)
        t0 = time.perf_counter()
        jobs = [ex.submit(sft_task, c) for c in configs]
        t_single = time.perf_counter() - t0
        assert len({j.job_id for j in jobs}) == args.runs
        # submitit spaces single submissions 0.2 s apart to spare slurmctld; without that pause the
        # loop's own work (a pickle, an sbatch file and an sbatch process per job) remains
        ex = submitit.SlurmExecutor(folder=tmp / "singles-nopause")
        ex.update_parameters(partition="gpu", time=240)
        ex._throttling = 0.0
        t0 = time.perf_counter()
        for c in configs:
            ex.submit(sft_task, c)
        t_nopause = time.perf_counter() - t0

        rows = [
            {"what": f"{args.runs} single submitit jobs (baseline)", "seconds": t_single, "ratio": 1.0},
            {
                "what": "  same without submitit's 0.2 s pause",
                "seconds": t_nopause,
                "ratio": t_nopause / t_single,
            },
            {
                "what": f"cxr sweep launch ({args.runs} runs, one array)",
                "seconds": t_launch,
                "ratio": t_launch / t_single,
            },
            {"what": "  of which expand + validate", "seconds": t_expand, "ratio": t_expand / t_single},
        ]
        verdict = "met" if t_launch <= 2.0 else "NOT met"
        report(
            "sweep_submit",
            rows,
            note=f"goal: sweep launch ≤ 2 s for {args.runs} runs — {verdict} ({t_launch:.2f} s); "
            f"{t_nopause / t_launch:.0f}× faster than single jobs without submitit's pause, "
            f"{t_single / t_launch:.0f}× with it; sbatch faked on PATH",
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
