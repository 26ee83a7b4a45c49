"""Pure-Python planner (the fallback of csrc/planner.cpp; both must agree exactly).

Plain lists in, plain lists out (a dict of named int lists): ``plan.py`` turns them into
tensors. Any change here must be mirrored in csrc/planner.cpp (tests compare both on random
inputs).
"""
from __future__ import annotations


def trace_representatives(trace_tokens):
    """rep[i] = the trace whose rows serve trace i: i itself, or a trace it is a prefix of.

    Traces are sorted lexicographically (stable); a trace that is a prefix of its successor is
    a prefix of every trace up to the chain's end, whose rows then serve the whole chain.
    """
    n = len(trace_tokens)
    order = sorted(range(n), key=lambda i: trace_tokens[i])
    rep = list(range(n))
    for k in range(n - 2, -1, -1):
        a, b = order[k], order[k + 1]
        ta, tb = trace_tokens[a], trace_tokens[b]
        if len(ta) <= len(tb) and list(tb[: len(ta)]) == list(ta):
            rep[a] = rep[b]
    return rep


def plan_scoring_lists(trace_lens, cuts_per_trace, suffix_lens, trace_tokens):
    """Index lists of a scoring batch; ``suffix_lens`` nested like ``cuts_per_trace``;
    ``trace_tokens`` a list of token lists, or empty for no cross-trace dedup."""
    num_traces = len(trace_lens)
    rep = trace_representatives(trace_tokens) if trace_tokens else list(range(num_traces))
    slot_of_rep = {}
    unique_traces = []
    for i in range(num_traces):
        r = rep[i]
        if r not in slot_of_rep:
            slot_of_rep[r] = len(unique_traces)
            unique_traces.append(r)
    trace_slot = [slot_of_rep[rep[i]] for i in range(num_traces)]
    trace_indptr = [0]
    for r in unique_traces:
        trace_indptr.append(trace_indptr[-1] + trace_lens[r])
    suffix_indptr, prefix_start, cuts, suffix_positions = [0], [], [], []
    for i in range(num_traces):
        for k, cut in enumerate(cuts_per_trace[i]):
            n = suffix_lens[i][k]
            suffix_indptr.append(suffix_indptr[-1] + n)
            prefix_start.append(trace_indptr[trace_slot[i]])
            cuts.append(cut)
            suffix_positions.extend(range(cut, cut + n))
    return dict(trace_indptr=trace_indptr, unique_traces=unique_traces, suffix_indptr=suffix_indptr,
                prefix_start=prefix_start, cuts=cuts, suffix_positions=suffix_positions)


def _common_prefix(a, b, limit):
    n = 0
    while n < limit and n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def plan_decode_lists(block_tables, context_lens, block_size, group_ids):
    """Cascade groups of a decode batch: runs of consecutive sequences sharing leading full blocks.

    With ``group_ids`` (one per sequence), runs are consecutive equal ids; otherwise a run
    grows while the members still share at least one full block and at least half of the
    blocks the run shared before (so one stray sequence does not shrink a long shared prefix).
    A run of one sequence puts all its full blocks in the shared pass too: the tails then hold
    at most the partial last blocks of singletons, so a batched torch pass over the tails
    (padded to the longest) stays short; for the Triton kernel either place costs the same.
    """
    num_seqs = len(block_tables)
    full = [context_lens[b] // block_size for b in range(num_seqs)]  # full blocks of each sequence
    group_indptr, shared_blocks = [0], []
    b = 0
    while b < num_seqs:
        common = min(full[b], len(block_tables[b]))
        e = b + 1
        while e < num_seqs:
            if group_ids:
                if group_ids[e] != group_ids[b]:
                    break
                common = _common_prefix(block_tables[b], block_tables[e], min(common, full[e]))
            else:
                new = _common_prefix(block_tables[b], block_tables[e], min(common, full[e]))
                if new < 1 or 2 * new < common:
                    break
                common = new
            e += 1
        shared_blocks.append(common)
        group_indptr.append(e)
        b = e
    shared_tables = [list(block_tables[group_indptr[g]][: shared_blocks[g]]) for g in range(len(shared_blocks))]
    shared_lens = [s * block_size for s in shared_blocks]
    tail_tables, tail_lens = [], []
    for g in range(len(shared_blocks)):
        for s in range(group_indptr[g], group_indptr[g + 1]):
            used = -(-context_lens[s] // block_size)
            tail_tables.append(list(block_tables[s][shared_blocks[g]:used]))
            tail_lens.append(context_lens[s] - shared_lens[g])
    return dict(group_indptr=group_indptr, shared_block_tables=shared_tables, shared_lens=shared_lens,
                tail_block_tables=tail_tables, tail_lens=tail_lens)
