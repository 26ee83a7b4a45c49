"""Launchers of the attention kernels (mrt_engine/kernels/attention.py): checks, tile sizes, grids, merging."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _kernels
from ._dispatch import check, triton_on_cpu
from .attention_ref import check_branch_inputs, check_paged_inputs, check_prefill_inputs, check_scoring_inputs
from .merge import merge_state, merge_states

_GPU_TARGET_PROGRAMS = 2 * 132  # ~2 waves on an H100/H200


@dataclass(frozen=True)
class Tiles:
    """Tile shape and launch options of one kernel launch; ``None`` keeps the launcher's default.

    ``block_q``: query rows ((token, q head) pairs) per program; ``block_n``: keys per inner
    step; ``num_warps`` / ``num_stages``: Triton's launch options (pipelining depth of the
    key loop). ``bench/tools/tune_kernels.py`` sweeps these on a GPU; the defaults come from it.
    """
    block_q: int | None = None
    block_n: int | None = None
    num_warps: int | None = None
    num_stages: int | None = None

    def launch_options(self, num_warps: int, num_stages: int | None = None) -> dict:
        """Launch keywords: these tiles' choices, else the launcher's defaults given here."""
        opts = {"num_warps": self.num_warps or num_warps}
        if (self.num_stages or num_stages) is not None:
            opts["num_stages"] = self.num_stages or num_stages
        return opts


_DEFAULT = Tiles()


def _pow2_at_least(n: int, lo: int = 16) -> int:
    return max(lo, 1 << (max(1, int(n)) - 1).bit_length())


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _dot_precision(dtype):
    return "ieee" if dtype == torch.float32 else "tf32"


def _gpu_tiles(t: torch.Tensor) -> bool:
    """CUDA's tile sizes: on CUDA, and on CPU under ``MRT_TRITON_CPU=1`` (the GPU's launch shapes, and
    fewer, larger tiles for the interpreter); else the small CPU tiles the interpreter tests use."""
    return t.is_cuda or triton_on_cpu()


def _check_dtype(*tensors):
    for t in tensors:
        check(t.is_cuda or t.dtype != torch.bfloat16,
              "bf16 is not supported by the Triton CPU interpreter (numpy has no bf16): use fp16/fp32 or backend='torch'")
        check(t.dtype == tensors[0].dtype, f"q/k/v dtypes differ: {[x.dtype for x in tensors]}")


def prefix_suffix_attention_triton(q, k_suffix, v_suffix, k_prefix, v_prefix, *, suffix_indptr, prefix_start, cuts,
                                   scale, max_suffix_len=None, validate=True, return_lse=False, tiles: Tiles = _DEFAULT):
    """Triton path of ``prefix_suffix_attention`` -> out [S, Hq, D] (and lse [S, Hq] fp32 if asked).

    With device-resident metadata, ``validate=False`` and ``max_suffix_len`` the call makes no
    host sync (checks done once per step by the planner instead). ``tiles`` overrides the tile
    shape (tuning).
    """
    check_scoring_inputs(q, k_suffix, v_suffix, k_prefix, v_prefix, suffix_indptr, prefix_start, cuts, values=validate)
    _check_dtype(q, k_suffix, v_suffix, k_prefix, v_prefix)
    S, hq, d = q.shape
    hkv = k_suffix.shape[1]
    n = prefix_start.shape[0]
    q, k_suffix, v_suffix, k_prefix, v_prefix = (t.contiguous() for t in (q, k_suffix, v_suffix, k_prefix, v_prefix))
    out = torch.empty_like(q)  # [S, Hq, D]
    lse = torch.empty(S, hq, dtype=torch.float32, device=q.device)
    if max_suffix_len is None:
        max_suffix_len = int((suffix_indptr[1:] - suffix_indptr[:-1]).max()) if n else 0  # host sync
    if n == 0 or S == 0 or max_suffix_len == 0:
        return (out, lse) if return_lse else out
    ratio = hq // hkv
    max_rows = max_suffix_len * ratio  # (token, q head) rows of the longest suffix
    block_q = tiles.block_q or min(128 if _gpu_tiles(q) else 16, _pow2_at_least(max_rows))
    block_n = tiles.block_n or (64 if _gpu_tiles(q) else 16)
    grid = (n, _cdiv(max_rows, block_q), hkv)
    _kernels.load().prefix_suffix_attention_kernel[grid](
        q, k_suffix, v_suffix, k_prefix, v_prefix, out, lse,
        suffix_indptr.to(q.device, torch.int32).contiguous(), prefix_start.to(q.device, torch.int32).contiguous(),
        cuts.to(q.device, torch.int32).contiguous(),
        q.stride(0), k_suffix.stride(0), out.stride(0), float(scale),
        NUM_Q_HEADS=hq, GQA_RATIO=ratio, HEAD_DIM=d, BLOCK_D=_pow2_at_least(d), BLOCK_Q=block_q, BLOCK_N=block_n,
        DOT_PRECISION=_dot_precision(q.dtype),
        **tiles.launch_options((8 if block_q >= 128 else 4) if q.is_cuda else 1))
    return (out, lse) if return_lse else out


def paged_prefill_attention_triton(q, k_cache, v_cache, *, q_indptr, block_tables, cached_lens, scale, max_q_len=None,
                                   validate=True, return_lse=False, tiles: Tiles = _DEFAULT):
    """Triton path of ``paged_prefill_attention`` -> out [T, Hq, D] (and lse [T, Hq] fp32 if asked).

    One launch for every chunk of a prefill step. With device-resident metadata,
    ``validate=False`` and ``max_q_len`` (host int: the longest chunk) the call makes no host sync.
    """
    check(k_cache.is_contiguous() and v_cache.is_contiguous(),
          "k_cache/v_cache must be contiguous [num_blocks, block_size, Hkv, D] tensors")
    check_prefill_inputs(q, k_cache, v_cache, q_indptr, block_tables, cached_lens, values=validate)
    _check_dtype(q, k_cache, v_cache)
    T, hq, d = q.shape
    n = cached_lens.shape[0]
    block_size, hkv = k_cache.shape[1], k_cache.shape[2]
    q = q.contiguous()
    out = torch.empty_like(q)  # [T, Hq, D]
    lse = torch.empty(T, hq, dtype=torch.float32, device=q.device)
    if max_q_len is None:
        max_q_len = int((q_indptr[1:] - q_indptr[:-1]).max()) if n else 0  # host sync
    if n == 0 or T == 0 or max_q_len == 0:
        return (out, lse) if return_lse else out
    ratio = hq // hkv
    max_rows = max_q_len * ratio
    block_q = tiles.block_q or min(128 if _gpu_tiles(q) else 16, _pow2_at_least(max_rows))
    block_n = tiles.block_n or (64 if _gpu_tiles(q) else 16)
    tables = block_tables.to(q.device, torch.int32).contiguous()
    _kernels.load().paged_prefill_kernel[(n, _cdiv(max_rows, block_q), hkv)](
        q, k_cache, v_cache, out, lse, q_indptr.to(q.device, torch.int32).contiguous(), tables,
        cached_lens.to(q.device, torch.int32).contiguous(),
        q.stride(0), out.stride(0), k_cache.stride(0), k_cache.stride(1), tables.stride(0), float(scale),
        NUM_Q_HEADS=hq, GQA_RATIO=ratio, HEAD_DIM=d, BLOCK_D=_pow2_at_least(d), BLOCK_Q=block_q, BLOCK_N=block_n,
        KV_BLOCK_SIZE=block_size, DOT_PRECISION=_dot_precision(q.dtype),
        **tiles.launch_options((8 if block_q >= 128 else 4) if q.is_cuda else 1))
    return (out, lse) if return_lse else out


def grouped_paged_decode_triton(q, k_cache, v_cache, *, group_indptr, block_tables, lens, scale, num_splits=None,
                                max_len=None, max_group_size=None, tiles: Tiles = _DEFAULT):
    """State of one decode step where group g's queries share blocks ``block_tables[g]``.

    q [B, Hq, D]; group_indptr [G+1]; block_tables [G, max_blocks]; lens [G] ->
    (out [B, Hq, D] fp32, lse [B, Hq] fp32). ``num_splits`` splits each key range (split-KV).
    ``max_len`` / ``max_group_size`` (host ints) spare the device syncs that size the grid.
    ``tiles`` overrides the tile shape (tuning).
    """
    check(k_cache.is_contiguous() and v_cache.is_contiguous(),
          "k_cache/v_cache must be contiguous [num_blocks, block_size, Hkv, D] tensors")
    _check_dtype(q, k_cache, v_cache)
    B, hq, d = q.shape
    G = lens.shape[0]
    block_size, hkv = k_cache.shape[1], k_cache.shape[2]
    ratio = hq // hkv
    if max_group_size is None:
        max_group_size = int((group_indptr[1:] - group_indptr[:-1]).max()) if G else 0
    max_rows = max_group_size * ratio
    if max_len is None:
        max_len = int(lens.max()) if G else 0
    q = q.contiguous()
    block_q = tiles.block_q or min(64, _pow2_at_least(max_rows))
    # 64 keys a step, 3 stages deep on CUDA: the sweep (bench/tools/tune_kernels.py, H200, 4 groups x 64
    # branches sharing 8K tokens) put it at 0.51 ms against 0.77 ms for 32 keys and the default depth.
    block_n = tiles.block_n or _pow2_at_least(block_size, 64 if _gpu_tiles(q) else 16)
    num_q_blocks = _cdiv(max(max_rows, 1), block_q)
    if num_splits is None:
        num_splits = 1
        if q.is_cuda and max_len > 0:
            num_splits = max(1, min(_cdiv(max_len, 4 * block_n), _cdiv(_GPU_TARGET_PROGRAMS, G * hkv * num_q_blocks)))
    tokens_per_split = max(block_n, _cdiv(_cdiv(max(max_len, 1), num_splits), block_n) * block_n)
    num_splits = max(1, _cdiv(max(max_len, 1), tokens_per_split))
    if B == 0 or G == 0 or max_len == 0:  # nothing to attend: the empty state
        return (torch.zeros(B, hq, d, dtype=torch.float32, device=q.device),
                torch.full((B, hq), float("-inf"), dtype=torch.float32, device=q.device))
    out = torch.empty(num_splits, B, hq, d, dtype=torch.float32, device=q.device)  # [splits, B, Hq, D]
    lse = torch.full((num_splits, B, hq), float("-inf"), dtype=torch.float32, device=q.device)
    tables = block_tables.to(q.device, torch.int32).contiguous()
    _kernels.load().grouped_paged_decode_kernel[(G, hkv, num_q_blocks * num_splits)](
        q, k_cache, v_cache, out, lse, group_indptr.to(q.device, torch.int32).contiguous(), tables,
        lens.to(q.device, torch.int32).contiguous(),
        q.stride(0), k_cache.stride(0), k_cache.stride(1), tables.stride(0), tokens_per_split, num_splits, B,
        float(scale),
        NUM_Q_HEADS=hq, GQA_RATIO=ratio, HEAD_DIM=d, BLOCK_D=_pow2_at_least(d), BLOCK_Q=block_q, BLOCK_N=block_n,
        KV_BLOCK_SIZE=block_size, DOT_PRECISION=_dot_precision(q.dtype),
        **tiles.launch_options(4 if q.is_cuda else 1, num_stages=3 if q.is_cuda else None))
    if num_splits == 1:
        return out[0], lse[0]
    return merge_states(out, lse)


def cascade_decode_attention_triton(q, k_cache, v_cache, *, work, scale, return_lse=False, tiles: Tiles = _DEFAULT):
    """Cascade decode as one launch over ``work`` (an ``ops.plan.CascadeWork`` on q's device)
    and one merge launch -> out [B, Hq, D] (dtype of q) (and lse [B, Hq] fp32 if asked).

    No host sync: every size comes from the host-built work list. ``tiles.block_n`` /
    ``num_warps`` / ``num_stages`` tune the main kernel; its rows per program are the plan's
    ``work.block_q``.
    """
    check(k_cache.is_contiguous() and v_cache.is_contiguous(),
          "k_cache/v_cache must be contiguous [num_blocks, block_size, Hkv, D] tensors")
    _check_dtype(q, k_cache, v_cache)
    B, hq, d = q.shape
    block_size, hkv = k_cache.shape[1], k_cache.shape[2]
    check(hq % hkv == 0 and k_cache.shape[3] == d, f"q {tuple(q.shape)} does not fit cache heads/dim "
                                                   f"{tuple(k_cache.shape[2:])}")
    check(work.merge_indptr.shape[0] == B + 1, f"the work list was planned for {work.merge_indptr.shape[0] - 1} "
                                               f"sequences, q has {B}")
    ratio = hq // hkv
    q = q.contiguous()
    part_o = torch.empty(max(1, work.num_partials), hq, d, dtype=torch.float32, device=q.device)  # [P, Hq, D]
    part_lse = torch.empty(max(1, work.num_partials), hq, dtype=torch.float32, device=q.device)  # [P, Hq]
    block_d = _pow2_at_least(d)
    num_items = work.items.shape[0]
    if num_items:
        block_n = tiles.block_n or _pow2_at_least(block_size, 64 if _gpu_tiles(q) else 16)
        _kernels.load().cascade_decode_kernel[(num_items, hkv)](
            q, k_cache, v_cache, part_o, part_lse, work.items, work.tables,
            q.stride(0), k_cache.stride(0), k_cache.stride(1), work.tables.stride(0), float(scale),
            NUM_Q_HEADS=hq, GQA_RATIO=ratio, HEAD_DIM=d, BLOCK_D=block_d, BLOCK_Q=work.block_q, BLOCK_N=block_n,
            KV_BLOCK_SIZE=block_size, DOT_PRECISION=_dot_precision(q.dtype),
            **tiles.launch_options(4 if q.is_cuda else 1, num_stages=3 if q.is_cuda else None))
    out = torch.empty_like(q)  # [B, Hq, D]
    lse = torch.empty(B, hq, dtype=torch.float32, device=q.device)
    if B:
        block_h = min(_pow2_at_least(hq, 1), max(1, 4096 // block_d))  # a [heads, D] tile of <= 4K fp32
        _kernels.load().merge_partials_kernel[(B, _cdiv(hq, block_h))](
            part_o, part_lse, work.merge_indptr, work.merge_rows, out, lse, out.stride(0),
            NUM_Q_HEADS=hq, HEAD_DIM=d, BLOCK_H=block_h, BLOCK_D=block_d, num_warps=4 if q.is_cuda else 1)
    return (out, lse) if return_lse else out


def paged_decode_attention_triton(q, k_cache, v_cache, *, block_tables, context_lens, scale, num_splits=None,
                                  max_context_len=None, validate=True, return_lse=False):
    """Triton path of ``paged_decode_attention`` (each sequence its own group of one).

    ``validate=False`` with ``max_context_len`` (host int) makes no host sync.
    """
    check_paged_inputs(q, k_cache, v_cache, block_tables, context_lens, "paged_decode_attention", values=validate)
    B = q.shape[0]
    groups = torch.arange(B + 1, dtype=torch.int32, device=q.device)
    out, lse = grouped_paged_decode_triton(q, k_cache, v_cache, group_indptr=groups, block_tables=block_tables,
                                           lens=context_lens, scale=scale, num_splits=num_splits,
                                           max_len=max_context_len, max_group_size=1)
    return (out.to(q.dtype), lse) if return_lse else out.to(q.dtype)


def branch_decode_attention_triton(q, k_cache, v_cache, *, group_indptr, shared_block_tables, shared_lens,
                                   tail_block_tables, tail_lens, scale, num_splits=None, max_shared_len=None,
                                   max_tail_len=None, max_group_size=None, validate=True, return_lse=False,
                                   tiles: Tiles = _DEFAULT):
    """Triton path of ``branch_decode_attention``: grouped shared pass + per-sequence tails, merged.

    ``validate=False`` with the three ``max_*`` host ints (``DecodePlan`` carries them) makes no
    host sync. ``tiles`` overrides the shared pass's tile shape (tuning).
    """
    B = q.shape[0]
    check_branch_inputs(q, k_cache, v_cache, group_indptr, shared_block_tables, shared_lens, tail_block_tables,
                        tail_lens, values=validate)
    o_s, l_s = grouped_paged_decode_triton(q, k_cache, v_cache, group_indptr=group_indptr,
                                           block_tables=shared_block_tables, lens=shared_lens, scale=scale,
                                           num_splits=num_splits, max_len=max_shared_len, max_group_size=max_group_size,
                                           tiles=tiles)
    singles = torch.arange(B + 1, dtype=torch.int32, device=q.device)
    o_t, l_t = grouped_paged_decode_triton(q, k_cache, v_cache, group_indptr=singles, block_tables=tail_block_tables,
                                           lens=tail_lens, scale=scale, num_splits=num_splits, max_len=max_tail_len,
                                           max_group_size=1)
    out, lse = merge_state(o_s, l_s, o_t, l_t)
    return (out.to(q.dtype), lse) if return_lse else out.to(q.dtype)
