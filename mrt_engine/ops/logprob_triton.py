"""Launchers and autograd wrapper of the fused selective log-prob kernels (kernels/logprob.py)."""
from __future__ import annotations

import torch

from . import _kernels
from ._dispatch import check
from .logprob_ref import check_logprob_inputs

# Tile sizes: (BLOCK_M, BLOCK_V, BLOCK_H, num_warps, num_stages). The interpreter runs each
# program in numpy, so there small tiles keep the padding (and the time) down.
_GPU_TILES = (64, 128, 64, 8, 3)
_CPU_TILES = (16, 32, 16, 1, 1)
_GPU_TARGET_PROGRAMS = 2 * 132  # ~2 waves on an H100/H200
_GPU_DZ_BYTES = 512 << 20  # per backward chunk of d loss / d logits
_CPU_DZ_BYTES = 16 << 20


def _tiles(device):
    return _GPU_TILES if device.type == "cuda" else _CPU_TILES


def _dot_precision(dtype):
    # fp32 inputs: exact IEEE products (tf32 would cost ~1e-3 relative on each logit).
    return "ieee" if dtype == torch.float32 else "tf32"


def _prepare(hidden, weight, bias):
    check(hidden.is_cuda or hidden.dtype != torch.bfloat16,
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
    bm, bv, bh, warps, stages = _tiles(h.device)
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
    bm, bv, bh, warps, stages = _tiles(h.device)
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
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk_size):
        h, w, b = _prepare(hidden, weight, bias)
        logp, lse, entropy = _forward(h, w, b, targets, temperature)
        ctx.save_for_backward(hidden, weight, bias, targets, lse, entropy)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        hidden, weight, bias, targets, lse, entropy = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        if g_logp is None and g_ent is None:
            return None, None, None, None, None, None
        h, w, b = _prepare(hidden, weight, bias)
        m, v = h.shape[0], w.shape[0]
        dz_dtype = w.dtype  # d loss / d logits in the matmul dtype (fp32 accumulate inside the matmuls)
        budget = _GPU_DZ_BYTES if h.is_cuda else _CPU_DZ_BYTES
        chunk = ctx.chunk_size or max(1, budget // (v * dz_dtype.itemsize))
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
            _grad_logits(h, w, b, targets, lse, entropy, g_logp, g_ent, ctx.temperature, rows, dz)
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
            None, None, None,
        )


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def selective_log_prob_triton(hidden, weight, targets, *, bias=None, temperature=1.0, return_entropy=False,
                              chunk_size=None):
    """Triton path of ``selective_log_prob`` (same contract as the reference)."""
    check_logprob_inputs(hidden, weight, targets, bias, temperature)
    check(hidden.device == weight.device, f"hidden on {hidden.device} but weight on {weight.device}")
    check(chunk_size is None or int(chunk_size) > 0, f"chunk_size must be > 0; got {chunk_size}")
    logp, entropy = _SelectiveLogProbTriton.apply(hidden, weight, bias, targets.contiguous(), float(temperature),
                                                  None if chunk_size is None else int(chunk_size))
    return (logp, entropy) if return_entropy else logp
