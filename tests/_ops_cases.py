"""Random inputs for the ops tests (odd shapes, edge cases), shared by reference and kernel tests."""
import torch


def scoring_case(prefix_lens, cuts, suffix_lens, hq, hkv, d, dtype=torch.float32, seed=0):
    """Packed traces (lens prefix_lens) and suffixes attached at (trace, cut) pairs.

    cuts: list of (trace_index, cut) per suffix; suffix_lens: one per suffix.
    """
    g = torch.Generator().manual_seed(seed)
    L, S = sum(prefix_lens), sum(suffix_lens)
    trace_start = [0]
    for n in prefix_lens:
        trace_start.append(trace_start[-1] + n)
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)
    return dict(
        q=r(S, hq, d), k_suffix=r(S, hkv, d), v_suffix=r(S, hkv, d), k_prefix=r(L, hkv, d), v_prefix=r(L, hkv, d),
        suffix_indptr=torch.tensor([0] + list(torch.tensor(suffix_lens).cumsum(0).tolist()), dtype=torch.int32),
        prefix_start=torch.tensor([trace_start[t] for t, _ in cuts], dtype=torch.int32),
        cuts=torch.tensor([c for _, c in cuts], dtype=torch.int32),
        scale=d ** -0.5,
    )


def paged_case(context_lens, block_size, hq, hkv, d, dtype=torch.float32, seed=0, extra_blocks=3):
    """Random cache; each sequence gets shuffled, distinct blocks; tables padded with -1."""
    g = torch.Generator().manual_seed(seed)
    need = [-(-n // block_size) for n in context_lens]
    num_blocks = sum(need) + extra_blocks
    perm = torch.randperm(num_blocks, generator=g).tolist()
    width = max(1, max(need))
    tables = torch.full((len(context_lens), width), -1, dtype=torch.int32)
    at = 0
    for b, k in enumerate(need):
        tables[b, :k] = torch.tensor(perm[at:at + k], dtype=torch.int32)
        at += k
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)
    return dict(
        q=r(len(context_lens), hq, d), k_cache=r(num_blocks, block_size, hkv, d), v_cache=r(num_blocks, block_size, hkv, d),
        block_tables=tables, context_lens=torch.tensor(context_lens, dtype=torch.int32), scale=d ** -0.5,
    )


def branch_case(group_sizes, shared_lens, tail_lens, block_size, hq, hkv, d, dtype=torch.float32, seed=0):
    """Groups of branches: shared prefix blocks per group (block-aligned), distinct tail blocks."""
    g = torch.Generator().manual_seed(seed)
    B = sum(group_sizes)
    s_need = [-(-n // block_size) for n in shared_lens]
    t_need = [-(-n // block_size) for n in tail_lens]
    num_blocks = sum(s_need) + sum(t_need) + 2
    perm = torch.randperm(num_blocks, generator=g).tolist()
    st = torch.full((len(group_sizes), max(1, max(s_need, default=0))), -1, dtype=torch.int32)
    tt = torch.full((B, max(1, max(t_need, default=0))), -1, dtype=torch.int32)
    at = 0
    for i, k in enumerate(s_need):
        st[i, :k] = torch.tensor(perm[at:at + k], dtype=torch.int32)
        at += k
    for i, k in enumerate(t_need):
        tt[i, :k] = torch.tensor(perm[at:at + k], dtype=torch.int32)
        at += k
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)
    return dict(
        q=r(B, hq, d), k_cache=r(num_blocks, block_size, hkv, d), v_cache=r(num_blocks, block_size, hkv, d),
        group_indptr=torch.tensor([0] + torch.tensor(group_sizes).cumsum(0).tolist(), dtype=torch.int32),
        shared_block_tables=st, shared_lens=torch.tensor(shared_lens, dtype=torch.int32),
        tail_block_tables=tt, tail_lens=torch.tensor(tail_lens, dtype=torch.int32), scale=d ** -0.5,
    )
