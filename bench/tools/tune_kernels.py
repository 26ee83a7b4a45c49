"""Tile sweep of the attention kernels on a GPU: which block sizes, warps, pipelining depths and
KV splits each launcher should default to.

    python -m bench.tools.tune_kernels            # needs CUDA; ~3 min on an H200

Two stages per kernel, on the shapes of ``bench/bench_kernels.py`` (Llama-8B heads) and a second,
smaller shape (DeepSeek-R1-Distill-Qwen-1.5B heads, 12 / 2 of 128):
1. block_q x block_n x num_warps at Triton's default pipelining and the launcher's splits;
2. the three fastest of stage 1 x num_stages (x num_splits for decode).
Every configuration's output is compared with the fp32 torch reference (``max_err``), so a
fast but wrong tile never wins. Times are medians of ``triton.testing.do_bench``. Prints the
ranked tables and writes ``tune_kernels.csv`` to ``$OUT`` (or ``runs/tune_kernels``).
"""
from __future__ import annotations

import itertools
import os
import sys
import time

import torch

from bench.common.machine import NOMINAL_GPU
from bench.common.report import write_rows_csv
from bench.bench_kernels import _branch_inputs, _f32, _scoring_inputs
from mrt_engine.ops import branch_decode_attention, prefix_suffix_attention
from mrt_engine.ops.attention_triton import (
    Tiles,
    branch_decode_attention_triton,
    prefix_suffix_attention_triton,
)

PEAK_FLOPS, PEAK_BYTES = NOMINAL_GPU["H200"]
# (traces, trace tokens, cuts, suffix tokens, Hq, Hkv, D)
SCORING_SHAPES = {"llama8b": (4, 4096, 16, 32, 32, 8, 128), "qwen1.5b": (8, 4096, 32, 16, 12, 2, 128)}
# (groups, branches, shared tokens, tail tokens, KV block size, Hq, Hkv, D)
BRANCH_SHAPES = {"llama8b": (4, 64, 8192, 64, 16, 32, 8, 128), "qwen1.5b": (8, 8, 4096, 32, 16, 12, 2, 128)}


def _bench(fn) -> float:
    import triton

    return triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median") / 1e3  # seconds


def _try(fn, ref):
    """(seconds, max_err) of one configuration, or (None, reason) if it fails to compile or run."""
    try:
        err = (fn().float() - ref).abs().max().item()
        return _bench(fn), err
    except Exception as exc:  # a tile too large for shared memory or registers: skip it, say why
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"


def scoring_case(shape):
    num_traces, trace_len, num_cuts, suffix_len, hq, hkv, d = shape
    plan, args, meta = _scoring_inputs(*shape, torch.bfloat16, "cuda")
    ref = prefix_suffix_attention(**_f32(args), **meta, backend="torch").float()
    keys = sum(c * suffix_len + suffix_len * (suffix_len + 1) / 2 for c in plan.cuts.tolist())
    flops = 4.0 * keys * hq * d

    def run(tiles):
        return lambda: prefix_suffix_attention_triton(**args, **meta, max_suffix_len=plan.max_suffix_len,
                                                      validate=False, tiles=tiles)
    return run, ref, lambda t: 100 * flops / t / PEAK_FLOPS


def branch_case(shape):
    num_groups, branches, shared_len, tail_len, block_size, hq, hkv, d = shape
    q, kc, vc, cascade, _ = _branch_inputs(*shape, torch.bfloat16, "cuda")
    ref = branch_decode_attention(q.float(), kc.float(), vc.float(), **cascade, backend="torch").float()
    moved = (num_groups * shared_len + num_groups * branches * tail_len) * 2 * hkv * d * q.element_size()
    hints = dict(max_shared_len=shared_len, max_tail_len=tail_len, max_group_size=branches, validate=False)

    def run(tiles, num_splits=None):
        return lambda: branch_decode_attention_triton(q, kc, vc, **cascade, **hints, tiles=tiles, num_splits=num_splits)
    return run, ref, lambda t: 100 * moved / t / PEAK_BYTES


