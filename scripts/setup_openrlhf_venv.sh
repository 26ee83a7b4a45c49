#!/usr/bin/env bash
# Build (or check) the separate virtualenv that runs the real OpenRLHF beside mrt_engine.
#
# Why a separate venv, and why --no-deps: openrlhf 0.11.2 pins transformers==5.15.0 and
# requires flash-attn and deepspeed, which need CUDA to build. Its reward-function loader
# (openrlhf.utils.agent.SingleTurnAgentExecutor) needs none of them, so OpenRLHF goes in
# without its dependencies and we add only what that loader imports (torch, transformers
# at OpenRLHF's pin, aiohttp; sympy and pylatexenc for openrlhf.utils) plus mrt_engine's own.
# tests/test_integration_openrlhf_real.py runs tests/openrlhf_venv_checks.py with this
# venv's python and PYTHONPATH at the checkout (mrt_engine is not installed here).
#
# Usage: scripts/setup_openrlhf_venv.sh [VENV_DIR]  (default: $OPENRLHF_VENV or <repo>/.venv-openrlhf)
# Idempotent: when the venv already imports the pinned OpenRLHF loader, it exits at once.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-${OPENRLHF_VENV:-$REPO/.venv-openrlhf}}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
OPENRLHF_SPEC="${OPENRLHF_SPEC:-openrlhf==0.11.2}"
OPENRLHF_VERSION="${OPENRLHF_SPEC#openrlhf==}"

ready() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$OPENRLHF_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
assert md.version("openrlhf") == sys.argv[1], md.version("openrlhf")
import torch, transformers, math_verify, pytest  # noqa: F401  what the checks need
from openrlhf.utils.agent import SingleTurnAgentExecutor  # noqa: F401  the reward_func loader
PY
}

if ready; then
    echo "OpenRLHF venv ready: $VENV"
    exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# The CPU build of torch first: a bare torch requirement would otherwise pull CUDA wheels.
"$VENV/bin/python" -c "import torch" 2>/dev/null || $PIP install -q "$TORCH_SPEC"
$PIP install -q --no-deps "$OPENRLHF_SPEC"
# transformers at OpenRLHF's own pin; aiohttp for openrlhf.utils.agent; sympy + pylatexenc for
# openrlhf.utils (math_utils); the rest is mrt_engine's (grading, safetensors, config) and pytest.
$PIP install -q "transformers==5.15.0" aiohttp sympy pylatexenc "math-verify>=0.7" safetensors pyyaml tqdm \
    numpy pytest "$TORCH_SPEC"

ready || { echo "OpenRLHF venv at $VENV was built but does not import OpenRLHF $OPENRLHF_VERSION's loader" >&2; exit 1; }
echo "OpenRLHF venv built at $VENV in $(( $(date +%s) - start )) s"
