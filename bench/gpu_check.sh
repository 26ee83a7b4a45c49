#!/usr/bin/env bash
# One prepared GPU check (single GPU, under 6 minutes, installs nothing):
#   1. builds mrt_engine._C from the checkout (optional: the Python planner is the fallback),
#   2. runs every CUDA-marked test with compiled Triton kernels (TRITON_INTERPRET=0),
#   3. runs bench/bench_kernels.py (python -m bench.bench_kernels) on CUDA (reference vs Triton vs plain torch; time, TFLOP/s or
#      GB/s, % of H200 roofline, peak memory, max error vs the fp32 reference),
# and prints a short table last. Full results go to $OUT when set, else runs/gpu_check.
# Uses the torch / triton / transformers already installed; pytest is used when present.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-runs/gpu_check}"
mkdir -p "$RESULTS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TRITON_INTERPRET=0  # tests/conftest.py defaults it to 1 (CPU interpreter); compiled kernels here
PY="${PYTHON:-python3}"
log() { echo "[gpu_check $(date +%H:%M:%S)] $*"; }
start=$(date +%s)

"$PY" - > "$RESULTS/env.txt" 2>&1 <<'PYEOF'
import sys
import torch
import triton
print(f"python {sys.version.split()[0]}  torch {torch.__version__}  triton {triton.__version__}  cuda {torch.version.cuda}")
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NONE")
PYEOF
cat "$RESULTS/env.txt"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to torch; nothing to check" >&2
  exit 2
fi

log "building mrt_engine._C (log: $RESULTS/build.log)"
timeout 90 "$PY" setup.py build_ext --inplace > "$RESULTS/build.log" 2>&1
build_rc=$?
native=$("$PY" -c "from mrt_engine._native import native; print('C++' if native is not None else 'Python fallback')" 2>&1 | tail -n 1)

log "pytest -m cuda (log: $RESULTS/pytest_cuda.log)"
if "$PY" -c "import pytest" 2>/dev/null; then
  # Only the files that hold CUDA tests: the others may import dev extras (datasets, trl) that
  # the GPU machine does not have, and a collection error there says nothing about CUDA.
  cuda_files=$(grep -l "mark.cuda" tests/test_*.py)
  timeout 90 "$PY" -m pytest -q -ra -m cuda -p no:cacheprovider --continue-on-collection-errors \
    --junitxml="$RESULTS/pytest_cuda.xml" $cuda_files > "$RESULTS/pytest_cuda.log" 2>&1
  test_rc=$?
  test_line=$(grep -E "passed|failed|error|skipped|no tests" "$RESULTS/pytest_cuda.log" | tail -n 1)
else
  test_rc=-1
  test_line="pytest not installed: skipped (bench/bench_kernels.py still checks max_err against the reference)"
fi

log "bench/bench_kernels.py --device cuda (log: $RESULTS/bench.log)"
timeout 170 "$PY" -m bench.bench_kernels --device cuda --out "$RESULTS" > "$RESULTS/bench.log" 2>&1
bench_rc=$?

echo
echo "================ gpu_check summary ($(( $(date +%s) - start )) s) ================"
head -n 2 "$RESULTS/env.txt"
echo "planner: $native (build rc $build_rc)"
echo "pytest -m cuda: rc $test_rc | $test_line"
echo "bench rc $bench_rc | full results: $RESULTS/kernels.csv, $RESULTS/bench.log"
if [ -s "$RESULTS/kernels_summary.txt" ]; then
  cut -c1-200 "$RESULTS/kernels_summary.txt"
else
  tail -n 15 "$RESULTS/bench.log"
fi
[ "$test_rc" -le 0 ] && [ "$bench_rc" -eq 0 ]