def sweep(kernel, shape_name, run, ref, pct, configs):
    rows = []
    for tiles, extra in configs:
        t, err = _try(run(tiles, **extra), ref)
        rows.append(dict(kernel=kernel, shape=shape_name, block_q=tiles.block_q, block_n=tiles.block_n,
                         num_warps=tiles.num_warps, num_stages=tiles.num_stages, num_splits=extra.get("num_splits"),
                         ms=None if t is None else t * 1e3, pct_roofline=None if t is None else pct(t),
                         max_err=err if t is not None else None, note="" if t is not None else err))
    return rows


def ranked(rows):
    return sorted((r for r in rows if r["ms"] is not None), key=lambda r: r["ms"])


def show(title, rows, default_ms):
    print(f"\n== {title} (launcher default: {default_ms:.3f} ms)")
    print(f"{'block_q':>7} {'block_n':>7} {'warps':>5} {'stages':>6} {'splits':>6} {'ms':>8} {'%roof':>6} {'max_err':>9}")
    for r in ranked(rows)[:8]:
        print(f"{r['block_q']!s:>7} {r['block_n']!s:>7} {r['num_warps']!s:>5} {r['num_stages']!s:>6} "
              f"{r['num_splits']!s:>6} {r['ms']:8.3f} {r['pct_roofline']:6.1f} {r['max_err']:9.2e}")
    failed = [r for r in rows if r["ms"] is None]
    if failed:
        print(f"   ({len(failed)} configurations failed, e.g. {failed[0]['note']})")


def main():
    if not torch.cuda.is_available():
        sys.exit("tune_kernels.py needs a CUDA device")
    os.environ.setdefault("TRITON_INTERPRET", "0")
    out_dir = os.environ.get("OUT") or "runs/tune_kernels"
    os.makedirs(out_dir, exist_ok=True)
    start = time.time()
    all_rows = []
    for kernel, shapes, make in (("prefix_suffix_attention", SCORING_SHAPES, scoring_case),
                                 ("branch_decode_attention", BRANCH_SHAPES, branch_case)):
        first = None
        for shape_name, shape in shapes.items():
            run, ref, pct = make(shape)
            default_ms = _bench(run(Tiles())) * 1e3
            if first is None:  # stage 1 and 2 on the first shape
                grid = [(Tiles(block_q=bq, block_n=bn, num_warps=w), {})
                        for bq, bn, w in itertools.product((64, 128, 256), (32, 64, 128), (4, 8))]
                rows = sweep(kernel, shape_name, run, ref, pct, grid)
                best = ranked(rows)[:3]
                splits = (None, 4, 8, 16) if kernel.startswith("branch") else (None,)
                grid2 = [(Tiles(block_q=r["block_q"], block_n=r["block_n"], num_warps=r["num_warps"], num_stages=s),
                          {} if sp is None else {"num_splits": sp})
                         for r in best for s, sp in itertools.product((2, 3, 4), splits)]
                rows += sweep(kernel, shape_name, run, ref, pct, grid2)
                first = ranked(rows)[:5]
            else:  # the leaders of the first shape, checked on the second
                grid = [(Tiles(block_q=r["block_q"], block_n=r["block_n"], num_warps=r["num_warps"],
                               num_stages=r["num_stages"]), {} if r["num_splits"] is None else
                         {"num_splits": r["num_splits"]}) for r in first]
                rows = sweep(kernel, shape_name, run, ref, pct, grid)
            show(f"{kernel} [{shape_name}] {shape}", rows, default_ms)
            all_rows += rows + [dict(kernel=kernel, shape=shape_name, note="launcher default", ms=default_ms)]
            print(f"   [{time.time() - start:.0f} s]", flush=True)
    write_rows_csv(os.path.join(out_dir, "tune_kernels.csv"), all_rows,
                   ["kernel", "shape", "block_q", "block_n", "num_warps", "num_stages", "num_splits", "ms",
                    "pct_roofline", "max_err", "note"])


if __name__ == "__main__":
    main()
