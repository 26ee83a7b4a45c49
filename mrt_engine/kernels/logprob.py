"""Fused selective log-prob: LM-head matmul + online log-sum-exp + target gather, no [M, V] logits.

Natural-log LSE throughout. The forward writes per (vocab split, row) partial states
(running max m, sum of exp(z - m), sum of exp(z - m) * z, target logit) that the launcher
combines; the backward recomputes logit tiles and writes d loss / d logits for one chunk of
rows, which the launcher multiplies into the hidden and weight gradients.
"""
import triton
import triton.language as tl


@triton.jit
def _logit_tile(h_ptr, w_ptr, b_ptr, rows, cols, row_ok, col_ok, H, stride_hm, stride_wv, inv_temp,
                HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
                DOT_PRECISION: tl.constexpr):
    """z[BLOCK_M, BLOCK_V] = (h[rows] @ w[cols].T + b[cols]) * inv_temp, fp32 accumulate."""
    acc = tl.zeros((BLOCK_M, BLOCK_V), dtype=tl.float32)
    for h0 in range(0, H, BLOCK_H):
        ks = h0 + tl.arange(0, BLOCK_H)
        k_ok = ks < H
        x = tl.load(h_ptr + rows[:, None] * stride_hm + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        w = tl.load(w_ptr + cols[:, None] * stride_wv + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
        acc = tl.dot(x, tl.trans(w), acc, input_precision=DOT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    return acc * inv_temp


@triton.jit
def logprob_fwd_kernel(h_ptr, w_ptr, b_ptr, t_ptr, part_ptr, M, V, H, stride_hm, stride_wv, inv_temp, v_per_split,
                       HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
                       DOT_PRECISION: tl.constexpr):
    """Grid (row blocks, vocab splits). part [num_splits, 4, M] fp32: m, sum e, sum e*z, target z."""
    pid_m = tl.program_id(0)
    pid_s = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    tgt = tl.load(t_ptr + rows, mask=row_ok, other=-1)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    s_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    a_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    tz = tl.zeros((BLOCK_M,), dtype=tl.float32)
    v_lo = pid_s * v_per_split
    v_hi = tl.minimum(v_lo + v_per_split, V)
    for v0 in range(v_lo, v_hi, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        col_ok = cols < v_hi
        z = _logit_tile(h_ptr, w_ptr, b_ptr, rows, cols, row_ok, col_ok, H, stride_hm, stride_wv, inv_temp,
                        HAS_BIAS, BLOCK_M, BLOCK_V, BLOCK_H, DOT_PRECISION)
        z_safe = tl.where(col_ok[None, :], z, 0.0)
        z = tl.where(col_ok[None, :], z, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(z, axis=1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(z - m_new[:, None])
        s_i = s_i * alpha + tl.sum(p, axis=1)
        a_i = a_i * alpha + tl.sum(p * z_safe, axis=1)
        tz += tl.sum(tl.where(cols[None, :] == tgt[:, None], z_safe, 0.0), axis=1)
        m_i = m_new
    base = part_ptr + pid_s * 4 * M + rows
    tl.store(base, m_i, mask=row_ok)
    tl.store(base + M, s_i, mask=row_ok)
    tl.store(base + 2 * M, a_i, mask=row_ok)
    tl.store(base + 3 * M, tz, mask=row_ok)


@triton.jit
def logprob_bwd_kernel(h_ptr, w_ptr, b_ptr, t_ptr, lse_ptr, ent_ptr, glogp_ptr, gent_ptr, dz_ptr, M, V, H,
                       stride_hm, stride_wv, stride_dz, inv_temp,
                       HAS_BIAS: tl.constexpr, HAS_GLOGP: tl.constexpr, HAS_GENT: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
                       DOT_PRECISION: tl.constexpr):
    """Grid (row blocks, vocab blocks): dz[rows, cols] = d loss / d logits (already divided by T).

    d logp_t / d z = onehot(t) - p;  d H / d z = -p * (log p + H);  z = logits / T.
    """
    pid_m = tl.program_id(0)
    pid_v = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    row_ok = rows < M
    col_ok = cols < V
    z = _logit_tile(h_ptr, w_ptr, b_ptr, rows, cols, row_ok, col_ok, H, stride_hm, stride_wv, inv_temp,
                    HAS_BIAS, BLOCK_M, BLOCK_V, BLOCK_H, DOT_PRECISION)
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    logp = z - lse[:, None]
    p = tl.exp(logp)
    g = tl.zeros((BLOCK_M, BLOCK_V), dtype=tl.float32)
    if HAS_GLOGP:
        tgt = tl.load(t_ptr + rows, mask=row_ok, other=-1)
        gl = tl.load(glogp_ptr + rows, mask=row_ok, other=0.0)
        g += gl[:, None] * (tl.where(cols[None, :] == tgt[:, None], 1.0, 0.0) - p)
    if HAS_GENT:
        ent = tl.load(ent_ptr + rows, mask=row_ok, other=0.0)
        ge = tl.load(gent_ptr + rows, mask=row_ok, other=0.0)
        g -= ge[:, None] * p * (logp + ent[:, None])
    g = g * inv_temp
    tl.store(dz_ptr + rows[:, None] * stride_dz + cols[None, :], g.to(dz_ptr.dtype.element_ty),
             mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def logprob_rows_fwd_kernel(logits_ptr, t_ptr, lse_ptr, logp_ptr, ent_ptr, V, stride_l, inv_temp,
                            BLOCK_V: tl.constexpr):
    """Grid (rows,): online LSE, target log-prob and entropy of one row of precomputed logits.

    The "matmul" variant: logits come from cuBLAS one chunk of rows at a time.
    """
    row = tl.program_id(0)
    base = logits_ptr + row.to(tl.int64) * stride_l
    tgt = tl.load(t_ptr + row)
    # One online softmax per lane, combined at the end (no scalar loop-carried state).
    m_v = tl.full((BLOCK_V,), float("-inf"), dtype=tl.float32)
    s_v = tl.zeros((BLOCK_V,), dtype=tl.float32)
    a_v = tl.zeros((BLOCK_V,), dtype=tl.float32)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        ok = cols < V
        z = tl.load(base + cols, mask=ok, other=0.0).to(tl.float32) * inv_temp
        m_new = tl.where(ok, tl.maximum(m_v, z), m_v)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_v - m_safe)
        p = tl.where(ok, tl.exp(z - m_safe), 0.0)
        s_v = s_v * alpha + p
        a_v = a_v * alpha + p * tl.where(ok, z, 0.0)
        m_v = m_new
    m = tl.max(m_v, axis=0)
    w = tl.exp(m_v - m)  # lanes that never saw a column: exp(-inf) = 0
    s = tl.sum(s_v * w, axis=0)
    lse = m + tl.log(s)
    tz = tl.load(base + tgt).to(tl.float32) * inv_temp
    tl.store(lse_ptr + row, lse)
    tl.store(logp_ptr + row, tz - lse)
    tl.store(ent_ptr + row, lse - tl.sum(a_v * w, axis=0) / s)


@triton.jit
def logprob_rows_bwd_kernel(logits_ptr, t_ptr, lse_ptr, ent_ptr, glogp_ptr, gent_ptr, V, stride_l, inv_temp,
                            HAS_GLOGP: tl.constexpr, HAS_GENT: tl.constexpr, BLOCK_V: tl.constexpr):
    """Grid (rows,): overwrite one row of precomputed logits with d loss / d logits (in place)."""
    row = tl.program_id(0)
    base = logits_ptr + row.to(tl.int64) * stride_l
    tgt = tl.load(t_ptr + row)
    lse = tl.load(lse_ptr + row)
    gl = 0.0
    ge = 0.0
    ent = 0.0
    if HAS_GLOGP:
        gl = tl.load(glogp_ptr + row)
    if HAS_GENT:
        ge = tl.load(gent_ptr + row)
        ent = tl.load(ent_ptr + row)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        ok = cols < V
        logp = tl.load(base + cols, mask=ok, other=0.0).to(tl.float32) * inv_temp - lse
        p = tl.exp(logp)
        g = gl * (tl.where(cols == tgt, 1.0, 0.0) - p) - ge * p * (logp + ent)
        tl.store(base + cols, (g * inv_temp).to(logits_ptr.dtype.element_ty), mask=ok)
