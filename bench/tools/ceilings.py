"""Measured ceilings of this device: a large GEMM (FLOP/s) and a device copy (bytes/s).

    python -m bench.tools.ceilings --device cuda            # bf16 8192^3 GEMM, 1 GiB copy
    python -m bench.tools.ceilings --device cpu --n 512 --copy-mib 64

Rooflines quoted from a data sheet are not what a kernel can reach: rows are rated against
these (``bench/throughput.py --peaks FLOPS,BYTES``). Best of ``--repeats`` timed calls after a
warm-up; CUDA events on CUDA. Prints one line and, with ``--json``, writes
``{"flops_per_s", "bytes_per_s", ...}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from mrt_engine.models import resolve_dtype


def best_seconds(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up: cuBLAS heuristics, allocator
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
    return best


def measure(device: torch.device, dtype: torch.dtype, n: int, copy_mib: int, repeats: int) -> dict:
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    t_mm = best_seconds(lambda: torch.matmul(a, b, out=out), device, repeats)
    src = torch.empty(copy_mib << 20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    t_cp = best_seconds(lambda: dst.copy_(src), device, repeats)
    return dict(device=str(device), name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                dtype=str(dtype).replace("torch.", ""), gemm_n=n, copy_bytes=src.numel(),
                flops_per_s=2 * n ** 3 / t_mm, bytes_per_s=2 * src.numel() / t_cp)  # copy: read + write


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--n", type=int, default=None, help="GEMM size n x n x n (default 8192 CUDA, 1024 CPU)")
    ap.add_argument("--copy-mib", type=int, default=None, help="bytes copied (default 1024 MiB CUDA, 64 CPU)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = resolve_dtype(args.dtype or ("bfloat16" if cuda else "float32"))
    r = measure(device, dtype, args.n or (8192 if cuda else 1024), args.copy_mib or (1024 if cuda else 64), args.repeats)
    print(f"ceilings on {r['name']}: {r['dtype']} GEMM {r['gemm_n']}^3 {r['flops_per_s'] / 1e12:.1f} TFLOP/s; "
          f"device copy {r['copy_bytes'] >> 20} MiB {r['bytes_per_s'] / 1e12:.3f} TB/s (read + write)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
