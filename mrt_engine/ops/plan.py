"""Planning: host-side index tensors built once per step (plan), read by the kernels per layer (run).

``plan_scoring`` lays out a shared-prefix scoring batch (packed traces, suffixes attached at
cuts) and ``plan_decode`` groups a decode batch for cascade attention. Both run in C++
(``mrt_engine._C``, chosen once at import through ``mrt_engine._native``) or in Python
(``plan_py``); the two agree exactly. Returned tensors are int32 on the CPU; move them to
the device once per step.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, fields, replace
from typing import Sequence

import torch

from mrt_engine._native import native

from ._dispatch import check
from . import plan_py

_NATIVE_SCORING = native is not None and hasattr(native, "plan_scoring")
_NATIVE_DECODE = native is not None and hasattr(native, "plan_decode")
# The index lists both planners return (named, so an extension built from older sources
# that returns more lists still loads; tests compare the two planners).
_SCORING_LISTS = ("trace_indptr", "unique_traces", "suffix_indptr", "prefix_start", "cuts", "suffix_positions")


@dataclass(frozen=True)
class ScoringPlan:
    """Layout of one scoring batch (T traces, U unique after dedup, N suffixes, S suffix tokens).

    Prefill ``unique_traces`` back to back (rows ``trace_indptr[u]:trace_indptr[u+1]``) to get
    ``k_prefix/v_prefix [L, Hkv, D]``; pack the suffixes in plan order (trace by trace, cut by
    cut) with RoPE positions ``suffix_positions``; then call ``prefix_suffix_attention`` with
    ``suffix_indptr``, ``prefix_start``, ``cuts``, ``max_suffix_len``.
    """

    trace_indptr: torch.Tensor  # [U+1] packed prefix rows of each unique trace
    unique_traces: torch.Tensor  # [U] original trace index prefilled in slot u
    suffix_indptr: torch.Tensor  # [N+1]
    prefix_start: torch.Tensor  # [N] first prefix row of suffix i's trace (dedup: the rows of a trace it prefixes)
    cuts: torch.Tensor  # [N] prefix tokens suffix i attends (the cut, in tokens)
    suffix_positions: torch.Tensor  # [S] position of each suffix token (cut + offset)
    max_suffix_len: int
    num_prefix_tokens: int  # L
    num_suffix_tokens: int  # S

    def to(self, device) -> "ScoringPlan":
        """The same plan with its tensors on ``device`` (once per step, not per layer)."""
        return _to(self, device)

    def attention_args(self) -> dict:
        """Keyword arguments of ``prefix_suffix_attention`` (metadata + host-side hints).

        Checks ran in the planner, so ``validate=False``: with the plan on the device the
        Triton call then makes no host sync.
        """
        return dict(suffix_indptr=self.suffix_indptr, prefix_start=self.prefix_start, cuts=self.cuts,
                    max_suffix_len=self.max_suffix_len, validate=False)


@dataclass(frozen=True)
class DecodePlan:
    """Cascade layout of one decode step (B sequences in G groups); feeds ``branch_decode_attention``."""

    group_indptr: torch.Tensor  # [G+1] sequences group_indptr[g]:group_indptr[g+1] share a prefix
    shared_block_tables: torch.Tensor  # [G, max_shared] (padded with 0)
    shared_lens: torch.Tensor  # [G] shared tokens (whole blocks)
    tail_block_tables: torch.Tensor  # [B, max_tail] (padded with 0)
    tail_lens: torch.Tensor  # [B]
    max_shared_len: int
    max_tail_len: int
    max_group_size: int

    def to(self, device) -> "DecodePlan":
        """The same plan with its tensors on ``device`` (once per step, not per layer)."""
        return _to(self, device)

    def attention_args(self) -> dict:
        """Keyword arguments of ``branch_decode_attention`` (metadata + host-side hints).

        Block ids must be valid cache blocks: ``validate=False`` skips the per-call range checks.
        """
        return dict(group_indptr=self.group_indptr, shared_block_tables=self.shared_block_tables,
                    shared_lens=self.shared_lens, tail_block_tables=self.tail_block_tables, tail_lens=self.tail_lens,
                    max_shared_len=self.max_shared_len, max_tail_len=self.max_tail_len,
                    max_group_size=self.max_group_size, validate=False)


def _to(plan, device):
    return replace(plan, **{f.name: getattr(plan, f.name).to(device) for f in fields(plan)
                            if torch.is_tensor(getattr(plan, f.name))})


def _i32(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32)


def _padded(rows) -> torch.Tensor:
    """Rows of ints -> [n, width] int32, padded with 0 (one tensor build: this runs every decode step)."""
    width = max(1, max((len(r) for r in rows), default=0))
    if not rows:
        return torch.zeros(0, width, dtype=torch.int32)
    return torch.tensor([list(r) + [0] * (width - len(r)) for r in rows], dtype=torch.int32)  # [n, width]


def plan_scoring(trace_lens: Sequence[int], cuts_per_trace: Sequence[Sequence[int]],
                 suffix_lens: int | Sequence[Sequence[int]], *, trace_tokens: Sequence[Sequence[int]] | None = None,
                 use_native: bool | None = None) -> ScoringPlan:
    """Build the scoring layout.

    trace_lens [T]; cuts_per_trace[t] = token cuts of trace t (each in ``[0, trace_lens[t]]``);
    suffix_lens = one int for every suffix, or nested like ``cuts_per_trace``. With
    ``trace_tokens`` (token ids per trace), a trace equal to or a prefix of another trace is
    served from that trace's rows, so identical prefixes are prefilled once.
    """
    trace_lens = [int(n) for n in trace_lens]
    check(len(cuts_per_trace) == len(trace_lens),
          f"cuts_per_trace has {len(cuts_per_trace)} entries for {len(trace_lens)} traces")
    cuts = [[int(c) for c in cs] for cs in cuts_per_trace]
    if isinstance(suffix_lens, numbers.Integral) or (torch.is_tensor(suffix_lens) and suffix_lens.dim() == 0):
        sl = [[int(suffix_lens)] * len(cs) for cs in cuts]
    else:
        sl = [[int(n) for n in ns] for ns in suffix_lens]
        check(len(sl) == len(cuts) and all(len(a) == len(b) for a, b in zip(sl, cuts)),
              "suffix_lens must be an int or nested exactly like cuts_per_trace (one length per cut)")
    for t, (n, cs) in enumerate(zip(trace_lens, cuts)):
        check(n >= 0, f"trace_lens[{t}] = {n} is negative")
        bad = [c for c in cs if not 0 <= c <= n]
        check(not bad, f"trace {t}: cuts {bad} outside [0, trace_lens[{t}]={n}]")
    bad = [(t, k) for t, ns in enumerate(sl) for k, n in enumerate(ns) if n < 1]
    check(not bad, f"suffix_lens must be >= 1 (nothing to score otherwise); bad (trace, cut index): {bad[:5]}")
    tokens = []
    if trace_tokens is not None:
        check(len(trace_tokens) == len(trace_lens), f"trace_tokens has {len(trace_tokens)} entries for {len(trace_lens)} traces")
        tokens = [[int(x) for x in ids] for ids in trace_tokens]
        bad = [t for t, (ids, n) in enumerate(zip(tokens, trace_lens)) if len(ids) != n]
        check(not bad, f"trace_tokens lengths differ from trace_lens for traces {bad[:5]}")
    native_ok = _NATIVE_SCORING if use_native is None else use_native
    check(not (use_native and not _NATIVE_SCORING), "use_native=True but mrt_engine._C (plan_scoring) is not built")
    lists = (native.plan_scoring(trace_lens, cuts, sl, tokens) if native_ok
             else plan_py.plan_scoring_lists(trace_lens, cuts, sl, tokens))
    suffix_indptr = lists["suffix_indptr"]
    return ScoringPlan(
        **{k: _i32(lists[k]) for k in _SCORING_LISTS},
        max_suffix_len=max((b - a for a, b in zip(suffix_indptr, suffix_indptr[1:])), default=0),
        num_prefix_tokens=lists["trace_indptr"][-1], num_suffix_tokens=suffix_indptr[-1],
    )


def plan_decode(block_tables: Sequence[Sequence[int]], context_lens: Sequence[int], *, block_size: int,
                group_ids: Sequence[int] | None = None, use_native: bool | None = None) -> DecodePlan:
    """Group a decode batch for cascade attention.

    block_tables[b] = the cache blocks of sequence b in order; context_lens[b] = its cached
    tokens. Sequences next to each other that start with the same full blocks form a group
    (or, with ``group_ids``, runs of equal ids do); the common full blocks become the group's
    shared prefix, the rest each sequence's tail. A group of one puts all its full blocks in
    the shared pass, so tails stay short (the torch reference pads the tails to the longest).
    """
    check(block_size >= 1, f"block_size must be >= 1; got {block_size}")
    tables = [[int(x) for x in t] for t in block_tables]
    lens = [int(n) for n in context_lens]
    check(len(tables) == len(lens), f"{len(tables)} block tables for {len(lens)} context_lens")
    bad = [b for b, (t, n) in enumerate(zip(tables, lens)) if not 0 <= n <= len(t) * block_size]
    check(not bad, f"context_lens exceed their block tables (or are negative) for sequences {bad[:5]}")
    gids = []
    if group_ids is not None:
        check(len(group_ids) == len(lens), f"group_ids has {len(group_ids)} entries for {len(lens)} sequences")
        gids = [int(g) for g in group_ids]
    native_ok = _NATIVE_DECODE if use_native is None else use_native
    check(not (use_native and not _NATIVE_DECODE), "use_native=True but mrt_engine._C (plan_decode) is not built")
    lists = (native.plan_decode(tables, lens, int(block_size), gids) if native_ok
             else plan_py.plan_decode_lists(tables, lens, int(block_size), gids))
    gi = lists["group_indptr"]
    return DecodePlan(
        group_indptr=_i32(gi), shared_block_tables=_padded(lists["shared_block_tables"]),
        shared_lens=_i32(lists["shared_lens"]), tail_block_tables=_padded(lists["tail_block_tables"]),
        tail_lens=_i32(lists["tail_lens"]), max_shared_len=max(lists["shared_lens"], default=0),
        max_tail_len=max(lists["tail_lens"], default=0), max_group_size=max((b - a for a, b in zip(gi, gi[1:])), default=0),
    )


@dataclass(frozen=True)
class CascadeWork:
    """A decode step's cascade attention as one work list (``plan_cascade_work``); feeds
    ``branch_decode_attention(..., work=)`` on the Triton path: one launch over the items, one
    merge launch.

    Item w (a row of ``items``) is one program per kv head: the queries of sequences
    ``first_seq : first_seq + num_seqs`` (x GQA heads: at most ``block_q`` rows, so a group's
    members share each K/V tile they read) attend keys ``key_lo : key_hi`` of table row
    ``table_row`` and write their partial states to rows ``partial_row : partial_row + num_seqs``.
    The merge combines sequence b's partial rows ``merge_rows[merge_indptr[b]:merge_indptr[b+1]]``.
    """

    items: torch.Tensor  # [W, 6] (first_seq, num_seqs, table_row, key_lo, key_hi, partial_row), longest first
    tables: torch.Tensor  # [G + B, width]: the G groups' shared blocks, then the B sequences' tail blocks
    merge_indptr: torch.Tensor  # [B+1]
    merge_rows: torch.Tensor  # [E] partial rows, sequence by sequence
    num_partials: int  # P rows of partial states
    block_q: int  # rows (sequence, q head) per program: a power of two >= 16
    chunk_tokens: int  # the longest key range of one item

    def to(self, device) -> "CascadeWork":
        """The same work list with its tensors on ``device`` (once per step, not per layer)."""
        return _to(self, device)


def plan_cascade_work(plan: DecodePlan, *, gqa_ratio: int, num_kv_heads: int, max_rows: int = 64,
                      target_programs: int = 2 * 132, min_chunk_tokens: int = 256) -> CascadeWork:
    """Lay a ``DecodePlan`` (CPU tensors) out as a load-balanced work list.

    Every group's shared prefix and every sequence's tail is a key range read by one set of
    queries: a group's members together (up to ``max_rows`` (sequence, q head) rows, so each
    prefix byte is read once for them), a tail by its own sequence. Ranges longer than the
    chunk are cut into near-equal parts (split-KV), the chunk sized so the items fill about
    ``target_programs`` programs (``num_kv_heads`` per item; two waves of an H100/H200) and
    never shorter than ``min_chunk_tokens``. Items run longest first.
    """
    check(gqa_ratio >= 1 and num_kv_heads >= 1 and max_rows >= 1, "gqa_ratio, num_kv_heads and max_rows must be >= 1")
    gi = plan.group_indptr.tolist()
    shared, tails = plan.shared_lens.tolist(), plan.tail_lens.tolist()
    num_groups, num_seqs = len(shared), len(tails)
    seqs_per_item = max(1, max_rows // gqa_ratio)
    ranges = []  # (first_seq, num_seqs, table_row, num_keys) before the keys are split
    for g in range(num_groups):
        if shared[g]:
            for s0 in range(gi[g], gi[g + 1], seqs_per_item):
                ranges.append((s0, min(seqs_per_item, gi[g + 1] - s0), g, shared[g]))
    for b in range(num_seqs):
        if tails[b]:
            ranges.append((b, 1, num_groups + b, tails[b]))
    total = sum(n for *_, n in ranges)
    chunk = max(min_chunk_tokens, -(-total * num_kv_heads // max(1, target_programs)))
    items, partials = [], [[] for _ in range(num_seqs)]
    p = 0
    for s0, count, row, n in ranges:
        parts = -(-n // chunk)
        step = -(-(-(-n // parts)) // 16) * 16  # near-equal parts, whole 16-key tiles
        for lo in range(0, n, step):
            items.append((s0, count, row, lo, min(n, lo + step), p))
            for k in range(count):
                partials[s0 + k].append(p + k)
            p += count
    items.sort(key=lambda it: it[3] - it[4])  # longest key range first (stable)
    width = max(plan.shared_block_tables.shape[1], plan.tail_block_tables.shape[1])
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]))  # noqa: E731
    merge_indptr = [0]
    for rows in partials:
        merge_indptr.append(merge_indptr[-1] + len(rows))
    rows_per_item = max((it[1] for it in items), default=1) * gqa_ratio
    return CascadeWork(
        items=torch.tensor(items, dtype=torch.int32).reshape(-1, 6),
        tables=torch.cat([pad(plan.shared_block_tables), pad(plan.tail_block_tables)]).to(torch.int32),
        # (one entry at least: a kernel argument must not be an empty, null-pointer tensor)
        merge_indptr=_i32(merge_indptr), merge_rows=_i32([r for rows in partials for r in rows] or [0]),
        num_partials=p, block_q=max(16, 1 << (rows_per_item - 1).bit_length()),
        chunk_tokens=max((it[4] - it[3] for it in items), default=0))
