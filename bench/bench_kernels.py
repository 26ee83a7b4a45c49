"""Kernel benchmarks: torch reference vs Triton vs plain torch, measured side by side in one run.

    python -m bench.bench_kernels                 # CPU: reference vs plain (time, peak memory)
    python -m bench.bench_kernels --device cuda   # GPU: + Triton, TFLOP/s or GB/s, % of H200 roofline
    python -m bench.bench_kernels --device cuda --shapes r1-1.5b --peaks 790e12,4.3e12   # 1.5B heads and head,
                                                  # % of the measured ceilings

On CPU the Triton kernels only run in the interpreter, which says nothing about speed, so
they are left out there. Times are medians of interleaved repeats. Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` above the inputs; on CPU the resident-set high-water
mark of one forward+backward in a forked child (``bench/common/memory.py``, shared with the
throughput benchmark). "plain" is plain torch: the
``log_softmax(x @ W.T).gather`` path, per-suffix SDPA, and paged decode without the cascade.
Writes ``kernels.csv``, ``kernels_summary.txt`` and (with matplotlib) ``kernels.png`` to --out.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from bench.common.machine import NOMINAL_GPU, dtype_name as _dt
from bench.common.memory import peak_memory
from bench.common.plot import plot_speedups
from bench.common.report import format_columns, write_rows_csv
from bench.common.timing import cuda_graph_time, medians, run_interleaved
from bench.stages.logprob import plain_logprob
from mrt_engine.ops import (
    branch_decode_attention,
    paged_decode_attention,
    prefix_suffix_attention,
    selective_log_prob,
)
from mrt_engine.ops.logprob_triton import selective_log_prob_triton
from mrt_engine.ops.plan import plan_scoring

H200_BF16_FLOPS, H200_BYTES_PER_S = NOMINAL_GPU["H200"]  # the roofline pct_roofline is against (--peaks: others)
# Named shape sets: (log-prob [(M, V, H)], scoring (traces, trace len, cuts, suffix len, Hq, Hkv, D),
# branch decode (groups, branches, shared len, tail len, block size, Hq, Hkv, D)). "default": per device, below.
SHAPES = {
    # R1-Distill-Qwen-1.5B: LM head V=151936 x H=1536, 12 query / 2 KV heads of 128
    "r1-1.5b": ([(2048, 151936, 1536), (8192, 151936, 1536)], (4, 4096, 16, 32, 12, 2, 128),
                (4, 64, 8192, 64, 16, 12, 2, 128)),
    "r1-mini": ([(64, 512, 768)], (1, 256, 4, 16, 6, 1, 128), (2, 4, 256, 16, 16, 6, 1, 128)),  # CPU-sized
}


def time_interleaved(fns: dict, device: str, repeats: int) -> dict:
    """Median seconds per call of each fn: one untimed round, then ``repeats`` interleaved ones."""
    return medians(run_interleaved(fns, repeats=repeats, warmup=1, device=device))


def graph_times(fns: dict, device: str) -> dict:
    """CUDA only: seconds per CUDA-graph replay of each Triton impl, i.e. the kernels' device time
    without the launchers' Python and launch overhead (at these sizes a call's wall time is
    mostly that overhead)."""
    if device != "cuda":
        return {}
    return {k: cuda_graph_time(fn) for k, fn in fns.items() if k.startswith("triton")}


def _logprob_inputs(m, v, h, dtype, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    hidden = torch.randn(m, h, generator=g).to(device, dtype)
    weight = (torch.randn(v, h, generator=g) * h ** -0.5).to(device, dtype)
    targets = torch.randint(0, v, (m,), generator=g).to(device)
    return hidden, weight, targets


def _logprob_step(kind, hidden, weight, targets):
    """Forward + backward of one implementation; returns nothing (timed / measured)."""
    h = hidden.detach().requires_grad_()
    w = weight.detach().requires_grad_()
    if kind == "plain":
        out = plain_logprob(h, w, targets)
    elif kind == "reference":  # on CUDA, bigger chunks: the reference is only a baseline there
        out = selective_log_prob(h, w, targets, backend="torch", chunk_size=1024 if h.is_cuda else None)
    elif kind == "triton_matmul":
        out = selective_log_prob_triton(h, w, targets, impl="matmul")
    else:
        out = selective_log_prob(h, w, targets, backend="triton")
    out.sum().backward()
    return out.detach()


# ---------------------------------------------------------------- benchmarks

def bench_logprob(device, dtype, shapes, repeats, cpu_mem_m=None):
    """fwd+bwd time and peak memory; on CPU the memory is measured at M=cpu_mem_m (one forked run each)."""
    rows = []
    for m, v, h in shapes:
        hidden, weight, targets = _logprob_inputs(m, v, h, dtype, device)
        kinds = ["reference", "plain"] + (["triton", "triton_matmul"] if device == "cuda" else [])
        times = time_interleaved({k: (lambda k=k: _logprob_step(k, hidden, weight, targets)) for k in kinds},
                                 device, repeats)
        mem_inputs = (hidden, weight, targets) if device == "cuda" else _logprob_inputs(cpu_mem_m or m, v, h, dtype,
                                                                                        device)
        peaks = {k: peak_memory(lambda k=k: _logprob_step(k, *mem_inputs), device) or 0 for k in kinds}
        errs = {}
        if device == "cuda":  # correctness at the benchmark shape: Triton vs the fp32 reference
            ref = selective_log_prob(hidden.float(), weight.float(), targets, backend="torch", chunk_size=512)
            errs = {k: (_logprob_step(k, hidden, weight, targets) - ref).abs().max().item() for k in kinds}
        flops = 8.0 * m * v * h  # fwd 2MVH; bwd: recompute 2MVH + d hidden 2MVH + d weight 2MVH
        for k in kinds:
            mem_note = f" (memory at M={cpu_mem_m})" if device == "cpu" and cpu_mem_m else ""
            rows.append(dict(op="selective_log_prob fwd+bwd", impl=k, shape=f"M={m} V={v} H={h} {_dt(dtype)}{mem_note}",
                             ms=times[k] * 1e3, rate=flops / times[k] / 1e12, unit="TFLOP/s",
                             pct_roofline=100 * flops / times[k] / H200_BF16_FLOPS if device == "cuda" else None,
                             peak_mib=peaks[k] / 2 ** 20, vs_plain=times["plain"] / times[k],
                             mem_vs_plain=peaks[k] / max(1, peaks["plain"]), max_err=errs.get(k)))
    return rows


def _scoring_inputs(num_traces, trace_len, num_cuts, suffix_len, hq, hkv, d, dtype, device):
    cuts = [[round(trace_len * (k + 1) / (num_cuts + 1)) for k in range(num_cuts)] for _ in range(num_traces)]
    plan = plan_scoring([trace_len] * num_traces, cuts, suffix_len)
    L, S = plan.num_prefix_tokens, plan.num_suffix_tokens
    g = torch.Generator(device="cpu").manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g).to(device, dtype)  # noqa: E731
    args = dict(q=r(S, hq, d), k_suffix=r(S, hkv, d), v_suffix=r(S, hkv, d), k_prefix=r(L, hkv, d),
                v_prefix=r(L, hkv, d))
    meta = dict(suffix_indptr=plan.suffix_indptr.to(device), prefix_start=plan.prefix_start.to(device),
                cuts=plan.cuts.to(device), scale=d ** -0.5)
    return plan, args, meta


def _plain_scoring(plan, args, meta):
    """Plain torch: per suffix, SDPA over [prefix[:cut]; suffix] with an explicit mask."""
    q, ks, vs, kp, vp = (args[k] for k in ("q", "k_suffix", "v_suffix", "k_prefix", "v_prefix"))
    hq, hkv = q.shape[1], ks.shape[1]
    out = torch.empty_like(q)
    ip, starts, cuts = plan.suffix_indptr.tolist(), plan.prefix_start.tolist(), plan.cuts.tolist()
    for i in range(len(cuts)):
        a, b, p0, c = ip[i], ip[i + 1], starts[i], cuts[i]
        k = torch.cat([kp[p0:p0 + c], ks[a:b]]).repeat_interleave(hq // hkv, 1).transpose(0, 1)
        v = torch.cat([vp[p0:p0 + c], vs[a:b]]).repeat_interleave(hq // hkv, 1).transpose(0, 1)
        n = b - a
        mask = torch.ones(n, c + n, dtype=torch.bool, device=q.device)
        mask[:, c:] = torch.tril(torch.ones(n, n, dtype=torch.bool, device=q.device))
        o = torch.nn.functional.scaled_dot_product_attention(q[a:b].transpose(0, 1), k, v, attn_mask=mask,
                                                             scale=meta["scale"])
        out[a:b] = o.transpose(0, 1)
    return out


def bench_scoring(device, dtype, cfg, repeats):
    num_traces, trace_len, num_cuts, suffix_len, hq, hkv, d = cfg
    plan, args, meta = _scoring_inputs(num_traces, trace_len, num_cuts, suffix_len, hq, hkv, d, dtype, device)
    fns = {"reference": lambda: prefix_suffix_attention(**args, **meta, backend="torch"),
           "plain": lambda: _plain_scoring(plan, args, meta)}
    if device == "cuda":
        fns["triton"] = lambda: prefix_suffix_attention(**args, **meta, max_suffix_len=plan.max_suffix_len,
                                                        validate=False)  # no host sync per call
    times = time_interleaved(fns, device, repeats)
    graphs = graph_times(fns, device)
    errs = _errors(fns, lambda: prefix_suffix_attention(**_f32(args), **meta, backend="torch"), device)
    keys = sum(c * suffix_len + suffix_len * (suffix_len + 1) / 2 for c in plan.cuts.tolist())  # (query, key) pairs
    flops = 4.0 * keys * hq * d
    shape = f"{num_traces}x{trace_len} tok, {num_cuts} cuts, suffix {suffix_len}, Hq={hq} Hkv={hkv} D={d} {_dt(dtype)}"
    return [dict(op="prefix_suffix_attention", impl=k, shape=shape, ms=t * 1e3, rate=flops / t / 1e12,
                 unit="TFLOP/s", pct_roofline=100 * flops / t / H200_BF16_FLOPS if device == "cuda" else None,
                 vs_plain=times["plain"] / t, max_err=errs.get(k), **_graph_columns(graphs.get(k), flops,
                                                                                   H200_BF16_FLOPS))
            for k, t in times.items()]


def _graph_columns(seconds, work, peak) -> dict:
    """graph_ms and the roofline share at graph-replay time (work: FLOPs or bytes; peak per s)."""
    if not seconds:
        return {}
    return dict(graph_ms=seconds * 1e3, graph_pct_roofline=100 * work / seconds / peak)


def _branch_inputs(num_groups, branches, shared_len, tail_len, block_size, hq, hkv, d, dtype, device):
    """Groups of branches: shared blocks per group, then each branch's own tail blocks."""
    g = torch.Generator(device="cpu").manual_seed(0)
    s_blocks, t_blocks = shared_len // block_size, -(-tail_len // block_size)
    B = num_groups * branches
    num_blocks = num_groups * s_blocks + B * t_blocks
    perm = torch.randperm(num_blocks, generator=g).to(torch.int32)
    shared = perm[: num_groups * s_blocks].view(num_groups, s_blocks)
    tails = perm[num_groups * s_blocks:].view(B, t_blocks)
    full = torch.cat([shared.repeat_interleave(branches, 0), tails], dim=1)  # [B, s+t]: the no-cascade view
    r = lambda *s: torch.randn(*s, generator=g).to(device, dtype)  # noqa: E731
    k_cache, v_cache = r(num_blocks, block_size, hkv, d), r(num_blocks, block_size, hkv, d)
    q = r(B, hq, d)
    cascade = dict(group_indptr=torch.arange(0, B + 1, branches, dtype=torch.int32).to(device),
                   shared_block_tables=shared.to(device), shared_lens=torch.full((num_groups,), shared_len).to(device),
                   tail_block_tables=tails.to(device), tail_lens=torch.full((B,), tail_len).to(device), scale=d ** -0.5)
    paged = dict(block_tables=full.to(device), context_lens=torch.full((B,), shared_len + tail_len).to(device),
                 scale=d ** -0.5)
    return q, k_cache, v_cache, cascade, paged


