"""What every benchmark shares (one copy each; see docs/benchmarks.md):

timing (interleaved rounds, medians), memory (peak memory), flops (the FLOP and byte
model), machine (machine info, device peaks), results (rows and ratios), report (CSV and
tables), plot (PNG), traces (synthetic workloads), estimator (the progress estimator's
options), models (what the benchmarks load), load (spinning processes beside a run). The vLLM
baseline and its checkpoint exporter are in ``bench/baselines/``.
"""
