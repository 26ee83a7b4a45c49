#!/usr/bin/env bash
# The whole MRT workload at the paper's model size on one GPU, in one prepared run (issue 27;
# docs/benchmarks.md, "GPU"). bench/gpu_check.sh stays the short check (CUDA tests + kernels).
#
#   bash bench/gpu_full.sh                  # on the GPU machine: results in $OUT (else runs/gpu_full)
#   GPU_FULL_DRY=1 bash bench/gpu_full.sh   # the same logic on CPU at tiny sizes (tests/test_gpu_full_dry.py)
#
# Before the device call, here: `bash scripts/gpu_wheels.sh` (math-verify, which grading needs and
# the GPU machine lacks) and carry [".whl"]; installs nothing else, builds nothing, needs no network.
# Stages in order, each under its own time budget (timeout), each packed into $OUT before the next:
#   env        versions, GPU, planner, math-verify; measured ceilings (bf16 8192^3 GEMM, 1 GiB copy)
#   floors     r1-1.5b-shapes on the meta device: parameters, FLOPs per token, each stage's floors
#   preflight  the whole quick bench at r1-mini on the device (every stage, every Triton compile):
#              a failure stops the run here, within ~90 s, so a fix can rerun on the warm machine
#              (GPU_FULL_CONTINUE=1 runs on regardless)
#   <stage>    every stage of bench/throughput.py at r1-1.5b-shapes, bf16, workload gpu-full, against
#              the baselines the machine has (HF generate with SDPA, naive re-prefill, padded update),
#              floors rated against the measured ceilings
#   kernels    bench/bench_kernels.py at the 1.5B shapes (LM head, scoring, cascade decode)
#   profile    host against device time of each stage's fast path (torch.profiler)
# $OUT ends with at most 8 files: summary.txt (also printed last), throughput.csv (all stages' rows),
# floors.txt, env.txt, gpu_full.log, kernels_summary.txt and results.tar.gz (every log and output).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DRY="${GPU_FULL_DRY:-0}"
OUT_DIR="${OUT:-runs/gpu_full}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_full.XXXXXX")"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT_DIR/gpu_full.log") 2>&1

