"""Test support for the ops: random cases with odd shapes and float64 plain oracles.

The oracles materialise everything (full ``[M, V]`` logits, full masks): tests only.
"""
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
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
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
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
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
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
    return dict(
        q=r(B, hq, d), k_cache=r(num_blocks, block_size, hkv, d), v_cache=r(num_blocks, block_size, hkv, d),
        group_indptr=torch.tensor([0] + torch.tensor(group_sizes).cumsum(0).tolist(), dtype=torch.int32),
        shared_block_tables=st, shared_lens=torch.tensor(shared_lens, dtype=torch.int32),
        tail_block_tables=tt, tail_lens=torch.tensor(tail_lens, dtype=torch.int32), scale=d ** -0.5,
    )


def logprob_oracle(hidden, weight, targets, bias=None, temperature=1.0):
    """float64 log_softmax(x @ W.T + b) gathered, and the entropy; materialises [M, V] (tests only)."""
    z = hidden.double() @ weight.double().T
    if bias is not None:
        z = z + bias.double()
    logp_all = torch.log_softmax(z / temperature, dim=-1)
    logp = logp_all.gather(1, targets.long()[:, None]).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def masked_attention(q, k, v, mask, scale):
    """q [Nq, Hq, D], k/v [Nk, Hkv, D], mask [Nq, Nk] bool -> float64 [Nq, Hq, D]; empty rows -> 0."""
    hq, hkv = q.shape[1], k.shape[1]
    k = k.double().repeat_interleave(hq // hkv, dim=1)
    v = v.double().repeat_interleave(hq // hkv, dim=1)
    s = torch.einsum("qhd,khd->hqk", q.double(), k) * scale
    s = s.masked_fill(~mask[None], float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return torch.einsum("hqk,khd->qhd", p, v)


def scoring_oracle(q, k_suffix, v_suffix, k_prefix, v_prefix, suffix_indptr, prefix_start, cuts, scale):
    """Concatenate [prefix; suffix] keys and build the full mask explicitly."""
    S, L = q.shape[0], k_prefix.shape[0]
    k = torch.cat([k_prefix, k_suffix])
    v = torch.cat([v_prefix, v_suffix])
    mask = torch.zeros(S, L + S, dtype=torch.bool)
    for i in range(len(cuts)):
        a, b = int(suffix_indptr[i]), int(suffix_indptr[i + 1])
        p0, c = int(prefix_start[i]), int(cuts[i])
        mask[a:b, p0:p0 + c] = True
        mask[a:b, L + a:L + b] = torch.tril(torch.ones(b - a, b - a, dtype=torch.bool))
    return masked_attention(q, k, v, mask, scale)


def paged_oracle(q, k_cache, v_cache, tables, lens, scale):
    """Per sequence: gather its tokens from the blocks, attend all of them."""
    bs = k_cache.shape[1]
    out = []
    for b in range(q.shape[0]):
        n = int(lens[b])
        blocks = [int(x) for x in tables[b][: -(-n // bs)]]
        k = torch.cat([k_cache[x] for x in blocks])[:n] if n else k_cache[0, :0]
        v = torch.cat([v_cache[x] for x in blocks])[:n] if n else v_cache[0, :0]
        out.append(masked_attention(q[b:b + 1], k, v, torch.ones(1, n, dtype=torch.bool), scale))
    return torch.cat(out)


def branch_oracle(q, k_cache, v_cache, group_indptr, shared_tables, shared_lens, tail_tables, tail_lens, scale):
    """Each branch = shared blocks then its tail blocks, attended as one plain sequence."""
    bs = k_cache.shape[1]
    out = []
    for g in range(len(shared_lens)):
        ns = int(shared_lens[g])
        for b in range(int(group_indptr[g]), int(group_indptr[g + 1])):
            nt = int(tail_lens[b])
            ks = [k_cache[int(x)] for x in shared_tables[g][: -(-ns // bs)]]
            vs = [v_cache[int(x)] for x in shared_tables[g][: -(-ns // bs)]]
            kt = [k_cache[int(x)] for x in tail_tables[b][: -(-nt // bs)]]
            vt = [v_cache[int(x)] for x in tail_tables[b][: -(-nt // bs)]]
            empty = k_cache[0, :0]
            k = torch.cat([torch.cat(ks)[:ns] if ks else empty, torch.cat(kt)[:nt] if kt else empty])
            v = torch.cat([torch.cat(vs)[:ns] if vs else empty, torch.cat(vt)[:nt] if vt else empty])
            out.append(masked_attention(q[b:b + 1], k, v, torch.ones(1, ns + nt, dtype=torch.bool), scale))
    return torch.cat(out)


def prefill_case(cached_lens, chunk_lens, block_size, hq, hkv, d, dtype=torch.float32, seed=0, extra_blocks=2):
    """Packed prefill chunks over a random paged cache: sequence i has ``cached_lens[i]`` tokens
    before its chunk of ``chunk_lens[i]`` (all of them in its shuffled blocks); tables padded with 0."""
    g = torch.Generator().manual_seed(seed)
    need = [-(-(c + n) // block_size) for c, n in zip(cached_lens, chunk_lens)]
    num_blocks = sum(need) + extra_blocks
    perm = torch.randperm(num_blocks, generator=g).tolist()
    tables = torch.zeros(len(need), max(1, max(need, default=0)), dtype=torch.int32)
    at = 0
    for b, k in enumerate(need):
        tables[b, :k] = torch.tensor(perm[at:at + k], dtype=torch.int32)
        at += k
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
    return dict(
        q=r(sum(chunk_lens), hq, d), k_cache=r(num_blocks, block_size, hkv, d), v_cache=r(num_blocks, block_size, hkv, d),
        q_indptr=torch.tensor([0] + torch.tensor(chunk_lens).cumsum(0).tolist(), dtype=torch.int32),
        block_tables=tables, cached_lens=torch.tensor(cached_lens, dtype=torch.int32), scale=d ** -0.5,
    )


def prefill_oracle(q, k_cache, v_cache, q_indptr, block_tables, cached_lens, scale):
    """Per chunk: gather its sequence's keys from the blocks, attend them causally (float64)."""
    bs = k_cache.shape[1]
    out = []
    for i in range(len(cached_lens)):
        a, b, c = int(q_indptr[i]), int(q_indptr[i + 1]), int(cached_lens[i])
        if b == a:
            continue
        n = c + b - a
        blocks = [int(x) for x in block_tables[i][: -(-n // bs)]]
        k = torch.cat([k_cache[x] for x in blocks])[:n]
        v = torch.cat([v_cache[x] for x in blocks])[:n]
        mask = torch.arange(n)[None, :] <= torch.arange(c, n)[:, None]
        out.append(masked_attention(q[a:b], k, v, mask, scale))
    return torch.cat(out) if out else q.double()[:0]
