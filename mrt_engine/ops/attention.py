"""Attention ops: dispatch between the Triton kernels and the torch paths.

CUDA -> Triton. CPU -> ``prefix_suffix_attention_sdpa`` for scoring (PyTorch's fused CPU
attention) and the references for decode; ``backend="torch"`` forces the reference.
"""
from __future__ import annotations

from dataclasses import replace

from ._dispatch import interpreter_cache, interpreter_dtype, use_triton
from .attention_sdpa import prefix_suffix_attention_sdpa
from .attention_ref import (
    branch_decode_attention_reference,
    check_branch_inputs,
    paged_decode_attention_reference,
    paged_prefill_attention_reference,
    prefix_suffix_attention_reference,
)
from .attention_triton import (
    branch_decode_attention_triton,
    cascade_decode_attention_triton,
    paged_decode_attention_triton,
    paged_prefill_attention_triton,
    prefix_suffix_attention_triton,
)


def prefix_suffix_attention(q, k_suffix, v_suffix, k_prefix, v_prefix, *, suffix_indptr, prefix_start, cuts, scale,
                            max_suffix_len=None, validate=True, backend=None):
    """Shared-prefix scoring attention -> [S, Hq, D]; see ``prefix_suffix_attention_reference``.

    CUDA: the Triton kernel; CPU: ``prefix_suffix_attention_sdpa``; ``backend="torch"``: the
    reference (fp32, the oracle). ``validate=False`` (metadata checked once by the planner) skips the value checks; Triton
    only: ``max_suffix_len`` (host int, from the plan) removes the last host sync of each call.
    """
    kw = dict(suffix_indptr=suffix_indptr, prefix_start=prefix_start, cuts=cuts, scale=scale, validate=validate)
    if use_triton(backend, q, k_suffix, k_prefix):
        return prefix_suffix_attention_triton(*interpreter_dtype(q, k_suffix, v_suffix, k_prefix, v_prefix),
                                              max_suffix_len=max_suffix_len, **kw).to(q.dtype)
    if backend != "torch" and not q.is_cuda:
        return prefix_suffix_attention_sdpa(q, k_suffix, v_suffix, k_prefix, v_prefix, **kw)
    return prefix_suffix_attention_reference(q, k_suffix, v_suffix, k_prefix, v_prefix, **kw)


def paged_decode_attention(q, k_cache, v_cache, *, block_tables, context_lens, scale, max_context_len=None,
                           validate=True, backend=None):
    """One decode step over a paged KV cache -> [B, Hq, D]; see ``paged_decode_attention_reference``.

    ``validate=False`` skips the value checks; Triton only: ``max_context_len`` (host int)
    removes the last host sync.
    """
    kw = dict(block_tables=block_tables, context_lens=context_lens, scale=scale, validate=validate)
    if use_triton(backend, q, k_cache):
        k, v, tables = interpreter_cache(k_cache, v_cache, block_tables)
        return paged_decode_attention_triton(*interpreter_dtype(q), k, v, max_context_len=max_context_len,
                                             **dict(kw, block_tables=tables)).to(q.dtype)
    return paged_decode_attention_reference(q, k_cache, v_cache, **kw)


def paged_prefill_attention(q, k_cache, v_cache, *, q_indptr, block_tables, cached_lens, scale, max_q_len=None,
                            validate=True, backend=None):
    """Causal prefill of packed chunks over a paged KV cache -> [T, Hq, D]; see the reference.

    The engine's prefill on CUDA: one launch per layer for every chunk of a step (the chunks'
    K/V are written to the cache first). ``validate=False`` skips the value checks; Triton
    only: ``max_q_len`` (host int) removes the last host sync.
    """
    kw = dict(q_indptr=q_indptr, cached_lens=cached_lens, scale=scale, validate=validate)
    if use_triton(backend, q, k_cache):
        k, v, tables = interpreter_cache(k_cache, v_cache, block_tables)
        return paged_prefill_attention_triton(*interpreter_dtype(q), k, v, block_tables=tables, max_q_len=max_q_len,
                                              **kw).to(q.dtype)
    return paged_prefill_attention_reference(q, k_cache, v_cache, block_tables=block_tables, **kw)


def branch_decode_attention(q, k_cache, v_cache, *, group_indptr, shared_block_tables, shared_lens,
                            tail_block_tables, tail_lens, scale, max_shared_len=None, max_tail_len=None,
                            max_group_size=None, validate=True, backend=None, work=None):
    """Cascade decode (shared prefix read once per group) -> [B, Hq, D]; see the reference.

    ``validate=False`` skips the value checks (``DecodePlan.attention_args()`` passes it);
    Triton only: the ``max_*`` host ints remove the last host syncs of each call. ``work``
    (``ops.plan_cascade_work`` of the same plan, on q's device), Triton only: the whole cascade
    in one launch over the work list plus one merge launch, instead of a grouped pass, a tail
    pass and torch merges; the torch paths ignore it.
    """
    kw = dict(group_indptr=group_indptr, shared_block_tables=shared_block_tables, shared_lens=shared_lens,
              tail_block_tables=tail_block_tables, tail_lens=tail_lens, scale=scale, validate=validate)
    if work is not None and use_triton(backend, q, k_cache):
        if validate:
            check_branch_inputs(q, k_cache, v_cache, group_indptr, shared_block_tables, shared_lens,
                                tail_block_tables, tail_lens)
        k, v, tables = interpreter_cache(k_cache, v_cache, work.tables)
        return cascade_decode_attention_triton(*interpreter_dtype(q), k, v, work=replace(work, tables=tables),
                                               scale=scale).to(q.dtype)
    if use_triton(backend, q, k_cache):
        k, v, shared, tail = interpreter_cache(k_cache, v_cache, shared_block_tables, tail_block_tables)
        return branch_decode_attention_triton(*interpreter_dtype(q), k, v, max_shared_len=max_shared_len,
                                              max_tail_len=max_tail_len, max_group_size=max_group_size,
                                              **dict(kw, shared_block_tables=shared, tail_block_tables=tail)).to(q.dtype)
    return branch_decode_attention_reference(q, k_cache, v_cache, **kw)
