#!/usr/bin/env python
"""The headline benchmark: the whole MRT workload, stage by stage, each against its baselines.

    python -m bench.throughput                 # embedded default model(s), all stages
    python -m bench.throughput --quick         # tiny model, tiny workloads (CI smoke run)
    python -m bench.throughput --stage logprob --repeats 5 --device cuda
    python bench/throughput.py ...             # the same (runs itself as the module above)

Stages (each measured against its baselines in the same run, interleaved, medians):
  1 generation  trace generation: our Generator vs HF ``generate`` vs vLLM (when installed)
  2 score       progress estimation, score mode: fast vs naive (re-prefill every prefix)
  3 sample      progress estimation, sample mode: fast vs naive vs vLLM with prefix caching
  4 logprob     policy log-prob + loss + backward: fused selective log-prob vs
                ``log_softmax(x @ W.T).gather``, with peak memory (LM head alone, then the
                whole policy forward + backward)
  5 step        one whole MRT training step, and the share of its time each part takes
  6 update      the policy update, prefix-tree packed vs padded, with FLOP ratios and peak memory

A stage whose component (or baseline) is not installed says so in its row (status
``unavailable``) instead of failing the run. Workload sizes, with their FLOP and byte
counts, are in ``docs/benchmarks.md``; each row also carries the FLOPs and bytes it must
do and its time over the floor (the larger of FLOPs/peak and bytes/bandwidth).

Outputs go to ``--out`` (default ``runs/throughput/``): ``throughput.csv`` (one row per
stage and method, machine/versions/dtype/device on every row), ``throughput.png`` (bar
chart of the ratios) and ``throughput.md`` (the table as Markdown).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python bench/throughput.py`: bench/ is not importable from
    # there, so run as `python -m bench.throughput` with the checkout on PYTHONPATH (before torch loads)
    _root = str(Path(__file__).resolve().parent.parent)
    os.execve(sys.executable, [sys.executable, "-m", "bench.throughput", *sys.argv[1:]],
              dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (_root, os.environ.get("PYTHONPATH"))))))

import torch

from bench.baselines.vllm_client import start_vllm, vllm_python_or_reason
from bench.common import report
from bench.common.flops import ModelDims
from bench.common.load import busy_cores
from bench.common.machine import DevicePeaks, device_peaks, dtype_name, machine_info
from bench.common.models import RANDOM_MODELS, load
from bench.common.plot import plot_png
from bench.common.results import ERROR, Result
from bench.stages import STAGE_CASES, STAGE_FNS, STAGES, VLLM_STAGES
from bench.stages.base import WORKLOADS, Context, workload_for
from bench.stages.step import share_rows
from mrt_engine.models import resolve_dtype

STAGE_ALIASES = {str(i + 1): s for i, s in enumerate(STAGES)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, tiny workloads, 1 repeat")
    p.add_argument("--stage", action="append", default=None,
                   help=f"stage(s) to run, by name or number: {', '.join(STAGES)} (repeatable or comma-separated; default all)")
    p.add_argument("--model", action="append", default=None,
                   help="model(s): tiny, smollm2-135m, r1-mini / r1-1.5b-shapes / r1-7b-shapes (random init), or a "
                        "local checkpoint (default: smollm2-135m; on CUDA also r1-1.5b-shapes; --quick: tiny)")
    p.add_argument("--workload", default=None, choices=sorted(WORKLOADS),
                   help="workload sizes by name (default: quick with --quick, else cuda or cpu by device)")
    p.add_argument("--peaks", default=None, help="FLOP/s,bytes/s the floors are rated against, e.g. the measured "
                                                  "ceilings 790e12,4.3e12 (default: nominal for known GPUs, else measured)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="float32 / bfloat16 / float16 (default: fp32 on CPU, bf16 on CUDA)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 2, which keeps the no-argument run under 10 minutes on 2 CPU cores; --quick 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds before timing (default 0: a warm-up round costs a third more time; every timed call starts from empty prefix caches)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; --quick: 1, as OpenMP spin-waits on a busy shared CPU "
                        "make tiny ops 10-30x slower)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "runs" / "throughput"),
                   help="output folder (default runs/throughput/, git-ignored)")
    p.add_argument("--no-vllm", action="store_true", help="skip the vLLM baselines even when vLLM is installed")
    p.add_argument("--vllm-python", default=os.environ.get("MRT_VLLM_PYTHON"),
                   help="python of a virtualenv with vLLM (default: $MRT_VLLM_PYTHON, the repo's .venv-vllm from "
                        "`make vllm-venv`, this python)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--busy", type=int, default=0,
                   help="run N spinning processes beside the timed stages (the 'under load' rows: a second job on "
                        "the machine; default 0)")
    args = p.parse_args(argv)
    args.stages = _stages(p, args.stage)
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False; use --device cpu")
    args.dtype = resolve_dtype(args.dtype or ("bfloat16" if args.device.type == "cuda" else "float32"))
    if args.repeats is None:
        args.repeats = 1 if args.quick else 2
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is None and args.quick:
        args.threads = 1
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.busy < 0:
        p.error("--busy must be >= 0")
    if args.warmup is None:
        args.warmup = 0
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.model is None:
        args.model = ["tiny"] if args.quick else (["smollm2-135m", "r1-1.5b-shapes"] if args.device.type == "cuda"
                                                  else ["smollm2-135m"])
    return args


def _stages(p: argparse.ArgumentParser, given: list[str] | None) -> list[str]:
    stages = []
    for item in given or list(STAGES):
        for s in item.split(","):
            s = STAGE_ALIASES.get(s.strip(), s.strip())
            if s not in STAGES:
                p.error(f"--stage {s!r} is not one of {STAGES} (or 1-{len(STAGES)})")
            if s not in stages:
                stages.append(s)
    return stages


def vllm_for(args, name: str, model, tokenizer, out: Path):
    """(started vLLM worker or None, why not). Starting takes minutes: it runs while nothing is timed."""
    python, why = vllm_python_or_reason(
        model_name=name, head_dim=ModelDims.from_config(model.config).head_dim, device_type=args.device.type,
        skip=args.no_vllm, random_init=name in RANDOM_MODELS, vllm_python=args.vllm_python)
    if python is None:
        return None, why
    return start_vllm(python, name=name, model=model, tokenizer=tokenizer, device_type=args.device.type,
                      dtype=dtype_name(args.dtype), threads=args.threads, log_dir=out)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    workload = workload_for(quick=args.quick, device=args.device, name=args.workload)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    shares: dict[str, dict[str, float]] = {}
    phase_s: dict[str, dict[str, float]] = {}
    steps = sum(STAGE_CASES[s] for s in args.stages) * (args.repeats + args.warmup) * len(args.model)
    bar = report.progress_bar(steps, "throughput", enabled=not args.no_progress)
    t_start = time.perf_counter()
    try:
        for name in args.model:
            bar.set_description(f"loading {name}")
            model, tok = load(name, args.device, args.dtype)
            vllm, vllm_reason = None, ""
            if any(s in VLLM_STAGES for s in args.stages):
                bar.set_description(f"starting vLLM for {name}")
                vllm, vllm_reason = vllm_for(args, name, model, tok, out)
            ctx = Context(model_name=name, model=model, tokenizer=tok, device=args.device, dtype=args.dtype,
                          workload=workload, repeats=args.repeats, warmup=args.warmup, bar=bar, vllm=vllm,
                          vllm_reason=vllm_reason)
            try:
                with busy_cores(args.busy):  # vLLM is started before: only the timed stages run under load
                    for stage in args.stages:
                        results += run_stage(ctx, stage)
            finally:
                if vllm is not None:
                    vllm.close()
            shares.update(ctx.step_shares)
            phase_s.update(ctx.step_phase_s)
            del ctx, model
    finally:
        bar.close()
    peaks = DevicePeaks(*map(float, args.peaks.split(",")), "given") if args.peaks else device_peaks(args.device,
                                                                                                       args.dtype)
    meta = machine_info(args.device, args.dtype, extra={
        "models": " ".join(args.model), "busy": args.busy, "repeats": args.repeats, "warmup": args.warmup, "quick": args.quick,
        "peaks": f"{peaks.flops_per_s:.3g} FLOP/s, {peaks.bytes_per_s:.3g} B/s ({peaks.source})",
        "command": "python bench/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)})
    results += share_rows(shares, phase_s)
    write_outputs(out, results, meta, peaks, shares, args, time.perf_counter() - t_start)
    return 0


def run_stage(ctx: Context, stage: str) -> list[Result]:
    done_before = getattr(ctx.bar, "n", 0)
    try:
        rows = STAGE_FNS[stage](ctx)
    except Exception as exc:  # noqa: BLE001 - report the stage, keep the others
        ctx.bar.write(f"stage {stage} failed:\n{traceback.format_exc()}")
        rows = [Result(stage=ctx.label(stage), method="all", role="ours", status=ERROR,
                       reason=f"{type(exc).__name__}: {exc}"[:200])]
    # Keep the bar honest when a stage measured fewer cases than planned (unavailable parts).
    planned = STAGE_CASES[stage] * (ctx.repeats + ctx.warmup)
    if hasattr(ctx.bar, "n") and ctx.bar.n - done_before < planned:
        ctx.bar.update(planned - (ctx.bar.n - done_before))
    return rows


def write_outputs(out: Path, results, meta, peaks, shares, args, elapsed: float) -> None:
    timed = [r for r in results if r.role != "share"]
    csv_path = report.write_csv(out / "throughput.csv", results, meta, peaks)
    png_path = plot_png(out / "throughput.png", timed, shares=next(iter(shares.values()), None),
                        title=f"mrt_engine throughput - {meta['machine']}, {meta['device']} {meta['dtype']}")
    share_lines = [f"Share of one MRT step ({m}, engine backend): " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in sh.items())
                   for m, sh in shares.items()]
    (out / "throughput.md").write_text(
        f"Command: `{meta['command']}`  \nDate (UTC): {meta['date_utc']}  \nMachine: {meta['machine']}; "
        f"accelerator: {meta['accelerator']}; torch {meta['torch']}, transformers {meta['transformers']}; "
        f"{meta['device']} {meta['dtype']}; " + (f"under load: {args.busy} spinning process(es) beside it; " if args.busy else "")
        + f"{args.repeats} repeats + {args.warmup} warm-up, interleaved, medians; "
        f"floor from {meta['peaks']}\n\n{report.format_markdown(timed, peaks)}\n" + "".join("\n" + s for s in share_lines)
        + "\n")
    print()
    print(report.format_table(timed, peaks))
    for line in share_lines:
        print(line[0].lower() + line[1:])
    print(f"\n{meta['machine']} | {meta['device']} {meta['dtype']} | torch {meta['torch']} | "
          f"{args.repeats} repeats + {args.warmup} warm-up, interleaved, medians | {elapsed:.0f} s")
    print(f"wrote {csv_path}, {png_path}, {out / 'throughput.md'}")


if __name__ == "__main__":
    sys.exit(main())
