"""Launchers and autograd wrapper of the selective log-prob kernels (mrt_engine/kernels/logprob.py).

Two variants share one autograd function: ``fused`` (logit tiles inside the kernels) and
``matmul`` (BLAS logits per chunk of rows, row kernels for the LSE and the gradient).
"""
from __future__ import annotations

import torch

from . import _kernels
from ._dispatch import check
from .logprob_ref import check_logprob_inputs

# Tile sizes: (BLOCK_M, BLOCK_V, BLOCK_H, num_warps, num_stages).
_GPU_TILES = (64, 128, 64, 8, 3)
_GPU_TARGET_PROGRAMS = 2 * 132  # ~2 waves on an H100/H200
_GPU_DZ_BYTES = 512 << 20  # per backward chunk of d loss / d logits
_CPU_DZ_BYTES = 16 << 20


def _tiles(device, v, h):
    if device.type == "cuda":
        return _GPU_TILES
    # The interpreter pays per tile-step, not per element: large vocab tiles for a large V, but
    # at least ~4 vocab tiles and 2 H chunks for small test shapes so both loops are exercised.
    block_v = max(16, min(256, 1 << max(0, (v // 4).bit_length() - 1)))
    block_h = max(16, min(64, 1 << max(0, (h // 2 - 1).bit_length())))
    return 16, block_v, block_h, 1, 1


def _rows_block_v(device, v):
    if device.type == "cuda":
        return 1024
    return max(16, min(256, 1 << max(0, (v // 4).bit_length() - 1)))


def _logits_into(out, h, w, b):
    """out [c, V] = h @ w.T (+ b) by cuBLAS / the CPU BLAS, in the weight's dtype."""
    if b is None:
        torch.matmul(h, w.T, out=out)
    else:
        torch.addmm(b.to(w.dtype), h, w.T, out=out)


def _forward_matmul(h, w, b, targets, temperature, chunk):
    """The "matmul" variant: logits per chunk of rows from BLAS, then a row kernel for the LSE."""
    m, v = h.shape[0], w.shape[0]
    lse = torch.empty(m, dtype=torch.float32, device=h.device)  # [M]
    logp, entropy = torch.empty_like(lse), torch.empty_like(lse)
    if m == 0:
        return logp, lse, entropy
    kern = _kernels.load()
    buf = torch.empty(min(chunk, m), v, dtype=w.dtype, device=h.device)  # [chunk, V], reused
    for i in range(0, m, chunk):
        n = min(m, i + chunk) - i
        logits = buf[:n]
        _logits_into(logits, h[i:i + n], w, b)
        kern.logprob_rows_fwd_kernel[(n,)](logits, targets[i:i + n], lse[i:i + n], logp[i:i + n], entropy[i:i + n],
                                           v, logits.stride(0), 1.0 / temperature, BLOCK_V=_rows_block_v(h.device, v),
                                           num_warps=8 if h.is_cuda else 1)
    return logp, lse, entropy


def _grad_logits_matmul(h, w, b, targets, lse, entropy, g_logp, g_ent, temperature, rows, dz):
    """The "matmul" variant of ``_grad_logits``: recompute logits into dz by BLAS, then in place."""
    n = rows.stop - rows.start
    _logits_into(dz, h[rows], w, b)
    dummy = lse
    _kernels.load().logprob_rows_bwd_kernel[(n,)](
        dz, targets[rows], lse[rows], entropy[rows], g_logp[rows] if g_logp is not None else dummy,
        g_ent[rows] if g_ent is not None else dummy, w.shape[0], dz.stride(0), 1.0 / temperature,
        HAS_GLOGP=g_logp is not None, HAS_GENT=g_ent is not None, BLOCK_V=_rows_block_v(h.device, w.shape[0]),
        num_warps=8 if h.is_cuda else 1)


def _dot_precision(dtype):
    # fp32 inputs: exact IEEE products (tf32 would cost ~1e-3 relative on each logit).
    return "ieee" if dtype == torch.float32 else "tf32"


def _prepare(hidden, weight, bias):
    check(hidden.is_cuda or torch.bfloat16 not in (hidden.dtype, weight.dtype),
          "bf16 is not supported by the Triton CPU interpreter (numpy has no bf16): use fp16/fp32 or backend='torch'")
    dtype = weight.dtype
    h = hidden.to(dtype)
    h = h if h.stride(-1) == 1 else h.contiguous()
    w = weight if weight.stride(-1) == 1 else weight.contiguous()
    b = None if bias is None else bias.contiguous()
    return h, w, b


def _forward(h, w, b, targets, temperature):
    m, hdim = h.shape
    v = w.shape[0]
    if m == 0:  # no launch with an empty grid
        empty = torch.empty(0, dtype=torch.float32, device=h.device)
        return empty, empty.clone(), empty.clone()
    kern = _kernels.load()
    bm, bv, bh, warps, stages = _tiles(h.device, w.shape[0], w.shape[1])
    num_m = triton_cdiv(m, bm)
    num_v_blocks = triton_cdiv(v, bv)
    splits = 1
    if h.is_cuda:
        splits = max(1, min(num_v_blocks, triton_cdiv(_GPU_TARGET_PROGRAMS, num_m)))
    v_per_split = triton_cdiv(num_v_blocks, splits) * bv
    splits = triton_cdiv(v, v_per_split)
    part = torch.empty(splits, 4, m, dtype=torch.float32, device=h.device)  # [splits, (m, s, a, tz), M]
    kern.logprob_fwd_kernel[(num_m, splits)](
        h, w, b if b is not None else h, targets, part, m, v, hdim, h.stride(0), w.stride(0), 1.0 / temperature,
        v_per_split, HAS_BIAS=b is not None, BLOCK_M=bm, BLOCK_V=bv, BLOCK_H=bh,
        DOT_PRECISION=_dot_precision(w.dtype), num_warps=warps, num_stages=stages)
    mx, s, a, tz = part.unbind(1)  # each [splits, M]
    lse = torch.logsumexp(mx + torch.log(s), dim=0)  # [M]; empty splits give -inf terms
    weights = torch.exp(mx - lse)  # [splits, M]
    entropy = lse - (weights * a).sum(0)
    logp = tz.sum(0) - lse
    return logp, lse, entropy


def _grad_logits(h, w, b, targets, lse, entropy, g_logp, g_ent, temperature, rows, dz):
    """Fill dz [rows, V] with d loss / d logits for rows ``rows`` (a slice)."""
    kern = _kernels.load()
    m = rows.stop - rows.start
    v, hdim = w.shape
    bm, bv, bh, warps, stages = _tiles(h.device, w.shape[0], w.shape[1])
    hs = h[rows]
    dummy = lse  # stands in for absent optional pointers (never read)
    kern.logprob_bwd_kernel[(triton_cdiv(m, bm), triton_cdiv(v, bv))](
        hs, w, b if b is not None else hs, targets[rows], lse[rows], entropy[rows],
        g_logp[rows] if g_logp is not None else dummy, g_ent[rows] if g_ent is not None else dummy, dz,
        m, v, hdim, hs.stride(0), w.stride(0), dz.stride(0), 1.0 / temperature,
        HAS_BIAS=b is not None, HAS_GLOGP=g_logp is not None, HAS_GENT=g_ent is not None,
        BLOCK_M=bm, BLOCK_V=bv, BLOCK_H=bh, DOT_PRECISION=_dot_precision(w.dtype), num_warps=warps, num_stages=stages)


class _SelectiveLogProbTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk_size, impl):
        h, w, b = _prepare(hidden, weight, bias)
        if impl == "fused":
            logp, lse, entropy = _forward(h, w, b, targets, temperature)
        else:
            logp, lse, entropy = _forward_matmul(h, w, b, targets, temperature, _chunk_rows(h, w, chunk_size))
        ctx.save_for_backward(hidden, weight, bias, targets, lse, entropy)
        ctx.temperature, ctx.chunk_size, ctx.impl = temperature, chunk_size, impl
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        hidden, weight, bias, targets, lse, entropy = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        if g_logp is None and g_ent is None:
            return (None,) * 7
        h, w, b = _prepare(hidden, weight, bias)
        m, v = h.shape[0], w.shape[0]
        dz_dtype = w.dtype  # d loss / d logits in the matmul dtype (fp32 accumulate inside the matmuls)
        chunk = _chunk_rows(h, w, ctx.chunk_size)
        grad_logits = _grad_logits if ctx.impl == "fused" else _grad_logits_matmul
        g_logp = None if g_logp is None else g_logp.float().contiguous()
        g_ent = None if g_ent is None else g_ent.float().contiguous()
        grad_h = torch.empty_like(h) if need_h else None
        # d weight accumulates in the weight's dtype (as Liger does): an fp32 [V, H] buffer would
        # cost more memory than the whole chunked pass. Each chunk's product is fp32 inside cuBLAS.
        grad_w = torch.zeros_like(w) if need_w else None
        grad_b = torch.zeros(v, dtype=torch.float32, device=w.device) if need_b else None
        dz_buf = torch.empty(min(chunk, m), v, dtype=dz_dtype, device=h.device)  # [chunk, V], reused
        for i in range(0, m, chunk):
            rows = slice(i, min(m, i + chunk))
            dz = dz_buf[: rows.stop - i]
            grad_logits(h, w, b, targets, lse, entropy, g_logp, g_ent, ctx.temperature, rows, dz)
            if need_h:
                torch.matmul(dz, w, out=grad_h[rows])
            if need_w:
                grad_w.addmm_(dz.T, h[rows])
            if need_b:
                grad_b += dz.float().sum(0)
        return (
            None if grad_h is None else grad_h.to(hidden.dtype),
            None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None else grad_b.to(bias.dtype),
            None, None, None, None,
        )


def _chunk_rows(h, w, chunk_size):
    """Rows per chunk of a [chunk, V] buffer (d logits, or logits in the matmul variant)."""
    budget = _GPU_DZ_BYTES if h.is_cuda else _CPU_DZ_BYTES
    return int(chunk_size or max(1, budget // (w.shape[0] * w.dtype.itemsize)))


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


IMPLS = ("fused", "matmul")


def selective_log_prob_triton(hidden, weight, targets, *, bias=None, temperature=1.0, return_entropy=False,
                              chunk_size=None, impl="fused"):
    """Triton path of ``selective_log_prob`` (same contract as the reference).

    ``impl="fused"``: logit tiles computed inside the kernels with fp32 accumulators, nothing
    of size ``[*, V]`` in memory in the forward. ``impl="matmul"``: logits of one chunk of
    rows from BLAS in the weight's dtype (rounded like the plain path), then row kernels for the
    LSE and the gradient (the approach of Liger's fused linear cross-entropy); a
    ``[chunk, V]`` buffer in both passes. The benchmarks run both.
    """
    check(impl in IMPLS, f"impl={impl!r}; expected one of {IMPLS}")
    check_logprob_inputs(hidden, weight, targets, bias, temperature)
    check(hidden.device == weight.device, f"hidden on {hidden.device} but weight on {weight.device}")
    check(chunk_size is None or int(chunk_size) > 0, f"chunk_size must be > 0; got {chunk_size}")
    logp, entropy = _SelectiveLogProbTriton.apply(hidden, weight, bias, targets.contiguous(), float(temperature),
                                                  None if chunk_size is None else int(chunk_size), impl)
    return (logp, entropy) if return_entropy else logp
