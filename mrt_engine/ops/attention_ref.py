"""Pure-torch references of the attention ops (the CPU path and the test oracle).

All softmax statistics are natural-log LSE, fp32 accumulate. Each op has a ``*_with_lse``
form returning the state ``(out, lse)`` so states can be merged with ``merge_state``.
The references are vectorised (gathers + batched matmuls, padded), with Python loops only
over distinct prefixes, because the engine runs them as its CPU path.
"""
from __future__ import annotations

import torch

from ._dispatch import check
from .merge import merge_state


def _attend(q, k, v, mask, scale):
    """Masked attention state.

    q [..., Hkv, R, Nq, D], k/v [..., Hkv, Nk, D] (broadcast over R), mask [..., 1|Hkv, 1|R, Nq, Nk]
    -> (out [..., Hkv, R, Nq, D] fp32, lse [..., Hkv, R, Nq]); fully masked rows -> (0, -inf).
    Few passes over the score matrix (this is the CPU hot path): scale folded into q, an
    additive mask (faster than a broadcast masked_fill), in-place exp.
    """
    s = torch.einsum("...hrqd,...hkd->...hrqk", q.float() * scale, k.float())
    s += torch.zeros(mask.shape, dtype=s.dtype, device=s.device).masked_fill_(~mask, float("-inf"))
    m = s.amax(dim=-1)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # fully masked rows: exp(-inf) = 0
    p = s.sub_(m[..., None]).exp_()
    denom = p.sum(dim=-1)
    out = torch.einsum("...hrqk,...hkd->...hrqd", p, v.float())
    empty = denom == 0
    out = out / torch.where(empty, torch.ones_like(denom), denom)[..., None]
    lse = torch.where(empty, torch.full_like(denom, float("-inf")), m + torch.log(denom))
    return out, lse


