"""Shared-prefix scoring attention on PyTorch's fused CPU attention (the CPU fast path).

Same contract as ``prefix_suffix_attention_reference`` (which stays the fp32 oracle the tests
compare against). Profiling the score path on CPU showed the reference's masked einsums
spending most of the time in unfused softmax passes, and its prefix part attending every
suffix of a trace against the trace's *largest* cut (about twice the needed work). Here:
- suffixes are taken in runs that share a prefix start (the planner lays out the suffixes of
  one trace cut by cut, so a run is a trace), split into calls of at most ``max_rows`` query
  rows; each call attends only up to the largest cut *of that call*, so with rising cuts the
  wasted prefix work is a small fraction instead of about half;
- one ``scaled_dot_product_attention`` per call, on 4-D inputs ``[1, Hq, rows, D]`` (3-D
  inputs fall back to the unfused math kernel on CPU) over keys ``prefix[start:start+c] ++
  the call's suffix rows``, with a boolean mask (prefix key j is seen by a row whose cut is
  above j; suffix keys causally within the row's own suffix). Every row sees itself, so no
  row is fully masked. K/V heads are repeated to the query heads: the fused CPU kernel is
  slower with ``enable_gqa``.

The fused kernel accumulates in fp32 and returns the dtype of ``q``, as the reference does.
No LSE is returned: the scoring forward needs the output only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .attention_ref import check_scoring_inputs
from .attention_ref import check_branch_inputs, check_paged_inputs

#: Query rows per fused call. Larger calls attend more masked keys (the gap between the
#: smallest and largest cut of the call, and other suffixes' rows); smaller ones pay more
#: per-call overhead. 256 measured best on SmolLM2-135M scoring (docs/benchmarks.md).
MAX_ROWS_PER_CALL = 256


def suffix_calls(suffix_indptr: list[int], prefix_start: list[int], max_rows: int) -> list[tuple[int, int]]:
    """Suffix ranges ``[a, b)`` of one fused call each: consecutive suffixes with one prefix
    start, at most ``max_rows`` rows together (a single longer suffix is a call of its own)."""
    calls = []
    n = len(prefix_start)
    a = 0
    while a < n:
        b = a + 1
        while (b < n and prefix_start[b] == prefix_start[a]
               and suffix_indptr[b + 1] - suffix_indptr[a] <= max_rows):
            b += 1
        calls.append((a, b))
        a = b
    return calls


def prefix_suffix_attention_sdpa(q, k_suffix, v_suffix, k_prefix, v_prefix, *, suffix_indptr, prefix_start, cuts,
                                 scale, validate=True, max_rows: int = MAX_ROWS_PER_CALL):
    """Shared-prefix scoring attention -> out [S, Hq, D] (dtype of q); see the module docstring."""
    check_scoring_inputs(q, k_suffix, v_suffix, k_prefix, v_prefix, suffix_indptr, prefix_start, cuts, values=validate)
    if max_rows < 1:
        raise ValueError(f"max_rows={max_rows} must be at least 1")
    num_q_heads, head_dim = q.shape[1], q.shape[2]
    group = num_q_heads // k_suffix.shape[1]
    dev = q.device
    out = torch.empty_like(q)
    indptr = suffix_indptr.tolist()
    starts = prefix_start.tolist()
    cut_list = cuts.tolist()
    for a, b in suffix_calls(indptr, starts, max_rows):
        r0, r1 = indptr[a], indptr[b]
        rows = r1 - r0
        if rows == 0:
            continue
        start = starts[a]
        c = max(cut_list[a:b])
        k = torch.cat([k_prefix[start:start + c], k_suffix[r0:r1]]) if c else k_suffix[r0:r1]
        v = torch.cat([v_prefix[start:start + c], v_suffix[r0:r1]]) if c else v_suffix[r0:r1]
        if group > 1:
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        qh = q[r0:r1].transpose(0, 1)[None]  # [1, Hq, rows, D]
        kh = k.transpose(0, 1)[None]  # [1, Hq, c + rows, D]
        vh = v.transpose(0, 1)[None]
        if b - a == 1 and cut_list[a] == 0:
            # One suffix and no prefix: plain causal attention, no mask to build.
            o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
        else:
            o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=_call_mask(indptr, cut_list, a, b, c, dev),
                                               scale=scale)
        out[r0:r1] = o[0].transpose(0, 1)
    return out


def _call_mask(indptr: list[int], cut_list: list[int], a: int, b: int, c: int, dev) -> torch.Tensor:
    """Boolean mask [rows, c + rows] of one call (True = attend)."""
    lens = torch.tensor([indptr[i + 1] - indptr[i] for i in range(a, b)], device=dev)
    rows = int(lens.sum())
    seg = torch.repeat_interleave(torch.arange(b - a, device=dev), lens)  # suffix of each row
    row_cut = torch.tensor(cut_list[a:b], device=dev)[seg]
    pos = torch.arange(rows, device=dev)
    prefix = torch.arange(c, device=dev)[None, :] < row_cut[:, None]  # [rows, c]
    own = (seg[:, None] == seg[None, :]) & (pos[None, :] <= pos[:, None])  # [rows, rows]
    return torch.cat([prefix, own], dim=1)


def paged_decode_attention_sdpa(q, k_cache, v_cache, *, block_tables, context_lens, scale, validate=True,
                                mask=None):
    """One decode step over a paged KV cache on fused SDPA -> [B, Hq, D] (dtype of q).

    Same contract as ``paged_decode_attention_reference``. One gather of every sequence's used
    blocks and one fused call for the whole batch and all heads (the reference runs a dozen
    small ops per KV head, which dominate at decode sizes on CPU). No cascade: a forked
    group's shared blocks are gathered once per member, which on CPU costs less than the
    extra ops of a shared pass and a merge. ``mask`` [B, 1, 1, L] bool (True = attend, L =
    the gathered width ``ceil(max(context_lens) / block_size) * block_size``) may be passed by a
    caller that runs many layers on one plan; it is built from ``context_lens`` otherwise.
    Every sequence needs ``context_lens >= 1`` (a decode query always sees itself).
    """

    check_paged_inputs(q, k_cache, v_cache, block_tables, context_lens, "paged_decode_attention", values=validate)
    if q.shape[0] == 0:
        return torch.empty_like(q)
    bs = k_cache.shape[1]
    if mask is None:
        mask = decode_mask(context_lens, bs)
    index = decode_gather_index(block_tables, mask.shape[-1] // bs, q.device)
    return decode_sdpa(q, k_cache, v_cache, index, mask, scale)


def decode_gather_index(block_tables: torch.Tensor, num_blocks: int, device) -> torch.Tensor:
    """Flat block ids [B * num_blocks] to gather (padding entries -1 read block 0, masked)."""
    return block_tables[:, :num_blocks].to(device).long().clamp(min=0).reshape(-1)


def decode_sdpa(q, k_cache, v_cache, index, mask, scale):
    """The fused decode call: gather ``index`` blocks, one SDPA for the batch -> [B, Hq, D].

    Grouped-query heads ride in SDPA's query-length axis: q [B, Hq, D] is viewed as
    [B, Hkv, group, D] (query head h reads KV head h // group, HF's convention), so the
    gathered K/V are used as they are. Repeating them to Hq heads instead wrote group x the
    gathered context per layer and step: 45% of a sample-mode pass with 36 branches of a
    730-token trace (57 vs 4 ms per call at those sizes, 2.5x at generation's).
    """
    n, num_q_heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[2]
    width = mask.shape[-1]
    k = k_cache.index_select(0, index).view(n, width, num_kv_heads, head_dim)
    v = v_cache.index_select(0, index).view(n, width, num_kv_heads, head_dim)
    group = num_q_heads // num_kv_heads
    qg = q.view(n, num_kv_heads, group, head_dim).to(k.dtype)
    o = F.scaled_dot_product_attention(qg, k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                       scale=scale)  # [B, Hkv, group, D]; the mask broadcasts over group
    return o.reshape(n, num_q_heads, head_dim).to(q.dtype)


def decode_mask(context_lens: torch.Tensor, block_size: int) -> torch.Tensor:
    """[B, 1, 1, L] bool: key j of sequence b is attended when j < context_lens[b]; L is the
    gathered width (whole blocks)."""
    lens = context_lens.long()
    max_len = int(lens.max()) if lens.numel() else 0
    if max_len < 1 or int(lens.min()) < 1:
        raise ValueError("paged_decode_attention_sdpa: every context_lens entry must be >= 1 (a decode query "
                         "attends at least itself)")
    width = -(-max_len // block_size) * block_size
    return (torch.arange(width, device=lens.device)[None, :] < lens[:, None])[:, None, None, :]


def branch_decode_attention_sdpa(q, k_cache, v_cache, *, group_indptr, shared_block_tables, shared_lens,
                                 tail_block_tables, tail_lens, scale, validate=True, **_hints):
    """Cascade decode on fused CPU attention -> [B, Hq, D] (dtype of q).

    Same contract as ``branch_decode_attention_reference``. Two fused calls for the whole batch
    instead of one per group and KV head: the shared pass puts every member of a group (and
    the query heads of one KV head) in the query axis, ``[G, Hkv, members * group, D]``, against
    the group's shared blocks gathered once; the tail pass is the flat decode over each
    sequence's own blocks. Both return their natural-log LSE (the flash kernel's), and the
    two states are merged. Against the flat decode it gathers a shared prefix once per group
    instead of once per member; ``worth_cascading`` says when that pays. The ``max_*`` host
    hints of the Triton path are accepted and unused.
    """

    check_branch_inputs(q, k_cache, v_cache, group_indptr, shared_block_tables, shared_lens, tail_block_tables,
                        tail_lens, values=validate)
    n, num_q_heads, head_dim = q.shape
    if n == 0:
        return torch.empty_like(q)
    num_kv_heads, bs = k_cache.shape[2], k_cache.shape[1]
    group = num_q_heads // num_kv_heads
    dt = k_cache.dtype
    qg = q.to(dt).view(n, num_kv_heads, group, head_dim)
    parts = []
    if shared_block_tables.shape[1]:
        bounds = group_indptr.tolist()
        sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
        num_groups, width = len(sizes), max(max(sizes), 1)
        # member j of group g is row g * width + j; padding rows repeat the group's first member
        pick = torch.tensor([min(a + min(j, max(s - 1, 0)), n - 1) for a, s in zip(bounds[:-1], sizes) for j in range(width)],
                            device=q.device)
        real = torch.tensor([g * width + j for g, s in enumerate(sizes) for j in range(s)], device=q.device)
        qs = qg[pick].view(num_groups, width, num_kv_heads, group, head_dim).permute(0, 2, 1, 3, 4)
        qs = qs.reshape(num_groups, num_kv_heads, width * group, head_dim)
        o, lse = _flash_over_blocks(qs, k_cache, v_cache, shared_block_tables, shared_lens, scale)
        o = o.view(num_groups, num_kv_heads, width, group, head_dim).permute(0, 2, 1, 3, 4)
        o = o.reshape(num_groups * width, num_kv_heads, group, head_dim)[real]
        lse = lse.view(num_groups, num_kv_heads, width, group).permute(0, 2, 1, 3)
        lse = lse.reshape(num_groups * width, num_kv_heads, group)[real]
        parts.append((o, lse))
    if tail_block_tables.shape[1]:
        parts.append(_flash_over_blocks(qg, k_cache, v_cache, tail_block_tables, tail_lens, scale))
    if len(parts) == 1:
        o = parts[0][0]
    else:
        (o_a, s_a), (o_b, s_b) = parts
        top = torch.maximum(s_a, s_b)  # at least one part is finite: every context has >= 1 key
        w_a, w_b = torch.exp(s_a - top), torch.exp(s_b - top)
        o = (o_a.float() * w_a[..., None] + o_b.float() * w_b[..., None]) / (w_a + w_b)[..., None]
    return o.reshape(n, num_q_heads, head_dim).to(q.dtype)


def _flash_over_blocks(q, k_cache, v_cache, block_tables, lens, scale):
    """q [R, Hkv, rows, D] over the ``lens[r]`` tokens of blocks ``block_tables[r]`` ->
    (out [R, Hkv, rows, D], lse [R, Hkv, rows] fp32, -inf where ``lens`` is 0)."""
    num, num_blocks = block_tables.shape
    bs, num_kv_heads, head_dim = k_cache.shape[1], k_cache.shape[2], k_cache.shape[3]
    index = block_tables.to(q.device).long().clamp(min=0).reshape(-1)
    k = k_cache.index_select(0, index).view(num, num_blocks * bs, num_kv_heads, head_dim).transpose(1, 2)
    v = v_cache.index_select(0, index).view(num, num_blocks * bs, num_kv_heads, head_dim).transpose(1, 2)
    lens = lens.to(q.device).long()
    keep = torch.arange(num_blocks * bs, device=q.device)[None, :] < lens[:, None]
    # The flash kernel wants an additive mask of q's dtype; it returns lse 0 for a row with
    # every key masked, so those rows' lse is set to -inf (their part weighs nothing).
    mask = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill_(~keep, float("-inf"))
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=mask[:, None, None, :],
                                                                          scale=scale)
    lse = lse.float().masked_fill((lens == 0)[:, None, None], float("-inf"))
    return out, lse


def worth_cascading(group_sizes: list[int], shared_lens: list[int], context_lens: list[int]) -> bool:
    """Whether the cascade's saving beats its extra fused call and merge on CPU: the flat
    decode gathers every member's shared prefix; the cascade gathers it once per group.
    Pays when it saves at least a quarter of the flat gather and ``MIN_SAVED_TOKENS`` tokens."""
    saved = sum((m - 1) * s for m, s in zip(group_sizes, shared_lens))
    return saved >= MIN_SAVED_TOKENS and 4 * saved >= sum(context_lens)


#: Shared-prefix tokens the cascade must save per step before it pays on CPU (measured on
#: SmolLM2-135M decode shapes, docs/benchmarks.md).
MIN_SAVED_TOKENS = 2048
