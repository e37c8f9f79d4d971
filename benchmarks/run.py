"""Run every benchmark in this folder (what `make bench` does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    "parse.py",
    "generate.py",
    "preprocess.py",
    "train_overhead.py",
    "grpo_step.py",
    "score.py",
    "sweep_submit.py",
]

if __name__ == "__main__":
    failed = [b for b in BENCHES if subprocess.run([sys.executable, str(HERE / b)]).returncode != 0]
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
