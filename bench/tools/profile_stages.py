"""Where the time goes: one call of our side of a benchmark stage under ``torch.profiler``.

    python -m bench.tools.profile_stages                        # generation, score, sample, logprob
    python -m bench.tools.profile_stages --stage sample --rows 25
    python -m bench.tools.profile_stages --device cuda --model r1-1.5b-shapes --workload gpu-full --rows 10

Same model and workloads as ``bench/throughput.py`` (SmolLM2-135M, fp32, the CPU default
sizes unless told); one warm-up call, then one profiled call per stage. Prints the top ops by
self CPU time and the share of the profiled wall time they cover; the remainder is Python and
dispatch overhead between ops. On CUDA it also records device time and prints host against
device: a stage whose device is busy for a small share of the wall time is bound by the host
(launches, syncs, Python), not by its kernels. Profile first, optimise second (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import time

import torch

from bench.common.estimator import estimator_options
from bench.common.models import load
from bench.common.traces import PROBLEMS, chat_prompt_ids, progress_inputs
from bench.stages.base import WORKLOADS, reset_prefix_cache
from mrt_engine.engine import Generator, SamplingParams
from mrt_engine.ops import selective_log_prob
from mrt_engine.progress import ProgressEstimator

STAGES = ("generation", "score", "sample", "logprob")


def _generation(model, tok, w):
    prompts = [chat_prompt_ids(tok, PROBLEMS[i % len(PROBLEMS)][0]) for i in range(w.gen_num_prompts)]
    gen = Generator(model, tok)
    params = SamplingParams(n=w.gen_n, max_tokens=w.gen_max_tokens, temperature=0.7, seed=0, ignore_eos=True)

    def call():
        reset_prefix_cache(gen)  # as the benchmark does: every timed call starts cold
        gen.generate(prompts, params)
    return call


def _progress(mode):
    def make(model, tok, w):
        if mode == "score":
            est = ProgressEstimator(model, tok, **estimator_options("score", "fast"))
            data = progress_inputs(tok, num_traces=w.num_traces, trace_tokens=w.trace_tokens,
                                   num_episodes=w.num_episodes)
        else:
            est = ProgressEstimator(model, tok, **estimator_options(
                "sample", "fast", num_branches=w.num_branches, max_answer_tokens=w.max_answer_tokens))
            data = progress_inputs(tok, num_traces=w.num_traces, trace_tokens=w.sample_trace_tokens,
                                   num_episodes=w.sample_num_episodes)
        def call():
            if mode == "sample":  # as the benchmark does: the trace is prefilled in every call
                reset_prefix_cache(est.generator)
            est.estimate(*data)
        return call
    return make


def _logprob(model, tok, w):
    weight = model.lm_head.weight.detach()
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(w.logprob_tokens, weight.shape[1], generator=g).to(weight.device, weight.dtype)
    targets = torch.randint(0, weight.shape[0], (w.logprob_tokens,), generator=g).to(weight.device)

    def call():
        h = hidden.clone().requires_grad_()
        wt = weight.clone().requires_grad_()
        selective_log_prob(h, wt, targets).sum().backward()
    return call


MAKERS = {"generation": _generation, "score": _progress("score"), "sample": _progress("sample"), "logprob": _logprob}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", action="append", choices=STAGES, help="repeatable; default: all four")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=15, help="ops to list per stage")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: bf16 on CUDA, else fp32")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--workload", default="cpu", choices=sorted(WORKLOADS), help="sizes (bench/stages/base.py)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    device = torch.device(args.device)
    model, tok = load(args.model, device, getattr(torch, args.dtype or ("bfloat16" if cuda else "float32")))
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    for stage in args.stage or STAGES:
        call = MAKERS[stage](model, tok, WORKLOADS[args.workload])
        call()  # warm-up: allocator, lazy imports, planners, kernel compiles
        with torch.profiler.profile(activities=activities) as prof:
            t0 = time.perf_counter()
            call()
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events) / 1e6
        print(f"\n== {stage}: {wall:.2f} s wall, {total:.2f} s in profiled ops "
              f"({100 * total / wall:.0f}%; the rest is Python between ops)")
        if cuda:  # device time: kernels only (self time of device events)
            dev = sum(e.self_device_time_total for e in events) / 1e6
            print(f"host vs device [{stage}]: wall {wall:.3f} s, device busy {dev:.3f} s ({100 * dev / wall:.0f}% of "
                  f"wall), host in ops {total:.3f} s")
        sort = "self_device_time_total" if cuda else "self_cpu_time_total"
        print(events.table(sort_by=sort, row_limit=args.rows, max_name_column_width=48))


if __name__ == "__main__":
    main()
