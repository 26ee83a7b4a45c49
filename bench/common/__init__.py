"""What every benchmark shares (one copy each; see docs/benchmarks.md):

timing (interleaved rounds, medians), memory (peak memory), flops (the FLOP and byte
model), machine (machine info, device peaks), results (rows and ratios), report (CSV and
tables), plot (PNG), vllm_client + vllm_worker (the vLLM baseline), hf_export (checkpoints
for vLLM), traces (synthetic workloads), estimator (the progress estimator's options),
models (what the benchmarks load).
"""
