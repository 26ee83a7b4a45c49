#!/usr/bin/env bash
# Wheels the GPU machine lacks, for bench/gpu_full.sh: math-verify (grading) and what it needs
# beyond sympy. Pure-Python wheels, downloaded here into .whl/ (git-ignored); carry it to the
# device (carry: [".whl"]) and gpu_full.sh installs them into /tmp/site before anything runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
  --platform any -d .whl math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2
ls -l .whl