# Budgets in seconds, in run order; they must sum under 540 (checked by the test and the summary).
BUDGETS="env:25,floors:20,preflight:90,generation:50,score:40,sample:50,logprob:30,update:45,step:70,kernels:45,profile:40"
budget() { local kv; for kv in ${BUDGETS//,/ }; do [ "${kv%%:*}" = "$1" ] && { echo "${kv#*:}"; return; }; done; echo 0; }

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then  # carried wheels (scripts/gpu_wheels.sh)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_full_site \
    .whl/*.whl && export PYTHONPATH="/tmp/gpu_full_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ "$DRY" = 1 ]; then
  # the preflight as on the GPU (r1-mini); the stages at the tiny model (the preflight has run r1-mini's)
  DEVICE=cpu DTYPE=float32 MODEL=tiny WORKLOAD=quick KSHAPES=r1-mini ROUNDS="--repeats 1 --warmup 0"
  SLOW_ROUNDS="$ROUNDS" KREPEATS=1 CEIL_ARGS="--n 512 --copy-mib 16 --repeats 3"
else
  DEVICE=cuda DTYPE=bfloat16 MODEL=r1-1.5b-shapes WORKLOAD=gpu-full KSHAPES=r1-1.5b ROUNDS="--repeats 2 --warmup 1"
  SLOW_ROUNDS="--repeats 1 --warmup 1" KREPEATS=10 CEIL_ARGS=""
  export TRITON_INTERPRET=0  # compiled kernels (tests/conftest.py defaults it to 1)
fi
START=$(date +%s)
finish() {  # close our end of the log's tee so it flushes the summary before the script returns
  [ "${GPU_FULL_KEEP:-0}" = 1 ] || rm -rf "$WORK"  # all of it is in $OUT/results.tar.gz
  exec >&- 2>&-
  sleep 0.5
  exit "$1"
}
log() { echo "[gpu_full $(date +%H:%M:%S) +$(( $(date +%s) - START ))s] $*"; }

pack() {  # everything so far into $OUT: merged CSV, summary, the tarball of $WORK
  "$PY" -m bench.tools.gpu_full_report --work "$WORK" --out "$OUT_DIR" --budgets "$BUDGETS" \
    --started "$START" --now "$(date +%s)" "$@"
  local rc=$?
  [ -f "$WORK/env.txt" ] && cp "$WORK/env.txt" "$OUT_DIR/env.txt"
  [ -f "$WORK/floors.log" ] && cp "$WORK/floors.log" "$OUT_DIR/floors.txt"
  [ -f "$WORK/kernels/kernels_summary.txt" ] && cp "$WORK/kernels/kernels_summary.txt" "$OUT_DIR/kernels_summary.txt"
  tar -czf "$OUT_DIR/results.tar.gz.part" -C "$WORK" . && mv "$OUT_DIR/results.tar.gz.part" "$OUT_DIR/results.tar.gz"
  return $rc
}

run() {  # run NAME COMMAND...: under the stage's budget, output in $WORK/NAME.log, then pack
  local name=$1 b; shift
  b=$(budget "$name")
  log "$name (budget ${b} s): $*"
  local t0=$(date +%s)
  timeout --kill-after=10 "$b" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$b" >> "$WORK/stages.tsv"
  tail -n 3 "$WORK/$name.log" | cut -c1-240
  log "$name: rc $rc in $(( $(date +%s) - t0 )) s"
  pack
  return $rc
}

# -- env and ceilings ---------------------------------------------------------------------------
run env "$PY" - "$WORK" "$DEVICE" $CEIL_ARGS <<'PYEOF'
import importlib.util, json, platform, subprocess, sys
from pathlib import Path
import torch, transformers
work, device, ceil_args = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
try:
    import triton
    tv = triton.__version__
except ImportError:
    tv = "-"
from bench.stages import STAGES
from mrt_engine._native import native
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
lines = [f"python {platform.python_version()}  torch {torch.__version__}  triton {tv}  transformers "
         f"{transformers.__version__}  cuda {torch.version.cuda}",
         f"gpu: {gpu}; device for the run: {device}; planner: {'C++' if native is not None else 'Python fallback'}; "
         f"math-verify: {'yes' if importlib.util.find_spec('math_verify') else 'MISSING (bash scripts/gpu_wheels.sh, carry .whl)'}",
         "stages: " + " ".join(STAGES)]
if device == "cuda":
    free, total = torch.cuda.mem_get_info()
    lines.append(f"gpu memory: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB")
(work / "env.txt").write_text("\n".join(lines) + "\n")
(work / "stages.list").write_text(" ".join(STAGES))
print("\n".join(lines))
from bench.tools.ceilings import main
main(["--device", device, "--json", str(work / "ceilings.json"), *ceil_args])
PYEOF
env_rc=$?
if [ "$env_rc" -ne 0 ] || [ ! -s "$WORK/stages.list" ]; then
  log "env failed (rc $env_rc): see $WORK/env.log"; pack --final; finish 2
fi
PEAKS=$("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"{d['flops_per_s']:.4g},{d['bytes_per_s']:.4g}\")" \
  "$WORK/ceilings.json" 2>/dev/null || echo "790e12,4.3e12")
STAGES=$(cat "$WORK/stages.list")

# -- floors on the meta device --------------------------------------------------------------------
run floors "$PY" -m bench.tools.floors --model r1-1.5b-shapes --workload gpu-full --dtype bfloat16 \
  --peaks "$PEAKS" --json "$WORK/floors.json"

# -- preflight: every stage at r1-mini on the device, fails fast --------------------------------
run preflight "$PY" -m bench.throughput --quick --device "$DEVICE" --dtype "$DTYPE" --model r1-mini --no-vllm \
  --no-progress --out "$WORK/preflight"
pre_rc=$?
pre_errors=$(grep -c ",error," "$WORK/preflight/throughput.csv" 2>/dev/null || true)
if { [ "$pre_rc" -ne 0 ] || [ "${pre_errors:-0}" -gt 0 ]; } && [ "${GPU_FULL_CONTINUE:-0}" != 1 ]; then
  log "preflight failed (rc $pre_rc, ${pre_errors:-0} error rows): stopping; fix and rerun (GPU_FULL_CONTINUE=1 runs on)"
  pack --final
  finish 2
fi

# -- every stage at the 1.5B shapes ----------------------------------------------------------------
for stage in $STAGES; do
  if [ "$(budget "$stage")" = 0 ]; then
    log "$stage has no budget in BUDGETS: skipped (give it one, keeping the sum under 540 s)"; continue
  fi
  rounds=$ROUNDS
  case $stage in sample|step) rounds=$SLOW_ROUNDS;; esac  # baselines of minutes: one timed round
  run "$stage" "$PY" -m bench.throughput --stage "$stage" --device "$DEVICE" --dtype "$DTYPE" --model "$MODEL" \
    --workload "$WORKLOAD" $rounds --peaks "$PEAKS" --no-vllm --no-progress --out "$WORK/throughput_$stage"
done

# -- kernels at the 1.5B shapes, then host against device -----------------------------------------
run kernels "$PY" -m bench.bench_kernels --device "$DEVICE" --shapes "$KSHAPES" --repeats "$KREPEATS" \
  --peaks "$PEAKS" --out "$WORK/kernels"
run profile "$PY" -m bench.tools.profile_stages --device "$DEVICE" --model "$MODEL" --workload "$WORKLOAD" \
  --rows 8 --threads 1

log "done in $(( $(date +%s) - START )) s; $(ls "$OUT_DIR" | wc -l) files in $OUT_DIR"
echo
pack --final  # exit status: 0 when every stage ran and no row says error
finish $?