def bench_branch(device, dtype, cfg, repeats):
    num_groups, branches, shared_len, tail_len, block_size, hq, hkv, d = cfg
    q, kc, vc, cascade, paged = _branch_inputs(*cfg, dtype, device)
    fns = {"reference": lambda: branch_decode_attention(q, kc, vc, **cascade, backend="torch"),
           "plain": lambda: paged_decode_attention(q, kc, vc, **paged, backend="torch")}
    if device == "cuda":
        hints = dict(max_shared_len=shared_len, max_tail_len=tail_len, max_group_size=branches, validate=False)
        fns["triton"] = lambda: branch_decode_attention(q, kc, vc, **cascade, **hints)
        fns["triton_no_cascade"] = lambda: paged_decode_attention(q, kc, vc, **paged, validate=False,
                                                                  max_context_len=shared_len + tail_len)
    times = time_interleaved(fns, device, repeats)
    graphs = graph_times(fns, device)
    errs = _errors(fns, lambda: branch_decode_attention(q.float(), kc.float(), vc.float(), **cascade, backend="torch"),
                   device)
    per_token = 2 * hkv * d * q.element_size()  # k and v
    # The task's floor: each group's shared prefix and each branch's tail read once. Every impl
    # is rated against it (a no-cascade impl that re-reads the prefix per branch is not credited
    # for the re-reads; the L2 serves many of them, so crediting them read over 100%).
    floor_bytes = (num_groups * shared_len + num_groups * branches * tail_len) * per_token
    shape = (f"{num_groups} groups x {branches} branches, shared {shared_len}, tail {tail_len}, "
             f"Hq={hq} Hkv={hkv} D={d} {_dt(dtype)}")
    rows = []
    for k, t in times.items():
        rows.append(dict(op="branch_decode_attention", impl=k, shape=shape, ms=t * 1e3, rate=floor_bytes / t / 1e9,
                         unit="GB/s", pct_roofline=100 * floor_bytes / t / H200_BYTES_PER_S if device == "cuda" else None,
                         vs_plain=times["plain"] / t, max_err=errs.get(k),
                         **_graph_columns(graphs.get(k), floor_bytes, H200_BYTES_PER_S)))
    return rows


