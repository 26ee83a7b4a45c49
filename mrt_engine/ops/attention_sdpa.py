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