def _split_heads(q, num_kv_heads):
    """[..., Hq, D] -> [..., Hkv, R, D] with head h = g * R + r (GQA grouping)."""
    *lead, hq, d = q.shape
    check(hq % num_kv_heads == 0, f"num q heads {hq} must be a multiple of num kv heads {num_kv_heads}")
    return q.reshape(*lead, num_kv_heads, hq // num_kv_heads, d)


# ---------------------------------------------------------------- prefix + suffix scoring

def check_scoring_inputs(q, k_suffix, v_suffix, k_prefix, v_prefix, suffix_indptr, prefix_start, cuts, values=True):
    """Shape checks always; value checks (ranges) when ``values`` (they sync the host for GPU tensors)."""
    check(q.dim() == 3 and k_suffix.dim() == 3 and k_prefix.dim() == 3,
          "q [S, Hq, D], k_suffix/v_suffix [S, Hkv, D], k_prefix/v_prefix [L, Hkv, D] must be 3-D")
    check(k_suffix.shape == v_suffix.shape and k_prefix.shape == v_prefix.shape,
          f"k/v shapes differ: k_suffix {tuple(k_suffix.shape)} v_suffix {tuple(v_suffix.shape)}, "
          f"k_prefix {tuple(k_prefix.shape)} v_prefix {tuple(v_prefix.shape)}")
    check(k_suffix.shape[0] == q.shape[0], f"k_suffix rows {k_suffix.shape[0]} != q rows {q.shape[0]}")
    check(k_suffix.shape[1:] == k_prefix.shape[1:] and q.shape[2] == k_suffix.shape[2],
          f"head layout differs: q {tuple(q.shape)}, k_suffix {tuple(k_suffix.shape)}, k_prefix {tuple(k_prefix.shape)}")
    check(q.shape[1] % k_suffix.shape[1] == 0, f"Hq={q.shape[1]} must be a multiple of Hkv={k_suffix.shape[1]}")
    n = prefix_start.shape[0]
    check(suffix_indptr.dim() == 1 and suffix_indptr.shape[0] == n + 1 and cuts.shape == prefix_start.shape,
          f"suffix_indptr [N+1], prefix_start [N], cuts [N] disagree: {tuple(suffix_indptr.shape)}, "
          f"{tuple(prefix_start.shape)}, {tuple(cuts.shape)}")
    if not values:
        return
    S, L = q.shape[0], k_prefix.shape[0]
    indptr, starts, cuts_l = (t.long() for t in (suffix_indptr, prefix_start, cuts))
    check(int(indptr[0]) == 0 and int(indptr[-1]) == S and bool((indptr[1:] >= indptr[:-1]).all()),
          f"suffix_indptr must rise from 0 to S={S}; got {indptr.tolist()[:8]}...")
    check(n == 0 or bool(((cuts_l >= 0) & (starts >= 0) & (starts + cuts_l <= L)).all()),
          f"prefix rows prefix_start[i] : prefix_start[i]+cuts[i] must lie in [0, L={L}]")


def prefix_suffix_attention_with_lse(q, k_suffix, v_suffix, k_prefix, v_prefix, *, suffix_indptr,
                                     prefix_start, cuts, scale, validate=True):
    """Like ``prefix_suffix_attention_reference`` but returns ``(out [S,Hq,D], lse [S,Hq])``."""
    check_scoring_inputs(q, k_suffix, v_suffix, k_prefix, v_prefix, suffix_indptr, prefix_start, cuts, values=validate)
    S, hq, d = q.shape
    hkv = k_suffix.shape[1]
    dev = q.device
    indptr = suffix_indptr.to(dev, torch.long)
    starts = prefix_start.to(dev, torch.long)
    cuts_l = cuts.to(dev, torch.long)
    n = starts.shape[0]
    lens = indptr[1:] - indptr[:-1]  # [N]
    suffix_of_row = torch.repeat_interleave(torch.arange(n, device=dev), lens)  # [S]
    qg = _split_heads(q, hkv)  # [S, Hkv, R, D]

    # Suffix part: padded per suffix, causal.
    max_len = int(lens.max()) if n else 0
    pos = torch.arange(max_len, device=dev)
    idx = indptr[:-1, None] + pos  # [N, Ls]
    valid = pos[None, :] < lens[:, None]  # [N, Ls]
    idx_c = torch.where(valid, idx, torch.zeros_like(idx))
    qs = qg[idx_c].permute(0, 2, 3, 1, 4)  # [N, Hkv, R, Ls, D]
    ks = k_suffix[idx_c].permute(0, 2, 1, 3)  # [N, Hkv, Ls, D]
    vs = v_suffix[idx_c].permute(0, 2, 1, 3)
    mask = (pos[None, :] <= pos[:, None])[None] & valid[:, None, :]  # [N, Lq, Lk]
    o_s, l_s = _attend(qs, ks, vs, mask[:, None, None], scale)  # [N, Hkv, R, Ls, D]
    out_sfx = o_s.permute(0, 3, 1, 2, 4)[valid].reshape(S, hq, d)
    lse_sfx = l_s.permute(0, 3, 1, 2)[valid].reshape(S, hq)

    # Prefix part: one batched matmul per distinct prefix start (suffixes of one trace share it).
    out_pre = torch.zeros(S, hq, d, dtype=torch.float32, device=dev)
    lse_pre = torch.full((S, hq), float("-inf"), dtype=torch.float32, device=dev)
    row_cut = cuts_l[suffix_of_row]  # [S]
    row_start = starts[suffix_of_row]
    for start in torch.unique(starts).tolist():
        rows = torch.nonzero((row_start == start) & (row_cut > 0)).squeeze(1)  # [r]
        if rows.numel() == 0:
            continue
        c = int(row_cut[rows].max())
        kp = k_prefix[start:start + c].transpose(0, 1)  # [Hkv, c, D]
        vp = v_prefix[start:start + c].transpose(0, 1)
        qp = qg[rows].permute(1, 2, 0, 3)  # [Hkv, R, r, D]
        m = torch.arange(c, device=dev)[None, :] < row_cut[rows][:, None]  # [r, c]
        o_p, l_p = _attend(qp, kp, vp, m[None, None], scale)  # [Hkv, R, r, D]
        out_pre[rows] = o_p.permute(2, 0, 1, 3).reshape(-1, hq, d)
        lse_pre[rows] = l_p.permute(2, 0, 1).reshape(-1, hq)
    return merge_state(out_pre, lse_pre, out_sfx, lse_sfx)


def prefix_suffix_attention_reference(q, k_suffix, v_suffix, k_prefix, v_prefix, *, suffix_indptr,
                                      prefix_start, cuts, scale, validate=True):
    """Shared-prefix scoring attention -> out [S, Hq, D] (dtype of q).

    Suffix i (rows ``suffix_indptr[i]:suffix_indptr[i+1]``) attends prefix rows
    ``prefix_start[i] : prefix_start[i] + cuts[i]`` and its own rows causally. Computed as
    two states (prefix, causal suffix) merged with ``merge_state`` (natural-log LSE).
    ``validate=False`` skips the value checks (the planner made them once per step).
    """
    out, _ = prefix_suffix_attention_with_lse(q, k_suffix, v_suffix, k_prefix, v_prefix, suffix_indptr=suffix_indptr,
                                              prefix_start=prefix_start, cuts=cuts, scale=scale, validate=validate)
    return out.to(q.dtype)


# ---------------------------------------------------------------- paged decode

def check_paged_inputs(q, k_cache, v_cache, block_tables, lens, what, values=True):
    """Shape checks always; value checks (ranges, block ids) when ``values``."""
    check(q.dim() == 3, f"q must be [B, Hq, D]; got {tuple(q.shape)}")
    check(k_cache.dim() == 4 and k_cache.shape == v_cache.shape,
          f"k_cache/v_cache must be [num_blocks, block_size, Hkv, D] and equal; got {tuple(k_cache.shape)}, "
          f"{tuple(v_cache.shape)}")
    check(q.shape[2] == k_cache.shape[3] and q.shape[1] % k_cache.shape[2] == 0,
          f"q {tuple(q.shape)} does not fit cache heads/dim {tuple(k_cache.shape[2:])}")
    check(block_tables.dim() == 2 and lens.dim() == 1 and block_tables.shape[0] == lens.shape[0],
          f"{what}: block tables [n, max_blocks] and lens [n] disagree: {tuple(block_tables.shape)}, {tuple(lens.shape)}")
    if values and lens.numel():
        bs, num_blocks = k_cache.shape[1], k_cache.shape[0]
        cap = block_tables.shape[1] * bs
        check(int(lens.min()) >= 0 and int(lens.max()) <= cap,
              f"{what}: lens must lie in [0, max_blocks*block_size={cap}]; got max {int(lens.max())}")
        used = torch.arange(block_tables.shape[1], device=lens.device)[None, :] < (lens.long()[:, None] + bs - 1) // bs
        ids = block_tables.to(lens.device).long()[used]
        # (the message is built only for a non-empty ids: min() of no blocks raises)
        if ids.numel():
            check(int(ids.min()) >= 0 and int(ids.max()) < num_blocks,
                  f"{what}: block ids in use must lie in [0, num_blocks={num_blocks}); got min {int(ids.min())}, "
                  f"max {int(ids.max())}")


def _paged_state(q_rows, k_cache, v_cache, block_tables, lens, scale):
    """q_rows [n, M, Hq, D] (M queries per table row) -> (out [n, M, Hq, D], lse [n, M, Hq]).

    CPU hot path of decode: one gather of the used blocks, then per kv head a batched matmul
    on strided views (rows of one kv head are Hkv*D apart; BLAS takes that stride as is, so
    no permuted copy of the gathered K/V is made).
    """
    n, mq, hq, d = q_rows.shape
    bs, hkv = k_cache.shape[1], k_cache.shape[2]
    ratio = hq // hkv
    dev = q_rows.device
    max_len = int(lens.max()) if lens.numel() else 0
    if n == 0 or max_len == 0:  # nothing to attend: the empty state
        return (torch.zeros(q_rows.shape, dtype=torch.float32, device=dev),
                torch.full((n, mq, hq), float("-inf"), dtype=torch.float32, device=dev))
    num_blocks = -(-max_len // bs)
    tables = block_tables[:, :num_blocks].to(dev).long().clamp(min=0)  # unused entries may be padding (-1)
    flat = tables.reshape(-1)
    k = torch.index_select(k_cache, 0, flat).view(n, num_blocks * bs, hkv, d).float()  # [n, L, Hkv, D]
    v = torch.index_select(v_cache, 0, flat).view(n, num_blocks * bs, hkv, d).float()
    pos = torch.arange(num_blocks * bs, device=dev)
    bias = torch.zeros(n, num_blocks * bs, device=dev).masked_fill_(pos[None, :] >= lens.to(dev)[:, None], float("-inf"))
    qg = q_rows.float().reshape(n, mq, hkv, ratio, d)
    out = torch.empty(n, mq, hkv, ratio, d, dtype=torch.float32, device=dev)
    lse = torch.empty(n, mq, hkv, ratio, dtype=torch.float32, device=dev)
    for g in range(hkv):
        qh = (qg[:, :, g] * scale).reshape(n, mq * ratio, d)  # [n, M*R, D] small copy
        s = torch.bmm(qh, k[:, :, g].transpose(1, 2))  # [n, M*R, L]
        s += bias[:, None, :]
        m = s.amax(dim=-1)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        p = s.sub_(m[..., None]).exp_()
        denom = p.sum(dim=-1)  # [n, M*R]; 0 for a row whose own length is 0
        o = torch.bmm(p, v[:, :, g])  # [n, M*R, D]
        empty = denom == 0
        out[:, :, g] = (o / torch.where(empty, torch.ones_like(denom), denom)[..., None]).view(n, mq, ratio, d)
        lse[:, :, g] = torch.where(empty, torch.full_like(denom, float("-inf")), m + torch.log(denom)).view(n, mq, ratio)
    return out.reshape(n, mq, hq, d), lse.reshape(n, mq, hq)


def paged_decode_attention_with_lse(q, k_cache, v_cache, *, block_tables, context_lens, scale, validate=True):
    check_paged_inputs(q, k_cache, v_cache, block_tables, context_lens, "paged_decode_attention", values=validate)
    out, lse = _paged_state(q[:, None], k_cache, v_cache, block_tables, context_lens, scale)
    return out[:, 0], lse[:, 0]


def paged_decode_attention_reference(q, k_cache, v_cache, *, block_tables, context_lens, scale, validate=True):
    """One decode step: q [B, Hq, D] attends the first ``context_lens[b]`` cached tokens of
    sequence b, stored in blocks ``block_tables[b]`` of ``k_cache [num_blocks, block_size, Hkv, D]``.
    """
    out, _ = paged_decode_attention_with_lse(q, k_cache, v_cache, block_tables=block_tables,
                                             context_lens=context_lens, scale=scale, validate=validate)
    return out.to(q.dtype)


# ---------------------------------------------------------------- branch (cascade) decode

def check_branch_inputs(q, k_cache, v_cache, group_indptr, shared_block_tables, shared_lens, tail_block_tables,
                        tail_lens, values=True):
    """Shape checks always; value checks (ranges, block ids, group_indptr) when ``values``."""
    B, G = q.shape[0], shared_lens.shape[0]
    check_paged_inputs(q, k_cache, v_cache, shared_block_tables, shared_lens, "branch shared prefix", values=values)
    check_paged_inputs(q, k_cache, v_cache, tail_block_tables, tail_lens, "branch tails", values=values)
    check(tail_lens.shape[0] == B, f"tail_lens must be [B={B}]; got {tuple(tail_lens.shape)}")
    check(group_indptr.dim() == 1 and group_indptr.shape[0] == G + 1,
          f"group_indptr must be [G+1={G + 1}]; got {tuple(group_indptr.shape)}")
    if not values:
        return
    gi = group_indptr.tolist()
    check(gi[0] == 0 and gi[-1] == B and all(a <= b for a, b in zip(gi, gi[1:])),
          f"group_indptr must rise from 0 to B={B}; got {gi[:8]}...")


def branch_decode_attention_with_lse(q, k_cache, v_cache, *, group_indptr, shared_block_tables, shared_lens,
                                     tail_block_tables, tail_lens, scale, validate=True):
    G = shared_lens.shape[0]
    check_branch_inputs(q, k_cache, v_cache, group_indptr, shared_block_tables, shared_lens, tail_block_tables,
                        tail_lens, values=validate)
    dev = q.device
    gi = group_indptr.to(dev, torch.long)
    sizes = gi[1:] - gi[:-1]  # [G]
    max_members = int(sizes.max()) if G else 0
    pos = torch.arange(max_members, device=dev)
    valid = pos[None, :] < sizes[:, None]  # [G, Mg]
    idx = torch.where(valid, gi[:-1, None] + pos, torch.zeros_like(pos))
    # Shared prefix: all members of a group in one batched matmul -> each block read once per group.
    o_g, l_g = _paged_state(q[idx], k_cache, v_cache, shared_block_tables, shared_lens, scale)  # [G, Mg, Hq, D]
    o_shared, l_shared = o_g[valid], l_g[valid]  # [B, Hq, D]: valid rows are in batch order
    o_tail, l_tail = _paged_state(q[:, None], k_cache, v_cache, tail_block_tables, tail_lens, scale)
    return merge_state(o_shared, l_shared, o_tail[:, 0], l_tail[:, 0])


def branch_decode_attention_reference(q, k_cache, v_cache, *, group_indptr, shared_block_tables, shared_lens,
                                      tail_block_tables, tail_lens, scale, validate=True):
    """Cascade decode for branches sharing a prefix: sequences ``group_indptr[g]:group_indptr[g+1]``
    share the first ``shared_lens[g]`` tokens (blocks ``shared_block_tables[g]``); sequence b
    then has ``tail_lens[b]`` own tokens (blocks ``tail_block_tables[b]``). Shared and tail
    states are merged with ``merge_state``. ``validate=False`` skips the value checks (the
    planner made them once per step).
    """
    out, _ = branch_decode_attention_with_lse(
        q, k_cache, v_cache, group_indptr=group_indptr, shared_block_tables=shared_block_tables,
        shared_lens=shared_lens, tail_block_tables=tail_block_tables, tail_lens=tail_lens, scale=scale,
        validate=validate)
    return out.to(q.dtype)


# ---------------------------------------------------------------- paged prefill

def check_prefill_inputs(q, k_cache, v_cache, q_indptr, block_tables, cached_lens, values=True):
    """Shape checks always; value checks (ranges, block ids) when ``values`` (they sync the host)."""
    n = cached_lens.shape[0]
    check(q_indptr.dim() == 1 and q_indptr.shape[0] == n + 1,
          f"q_indptr must be [N+1={n + 1}] for N={n} sequences; got {tuple(q_indptr.shape)}")
    if not values:
        check_paged_inputs(q, k_cache, v_cache, block_tables, cached_lens, "paged prefill", values=False)
        return
    indptr = q_indptr.long()
    T = q.shape[0]
    check(n == 0 or (int(indptr[0]) == 0 and int(indptr[-1]) == T and bool((indptr[1:] >= indptr[:-1]).all())),
          f"q_indptr must rise from 0 to T={T}; got {indptr.tolist()[:8]}...")
    # Every key a sequence reads (its cached tokens and its new ones) must lie in its blocks.
    total = cached_lens.long().to(indptr.device) + (indptr[1:] - indptr[:-1])
    check(n == 0 or int(cached_lens.min()) >= 0, "cached_lens must be >= 0")
    check_paged_inputs(q, k_cache, v_cache, block_tables, total.to(cached_lens.device), "paged prefill", values=True)


def paged_prefill_attention_with_lse(q, k_cache, v_cache, *, q_indptr, block_tables, cached_lens, scale,
                                     validate=True):
    """Like ``paged_prefill_attention_reference`` but returns ``(out [T, Hq, D] fp32, lse [T, Hq])``."""
    check_prefill_inputs(q, k_cache, v_cache, q_indptr, block_tables, cached_lens, values=validate)
    T, hq, d = q.shape
    bs, hkv = k_cache.shape[1], k_cache.shape[2]
    dev = q.device
    out = torch.zeros(T, hq, d, dtype=torch.float32, device=dev)
    lse = torch.full((T, hq), float("-inf"), dtype=torch.float32, device=dev)
    bounds = q_indptr.tolist()
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        if b == a:
            continue
        start = int(cached_lens[i])
        num_keys = start + b - a
        blocks = block_tables[i, :-(-num_keys // bs)].to(dev).long()
        k = k_cache.index_select(0, blocks).flatten(0, 1)[:num_keys].transpose(0, 1)  # [Hkv, keys, D]
        v = v_cache.index_select(0, blocks).flatten(0, 1)[:num_keys].transpose(0, 1)
        qg = _split_heads(q[a:b], hkv).permute(1, 2, 0, 3)  # [Hkv, R, n, D]
        q_pos = torch.arange(start, num_keys, device=dev)
        mask = torch.arange(num_keys, device=dev)[None, :] <= q_pos[:, None]  # [n, keys]: causal
        o, s = _attend(qg, k, v, mask[None, None], scale)  # [Hkv, R, n, D]
        out[a:b] = o.permute(2, 0, 1, 3).reshape(b - a, hq, d)
        lse[a:b] = s.permute(2, 0, 1).reshape(b - a, hq)
    return out, lse


def paged_prefill_attention_reference(q, k_cache, v_cache, *, q_indptr, block_tables, cached_lens, scale,
                                      validate=True):
    """Prefill of packed chunks over a paged KV cache -> out [T, Hq, D] (dtype of q).

    Chunk i is rows ``q_indptr[i]:q_indptr[i+1]`` of ``q [T, Hq, D]``: the queries at positions
    ``cached_lens[i]`` onward of sequence i, whose keys (the ``cached_lens[i]`` tokens before
    them and the chunk's own, already written) lie in blocks ``block_tables[i]`` of
    ``k_cache [num_blocks, block_size, Hkv, D]``. Causal: the query at position p sees keys
    ``0..p``. ``validate=False`` skips the value checks (the plan made them once per step).
    """
    out, _ = paged_prefill_attention_with_lse(q, k_cache, v_cache, q_indptr=q_indptr, block_tables=block_tables,
                                              cached_lens=cached_lens, scale=scale, validate=validate)
    return out.to(q.dtype)