def _f32(tensors: dict) -> dict:
    return {k: v.float() for k, v in tensors.items()}


def _errors(fns, reference_fn, device):
    """Max |out - fp32 reference| of each impl (CUDA only: a correctness check at bench shapes)."""
    if device != "cuda":
        return {}
    ref = reference_fn().float()
    return {k: (fn().float() - ref).abs().max().item() for k, fn in fns.items()}


# ---------------------------------------------------------------- output

COLUMNS = ["op", "impl", "shape", "ms", "rate", "unit", "pct_roofline", "graph_ms", "graph_pct_roofline", "vs_plain",
           "peak_mib", "mem_vs_plain", "max_err"]


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def write_outputs(rows, out_dir, device):
    """kernels.csv (raw values), kernels_summary.txt (the table) and kernels.png (speed-ups vs plain)."""
    write_rows_csv(os.path.join(out_dir, "kernels.csv"), rows, COLUMNS)
    text = format_columns(COLUMNS, [tuple(_fmt(r.get(c)) for c in COLUMNS) for r in rows], sep="  ", rule=False,
                          pad_last=True)
    with open(os.path.join(out_dir, "kernels_summary.txt"), "w") as f:
        f.write(f"device={device} torch={torch.__version__}\n{text}\n")
    try:
        plot_speedups(os.path.join(out_dir, "kernels.png"), [f"{r['op']} | {r['impl']}" for r in rows],
                      [r["vs_plain"] for r in rows], xlabel="speed vs plain torch (x, higher is faster), log scale",
                      title=f"mrt_engine kernels on {device}")
    except ImportError:
        pass
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per impl (default 3 CPU, 10 CUDA)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "runs/bench_kernels")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (default 1: on a shared 2-core machine more threads mostly add spin-wait noise)")
    ap.add_argument("--only", default="logprob,scoring,branch", help="comma list of: logprob, scoring, branch")
    ap.add_argument("--shapes", default="default", choices=["default", *SHAPES])
    ap.add_argument("--peaks", default=None, help="FLOP/s,bytes/s that pct_roofline is against (default: H200 nominal)")
    args = ap.parse_args(argv)
    device = args.device
    if args.peaks:
        global H200_BF16_FLOPS, H200_BYTES_PER_S
        H200_BF16_FLOPS, H200_BYTES_PER_S = (float(x) for x in args.peaks.split(","))
    os.makedirs(args.out, exist_ok=True)
    if device == "cuda":
        os.environ.setdefault("TRITON_INTERPRET", "0")
        if os.environ.get("TRITON_INTERPRET") == "1":
            sys.exit("TRITON_INTERPRET=1 would run the kernels in the CPU interpreter: unset it for a GPU benchmark")
    repeats = args.repeats or (10 if device == "cuda" else 3)
    only = set(args.only.split(","))
    rows = []
    if args.shapes != "default":
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        torch.set_num_threads(args.threads)
        logprob, scoring, branch = SHAPES[args.shapes]
        if "logprob" in only:
            rows += bench_logprob(device, dtype, logprob, repeats)
        if "scoring" in only:
            rows += bench_scoring(device, dtype, scoring, repeats)
        if "branch" in only:
            rows += bench_branch(device, dtype, branch, repeats)
    elif device == "cuda":
        dtype = torch.bfloat16
        if "logprob" in only:  # Llama-3-8B LM head at 2K and 8K tokens; a SmolLM2-sized one
            rows += bench_logprob(device, dtype, [(2048, 128256, 4096), (8192, 128256, 4096), (4096, 49152, 576)],
                                  repeats)
        if "scoring" in only:  # 4 traces of 4K tokens, 16 cuts each, 32-token suffixes, Llama-8B heads
            rows += bench_scoring(device, dtype, (4, 4096, 16, 32, 32, 8, 128), repeats)
        if "branch" in only:  # 4 prompts x 64 branches sharing 8K tokens, 64-token tails
            rows += bench_branch(device, dtype, (4, 64, 8192, 64, 16, 32, 8, 128), repeats)
    else:
        dtype = torch.float32
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        if "logprob" in only:  # SmolLM2-135M LM head (V=49152, H=576)
            rows += bench_logprob(device, dtype, [(256, 49152, 576)], repeats, cpu_mem_m=1024)
        if "scoring" in only:  # the score stage's trace (1,024 tokens, 16 cuts) at SmolLM2's heads
            rows += bench_scoring(device, dtype, (1, 1024, 16, 16, 9, 3, 64), repeats)
        if "branch" in only:
            rows += bench_branch(device, dtype, (2, 8, 1024, 32, 16, 9, 3, 64), repeats)
    text = write_outputs(rows, args.out, device)
    print(f"device={device}  (results in {args.out}/kernels.csv)")
    print(text)


if __name__ == "__main__":
    main()
