"""Attention kernels: shared-prefix scoring (prefill of packed suffixes) and grouped paged decode.

Natural-log LSE in every output state. Both kernels run one online softmax over their key
ranges and write ``(out, lse)`` so the launcher can merge states (cascade, split-KV).
"""
import triton
import triton.language as tl


@triton.jit
def _online_update(s, v, m_i, l_i, acc, DOT_PRECISION: tl.constexpr):
    """One online-softmax step: scores s [Q, N] (-inf where masked), values v [N, D]."""
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with nothing seen yet stay empty
    alpha = tl.exp(m_i - m_safe)
    p = tl.exp(s - m_safe[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
    return m_new, l_i, acc


@triton.jit
def prefix_suffix_attention_kernel(q_ptr, ks_ptr, vs_ptr, kp_ptr, vp_ptr, o_ptr, lse_ptr,
                                   suffix_indptr_ptr, prefix_start_ptr, cuts_ptr,
                                   stride_q, stride_kv, stride_o, scale,
                                   NUM_Q_HEADS: tl.constexpr, GQA_RATIO: tl.constexpr, HEAD_DIM: tl.constexpr,
                                   BLOCK_D: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr,
                                   DOT_PRECISION: tl.constexpr):
    """Grid (suffixes, row blocks, kv heads).

    A tile row is one (token, q head) pair of the suffix: row j = token j // GQA_RATIO, head
    kv_head * GQA_RATIO + j % GQA_RATIO, so the q heads sharing a kv head share each K/V
    load (GQA packing; any ratio). q [S, Hq, D] has row stride ``stride_q`` and head stride
    D (likewise k/v with ``stride_kv``, out with ``stride_o``); lse [S, Hq] fp32.
    """
    i = tl.program_id(0)
    qb = tl.program_id(1)
    kvh = tl.program_id(2)
    s0 = tl.load(suffix_indptr_ptr + i)
    n = tl.load(suffix_indptr_ptr + i + 1) - s0
    if qb * BLOCK_Q < n * GQA_RATIO:
        j = qb * BLOCK_Q + tl.arange(0, BLOCK_Q)
        row_ok = j < n * GQA_RATIO
        tok = j // GQA_RATIO
        head = kvh * GQA_RATIO + j % GQA_RATIO
        d = tl.arange(0, BLOCK_D)
        d_ok = d < HEAD_DIM
        q = tl.load(q_ptr + (s0 + tok)[:, None] * stride_q + head[:, None] * HEAD_DIM + d[None, :],
                    mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        m_i = tl.full((BLOCK_Q,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_Q,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
        # Prefix part: rows prefix_start : prefix_start + cut of the packed traces, no mask.
        p0 = tl.load(prefix_start_ptr + i)
        cut = tl.load(cuts_ptr + i)
        for n0 in range(0, cut, BLOCK_N):
            kpos = n0 + tl.arange(0, BLOCK_N)
            k_ok = kpos < cut
            offs = (p0 + kpos)[:, None] * stride_kv + kvh * HEAD_DIM + d[None, :]
            kv_mask = k_ok[:, None] & d_ok[None, :]
            k = tl.load(kp_ptr + offs, mask=kv_mask, other=0.0)
            v = tl.load(vp_ptr + offs, mask=kv_mask, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
            s = tl.where(k_ok[None, :], s, float("-inf"))
            m_i, l_i, acc = _online_update(s, v, m_i, l_i, acc, DOT_PRECISION)
        # Suffix part: the suffix's own rows, causal (keys up to the block's last token).
        hi = tl.minimum(((qb + 1) * BLOCK_Q - 1) // GQA_RATIO + 1, n)
        for n0 in range(0, hi, BLOCK_N):
            kpos = n0 + tl.arange(0, BLOCK_N)
            k_ok = kpos < hi
            offs = (s0 + kpos)[:, None] * stride_kv + kvh * HEAD_DIM + d[None, :]
            kv_mask = k_ok[:, None] & d_ok[None, :]
            k = tl.load(ks_ptr + offs, mask=kv_mask, other=0.0)
            v = tl.load(vs_ptr + offs, mask=kv_mask, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
            s = tl.where(k_ok[None, :] & (kpos[None, :] <= tok[:, None]), s, float("-inf"))
            m_i, l_i, acc = _online_update(s, v, m_i, l_i, acc, DOT_PRECISION)
        out = acc / l_i[:, None]  # l_i >= 1: every row sees at least its own token
        tl.store(o_ptr + (s0 + tok)[:, None] * stride_o + head[:, None] * HEAD_DIM + d[None, :],
                 out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])
        tl.store(lse_ptr + (s0 + tok) * NUM_Q_HEADS + head, m_i + tl.log(l_i), mask=row_ok)


# Sizes that change from step to step are runtime arguments that Triton does not specialise on
# (by default it compiles a variant per integer that is 1 or a multiple of 16): a decode step or a
# prefill chunk of any length runs the kernels compiled for the first one.
@triton.jit(do_not_specialize=["stride_table", "tokens_per_split", "num_splits", "num_rows_out"])
def grouped_paged_decode_kernel(q_ptr, k_cache_ptr, v_cache_ptr, o_ptr, lse_ptr, group_indptr_ptr, tables_ptr, lens_ptr,
                                stride_q, stride_cache_block, stride_cache_token, stride_table, tokens_per_split,
                                num_splits, num_rows_out, scale,
                                NUM_Q_HEADS: tl.constexpr, GQA_RATIO: tl.constexpr, HEAD_DIM: tl.constexpr,
                                BLOCK_D: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr,
                                KV_BLOCK_SIZE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Grid (groups, kv heads, query blocks * num_splits): one decode step over paged KV.

    Group g's sequences ``group_indptr[g]:group_indptr[g+1]`` all attend the first
    ``lens[g]`` tokens in blocks ``tables[g]``; their queries (x GQA heads) are the rows of
    one tile, so each KV block is read once per group (cascade). Split s covers tokens
    ``s * tokens_per_split`` onward; out [num_splits, B, Hq, D] fp32 and lse [num_splits, B, Hq]
    hold partial states (lse = -inf for an empty range) merged by the launcher. ``num_splits``
    is a runtime argument: the split count follows the sequence lengths without a recompile.
    """
    g = tl.program_id(0)
    kvh = tl.program_id(1)
    qb = tl.program_id(2) // num_splits
    split = tl.program_id(2) % num_splits
    b0 = tl.load(group_indptr_ptr + g)
    num_rows = (tl.load(group_indptr_ptr + g + 1) - b0) * GQA_RATIO
    if qb * BLOCK_Q < num_rows:
        j = qb * BLOCK_Q + tl.arange(0, BLOCK_Q)
        row_ok = j < num_rows
        seq = b0 + j // GQA_RATIO
        head = kvh * GQA_RATIO + j % GQA_RATIO
        d = tl.arange(0, BLOCK_D)
        d_ok = d < HEAD_DIM
        q = tl.load(q_ptr + seq[:, None] * stride_q + head[:, None] * HEAD_DIM + d[None, :],
                    mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        m_i = tl.full((BLOCK_Q,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_Q,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
        length = tl.load(lens_ptr + g)
        lo = split * tokens_per_split
        hi = tl.minimum(lo + tokens_per_split, length)
        for t0 in range(lo, hi, BLOCK_N):
            tpos = t0 + tl.arange(0, BLOCK_N)
            t_ok = tpos < hi
            block = tl.load(tables_ptr + g * stride_table + tpos // KV_BLOCK_SIZE, mask=t_ok, other=0)
            offs = (block.to(tl.int64) * stride_cache_block + (tpos % KV_BLOCK_SIZE) * stride_cache_token)[:, None] \
                + kvh * HEAD_DIM + d[None, :]
            kv_mask = t_ok[:, None] & d_ok[None, :]
            k = tl.load(k_cache_ptr + offs, mask=kv_mask, other=0.0)
            v = tl.load(v_cache_ptr + offs, mask=kv_mask, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
            s = tl.where(t_ok[None, :], s, float("-inf"))
            m_i, l_i, acc = _online_update(s, v, m_i, l_i, acc, DOT_PRECISION)
        empty = l_i == 0.0
        out = tl.where(empty[:, None], 0.0, acc / tl.where(empty, 1.0, l_i)[:, None])
        lse = tl.where(empty, float("-inf"), m_i + tl.log(tl.where(empty, 1.0, l_i)))
        row = split * num_rows_out + seq  # [num_splits, B] flattened
        tl.store(o_ptr + (row * NUM_Q_HEADS + head)[:, None] * HEAD_DIM + d[None, :], out,
                 mask=row_ok[:, None] & d_ok[None, :])
        tl.store(lse_ptr + row * NUM_Q_HEADS + head, lse, mask=row_ok)


@triton.jit(do_not_specialize=["stride_table"])
def paged_prefill_kernel(q_ptr, k_cache_ptr, v_cache_ptr, o_ptr, lse_ptr, q_indptr_ptr, tables_ptr, cached_lens_ptr,
                         stride_q, stride_o, stride_cache_block, stride_cache_token, stride_table, scale,
                         NUM_Q_HEADS: tl.constexpr, GQA_RATIO: tl.constexpr, HEAD_DIM: tl.constexpr,
                         BLOCK_D: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr,
                         KV_BLOCK_SIZE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Grid (chunks, row blocks, kv heads): causal prefill of packed chunks over paged KV.

    Chunk i is rows ``q_indptr[i]:q_indptr[i+1]`` of q: positions ``cached_lens[i]`` onward of
    a sequence whose keys (cached and new, already written) lie in blocks ``tables[i]``. Rows
    are (token, q head) pairs as in the scoring kernel (GQA packing). Key tiles that lie wholly
    before the block's first query are read with no mask; the rest with the causal one.
    out [T, Hq, D] (dtype of o), lse [T, Hq] fp32 natural-log.
    """
    i = tl.program_id(0)
    qb = tl.program_id(1)
    kvh = tl.program_id(2)
    s0 = tl.load(q_indptr_ptr + i)
    n = tl.load(q_indptr_ptr + i + 1) - s0
    if qb * BLOCK_Q < n * GQA_RATIO:
        j = qb * BLOCK_Q + tl.arange(0, BLOCK_Q)
        row_ok = j < n * GQA_RATIO
        tok = j // GQA_RATIO
        head = kvh * GQA_RATIO + j % GQA_RATIO
        d = tl.arange(0, BLOCK_D)
        d_ok = d < HEAD_DIM
        q = tl.load(q_ptr + (s0 + tok)[:, None] * stride_q + head[:, None] * HEAD_DIM + d[None, :],
                    mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        m_i = tl.full((BLOCK_Q,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_Q,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
        start = tl.load(cached_lens_ptr + i)
        q_pos = start + tok  # [BLOCK_Q] position of each row's token
        first = start + (qb * BLOCK_Q) // GQA_RATIO  # every row of the block sees keys < first
        hi = start + tl.minimum(((qb + 1) * BLOCK_Q - 1) // GQA_RATIO + 1, n)  # no row sees keys >= hi
        table = tables_ptr + i * stride_table
        num_full = (first // BLOCK_N) * BLOCK_N
        for t0 in range(0, num_full, BLOCK_N):
            tpos = t0 + tl.arange(0, BLOCK_N)
            block = tl.load(table + tpos // KV_BLOCK_SIZE)
            offs = (block.to(tl.int64) * stride_cache_block + (tpos % KV_BLOCK_SIZE) * stride_cache_token)[:, None] \
                + kvh * HEAD_DIM + d[None, :]
            k = tl.load(k_cache_ptr + offs, mask=d_ok[None, :], other=0.0)
            v = tl.load(v_cache_ptr + offs, mask=d_ok[None, :], other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
            m_i, l_i, acc = _online_update(s, v, m_i, l_i, acc, DOT_PRECISION)
        for t0 in range(num_full, hi, BLOCK_N):
            tpos = t0 + tl.arange(0, BLOCK_N)
            t_ok = tpos < hi
            block = tl.load(table + tpos // KV_BLOCK_SIZE, mask=t_ok, other=0)
            offs = (block.to(tl.int64) * stride_cache_block + (tpos % KV_BLOCK_SIZE) * stride_cache_token)[:, None] \
                + kvh * HEAD_DIM + d[None, :]
            kv_mask = t_ok[:, None] & d_ok[None, :]
            k = tl.load(k_cache_ptr + offs, mask=kv_mask, other=0.0)
            v = tl.load(v_cache_ptr + offs, mask=kv_mask, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
            s = tl.where(t_ok[None, :] & (tpos[None, :] <= q_pos[:, None]), s, float("-inf"))
            m_i, l_i, acc = _online_update(s, v, m_i, l_i, acc, DOT_PRECISION)
        out = acc / l_i[:, None]  # l_i >= 1: every row sees at least its own token
        tl.store(o_ptr + (s0 + tok)[:, None] * stride_o + head[:, None] * HEAD_DIM + d[None, :],
                 out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])
        tl.store(lse_ptr + (s0 + tok) * NUM_Q_HEADS + head, m_i + tl.log(l_i), mask=row_ok)


@triton.jit(do_not_specialize=["stride_table"])
def cascade_decode_kernel(q_ptr, k_cache_ptr, v_cache_ptr, part_o_ptr, part_lse_ptr, items_ptr, tables_ptr,
                          stride_q, stride_cache_block, stride_cache_token, stride_table, scale,
                          NUM_Q_HEADS: tl.constexpr, GQA_RATIO: tl.constexpr, HEAD_DIM: tl.constexpr,
                          BLOCK_D: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr,
                          KV_BLOCK_SIZE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Grid (work items, kv heads): a decode step's whole cascade in one launch.

    Item w = ``items[w]`` = (first_seq, num_seqs, table_row, key_lo, key_hi, partial_row): the
    queries of sequences ``first_seq : first_seq + num_seqs`` (x GQA heads: the tile's rows)
    attend keys ``key_lo : key_hi`` of blocks ``tables[table_row]``, whole key tiles without
    a mask, and write partial states (fp32 out, natural-log lse; -inf for an empty range) to
    rows ``partial_row`` onward of part_o [P, Hq, D] and part_lse [P, Hq].
    """
    w = tl.program_id(0)
    kvh = tl.program_id(1)
    item = items_ptr + w * 6
    first_seq = tl.load(item)
    num_rows = tl.load(item + 1) * GQA_RATIO
    table = tables_ptr + tl.load(item + 2).to(tl.int64) * stride_table
    lo = tl.load(item + 3)
    hi = tl.load(item + 4)
    partial_row = tl.load(item + 5)
    j = tl.arange(0, BLOCK_Q)
    row_ok = j < num_rows
    head = kvh * GQA_RATIO + j % GQA_RATIO
    d = tl.arange(0, BLOCK_D)
    d_ok = d < HEAD_DIM
    q = tl.load(q_ptr + (first_seq + j // GQA_RATIO)[:, None] * stride_q + head[:, None] * HEAD_DIM + d[None, :],
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    m_i = tl.full((BLOCK_Q,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_Q,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
    full_hi = lo + ((hi - lo) // BLOCK_N) * BLOCK_N
    for t0 in range(lo, full_hi, BLOCK_N):
        tpos = t0 + tl.arange(0, BLOCK_N)
        block = tl.load(table + tpos // KV_BLOCK_SIZE)
        offs = (block.to(tl.int64) * stride_cache_block + (tpos % KV_BLOCK_SIZE) * stride_cache_token)[:, None] \
            + kvh * HEAD_DIM + d[None, :]
        k = tl.load(k_cache_ptr + offs, mask=d_ok[None, :], other=0.0)
        v = tl.load(v_cache_ptr + offs, mask=d_ok[None, :], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
        m_i, l_i, acc = _online_update(s, v, m_i, l_i, acc, DOT_PRECISION)
    if full_hi < hi:  # the last, partial key tile
        tpos = full_hi + tl.arange(0, BLOCK_N)
        t_ok = tpos < hi
        block = tl.load(table + tpos // KV_BLOCK_SIZE, mask=t_ok, other=0)
        offs = (block.to(tl.int64) * stride_cache_block + (tpos % KV_BLOCK_SIZE) * stride_cache_token)[:, None] \
            + kvh * HEAD_DIM + d[None, :]
        kv_mask = t_ok[:, None] & d_ok[None, :]
        k = tl.load(k_cache_ptr + offs, mask=kv_mask, other=0.0)
        v = tl.load(v_cache_ptr + offs, mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
        s = tl.where(t_ok[None, :], s, float("-inf"))
        m_i, l_i, acc = _online_update(s, v, m_i, l_i, acc, DOT_PRECISION)
    empty = l_i == 0.0
    out = tl.where(empty[:, None], 0.0, acc / tl.where(empty, 1.0, l_i)[:, None])
    lse = tl.where(empty, float("-inf"), m_i + tl.log(tl.where(empty, 1.0, l_i)))
    row = (partial_row + j // GQA_RATIO) * NUM_Q_HEADS + head  # [BLOCK_Q] rows of part_lse
    tl.store(part_o_ptr + row[:, None] * HEAD_DIM + d[None, :], out, mask=row_ok[:, None] & d_ok[None, :])
    tl.store(part_lse_ptr + row, lse, mask=row_ok)


@triton.jit
def merge_partials_kernel(part_o_ptr, part_lse_ptr, merge_indptr_ptr, merge_rows_ptr, o_ptr, lse_ptr, stride_o,
                          NUM_Q_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_H: tl.constexpr,
                          BLOCK_D: tl.constexpr):
    """Grid (sequences, head blocks): sequence b's partial states, rows
    ``merge_rows[merge_indptr[b]:merge_indptr[b+1]]`` of part_o [P, Hq, D] / part_lse [P, Hq],
    merged by their natural-log LSEs -> out [B, Hq, D] (dtype of o), lse [B, Hq] fp32; no
    partials (or only empty ones) -> (0, -inf)."""
    b = tl.program_id(0)
    h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    h_ok = h < NUM_Q_HEADS
    d = tl.arange(0, BLOCK_D)
    d_ok = d < HEAD_DIM
    e0 = tl.load(merge_indptr_ptr + b)
    e1 = tl.load(merge_indptr_ptr + b + 1)
    m = tl.full((BLOCK_H,), float("-inf"), dtype=tl.float32)
    l_sum = tl.zeros((BLOCK_H,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_H, BLOCK_D), dtype=tl.float32)
    for e in range(e0, e1):
        p = tl.load(merge_rows_ptr + e).to(tl.int64)
        s = tl.load(part_lse_ptr + p * NUM_Q_HEADS + h, mask=h_ok, other=float("-inf"))
        o = tl.load(part_o_ptr + (p * NUM_Q_HEADS + h)[:, None] * HEAD_DIM + d[None, :],
                    mask=h_ok[:, None] & d_ok[None, :], other=0.0)
        m_new = tl.maximum(m, s)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m - m_safe)
        weight = tl.exp(s - m_safe)
        l_sum = l_sum * alpha + weight
        acc = acc * alpha[:, None] + weight[:, None] * o
        m = m_new
    empty = l_sum == 0.0
    out = tl.where(empty[:, None], 0.0, acc / tl.where(empty, 1.0, l_sum)[:, None])
    lse = tl.where(empty, float("-inf"), m + tl.log(tl.where(empty, 1.0, l_sum)))
    tl.store(o_ptr + b * stride_o + h[:, None] * HEAD_DIM + d[None, :], out.to(o_ptr.dtype.element_ty),
             mask=h_ok[:, None] & d_ok[None, :])
    tl.store(lse_ptr + b * NUM_Q_HEADS + h, lse, mask=h_ok)
