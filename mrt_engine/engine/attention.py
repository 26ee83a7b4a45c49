"""Paged KV cache and the attention callbacks the model runner hands to ``DecoderForward``.

The cache of layer ``l`` is ``k_cache(l), v_cache(l)``: ``[num_blocks, block_size, Hkv, D]``
each (the layout the paged ops in ``mrt_engine.ops`` read). Every callback first writes the
new tokens' K/V of its layer into their slots, then attends; so within one step a sequence
may read blocks that another sequence of the same step writes (prefix-cache hits admitted
together).

Plans (block tables, masks, index maps) are built once per step; ``attend`` runs per layer
with no host work besides a few tensor ops.

Decode uses cascade attention on the torch path: the queries of a forked group (n samples
of one prompt, or n continuations of one cut) read the group's shared blocks once, as one
matrix product, then each sequence reads its own tail blocks; the two partial softmaxes are
merged with their log-sum-exps (natural log), as in FlashInfer's ``merge_state``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .sequence import Sequence

_MASKED = -1e30  # finite, so fully masked rows give 0 weight after the merge instead of NaN


class PagedKVCache:
    def __init__(self, *, num_layers: int, num_blocks: int, block_size: int, num_kv_heads: int,
                 head_dim: int, dtype: torch.dtype, device: torch.device):
        self.block_size = block_size
        self.num_blocks = num_blocks
        # kv: [num_layers, 2, num_blocks, block_size, Hkv, D]
        self.kv = torch.empty(num_layers, 2, num_blocks, block_size, num_kv_heads, head_dim, dtype=dtype, device=device)

    def k_cache(self, layer: int) -> torch.Tensor:
        return self.kv[layer, 0]

    def v_cache(self, layer: int) -> torch.Tensor:
        return self.kv[layer, 1]

    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """k, v [T, Hkv, D] into flat slots [T] (slot = block * block_size + offset)."""
        kv = self.kv[layer]
        kv[0].view(-1, *k.shape[1:])[slots] = k.to(kv.dtype)
        kv[1].view(-1, *v.shape[1:])[slots] = v.to(kv.dtype)

    def zero_blocks(self, blocks: list[int]) -> None:
        if blocks:
            self.kv[:, :, torch.tensor(blocks, device=self.kv.device)] = 0

    def copy_blocks(self, copies: list[tuple[int, int]]) -> None:
        """Copy whole blocks (all layers, K and V): the partly filled last block of a fork."""
        if not copies:
            return
        src = torch.tensor([c[0] for c in copies], device=self.kv.device)
        dst = torch.tensor([c[1] for c in copies], device=self.kv.device)
        self.kv[:, :, dst] = self.kv[:, :, src]


def slots_of(seq: Sequence, start: int, end: int, block_size: int) -> list[int]:
    table = seq.block_table
    return [table[p // block_size] * block_size + p % block_size for p in range(start, end)]


# -- prefill ------------------------------------------------------------------------------
class PrefillAttention:
    """Chunks of prompts: chunk ``i`` has rows ``indptr[i]:indptr[i+1]`` of the packed
    batch and attends the ``num_cached[i]`` tokens already in its blocks plus itself,
    causally."""

    def __init__(self, cache: PagedKVCache, seqs: list[Sequence], num_new: list[int], scale: float):
        bs = cache.block_size
        device = cache.kv.device
        self.cache = cache
        self.scale = scale
        self.indptr = [0]
        self.num_cached = []
        self.cached_blocks = []
        self.masks = []
        slots = []
        for seq, n in zip(seqs, num_new):
            start = seq.num_computed_tokens
            slots += slots_of(seq, start, start + n, bs)
            self.indptr.append(self.indptr[-1] + n)
            self.num_cached.append(start)
            num_blocks = (start + bs - 1) // bs
            self.cached_blocks.append(torch.tensor(seq.block_table[:num_blocks], device=device))
            if start:
                # mask [n, start + n]: query i (position start + i) sees keys 0..start + i
                q_pos = torch.arange(start, start + n, device=device)[:, None]
                self.masks.append(torch.arange(start + n, device=device)[None, :] <= q_pos)
            else:
                self.masks.append(None)
        self.slots = torch.tensor(slots, device=device)

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        self.cache.write(layer, self.slots, k, v)
        kc, vc = self.cache.k_cache(layer), self.cache.v_cache(layer)
        out = torch.empty_like(q)
        for i, (start, end) in enumerate(zip(self.indptr[:-1], self.indptr[1:])):
            qs, ks, vs = q[start:end], k[start:end], v[start:end]
            cached = self.num_cached[i]
            if cached:
                blocks = self.cached_blocks[i]
                kp = kc.index_select(0, blocks).flatten(0, 1)[:cached].to(ks.dtype)
                vp = vc.index_select(0, blocks).flatten(0, 1)[:cached].to(vs.dtype)
                ks = torch.cat([kp, ks])
                vs = torch.cat([vp, vs])
            o = F.scaled_dot_product_attention(
                qs.transpose(0, 1), ks.transpose(0, 1), vs.transpose(0, 1), attn_mask=self.masks[i],
                is_causal=not cached, scale=self.scale, enable_gqa=True)
            out[start:end] = o.transpose(0, 1)
        return out


# -- decode -------------------------------------------------------------------------------
def group_order(seqs: list[Sequence]) -> list[Sequence]:
    """Stable order with the members of each forked group next to each other."""
    first: dict[int, int] = {}
    for i, s in enumerate(seqs):
        first.setdefault(s.group_id, i)
    return sorted(seqs, key=lambda s: first[s.group_id])


class DecodeAttention:
    """One new token per sequence; ``seqs`` must be in :func:`group_order`.

    Shared part: group ``g`` owns ``num_shared[g]`` blocks read by all of its members (a
    singleton's "shared" part is all of its full blocks). Groups whose shared blocks start
    with the same block (the cuts of one trace, the samples of prompts with a common head)
    are read as one *unit* over the union of their blocks, each row masked to its own group's
    blocks, when that union is dense enough (``min_union_density``); otherwise every group
    is its own unit. Units are padded into one batched product. Tail: each sequence's blocks
    after its shared ones, up to and including the one holding the new token.
    """

    min_union_density = 0.35  # useful (row, key) pairs / computed pairs to read a union at once

    def __init__(self, cache: PagedKVCache, seqs: list[Sequence], scale: float, *, cascade: bool = True,
                 backend: str = "torch"):
        bs = cache.block_size
        device = cache.kv.device
        self.cache, self.scale, self.backend = cache, scale, backend
        lens = [len(s) for s in seqs]
        self.slots = torch.tensor([s.block_table[(n - 1) // bs] * bs + (n - 1) % bs for s, n in zip(seqs, lens)],
                                  device=device)
        groups: list[list[int]] = []
        for i, s in enumerate(seqs):
            if groups and seqs[groups[-1][0]].group_id == s.group_id:
                groups[-1].append(i)
            else:
                groups.append([i])
        num_shared = []
        for members in groups:
            if not cascade:
                num_shared.append(0)
            elif len(members) > 1:
                num_shared.append(min(seqs[i].num_shared_blocks for i in members))
            else:
                num_shared.append((lens[members[0]] - 1) // bs)
        tails, tail_lens = [None] * len(seqs), [0] * len(seqs)
        for g, members in enumerate(groups):
            for i in members:
                tails[i] = seqs[i].block_table[num_shared[g]:(lens[i] + bs - 1) // bs]
                tail_lens[i] = lens[i] - num_shared[g] * bs
        num_tail_max = max(len(t) for t in tails)
        # tail_table: [B, num_tail_max]; tail_bias: [B, 1, 1, num_tail_max * bs]
        self.tail_table = torch.tensor([t + [0] * (num_tail_max - len(t)) for t in tails], device=device)
        pos = torch.arange(num_tail_max * bs, device=device)
        self.tail_bias = torch.where(pos[None, :] < torch.tensor(tail_lens, device=device)[:, None],
                                     0.0, _MASKED)[:, None, None, :]
        self.num_shared_max = max(num_shared)
        if self.num_shared_max:
            self._plan_units(seqs, groups, num_shared, device)
        if backend == "ops":
            self._plan_ops(seqs, groups, num_shared, tail_lens, device)

    def _plan_units(self, seqs, groups, num_shared, device):
        bs = self.cache.block_size
        shared = [seqs[m[0]].block_table[:ns] for m, ns in zip(groups, num_shared)]
        clusters: dict[int, list[int]] = {}
        for g, blocks in enumerate(shared):
            clusters.setdefault(blocks[0] if blocks else -1 - g, []).append(g)
        units = []  # (groups, key blocks)
        for members in clusters.values():
            union = list(dict.fromkeys(b for g in members for b in shared[g]))
            useful = sum(len(groups[g]) * len(shared[g]) for g in members)
            rows = sum(len(groups[g]) for g in members)
            if len(members) > 1 and useful < self.min_union_density * rows * len(union):
                units += [([g], shared[g]) for g in members]
            else:
                units.append((members, union))
        self.num_units = len(units)
        self.unit_rows = max(sum(len(groups[g]) for g in members) for members, _ in units)
        width = max(len(keys) for _, keys in units)
        table, allowed, q_slot = [], [], [0] * len(seqs)
        for u, (members, keys) in enumerate(units):
            table.append(keys + [0] * (width - len(keys)))
            where = {b: k for k, b in enumerate(keys)}
            rows = torch.zeros(self.unit_rows, width, dtype=torch.bool)  # block-level mask per row
            j = 0
            for g in members:
                cols = torch.tensor([where[b] for b in shared[g]], dtype=torch.long)
                for i in groups[g]:
                    rows[j, cols] = True
                    q_slot[i] = u * self.unit_rows + j
                    j += 1
            allowed.append(rows)
        self.shared_table = torch.tensor(table, device=device)  # [U, width]
        mask = torch.stack(allowed).repeat_interleave(bs, dim=-1).to(device)  # [U, rows, width * bs]
        # shared_bias: [U, 1, rows, 1, width * bs] (rows x query heads of a kv head)
        self.shared_bias = torch.where(mask, 0.0, _MASKED)[:, None, :, None, :]
        self.q_slot = torch.tensor(q_slot, device=device)

    def _plan_ops(self, seqs, groups, num_shared, tail_lens, device):
        bs = self.cache.block_size
        sizes = [len(m) for m in groups]
        self.group_indptr = torch.tensor([0] + sizes, device=device).cumsum(0).to(torch.int32)
        width = max(self.num_shared_max, 1)
        self.ops_shared_tables = torch.tensor(
            [seqs[m[0]].block_table[:ns] + [0] * (width - ns) for m, ns in zip(groups, num_shared)],
            device=device, dtype=torch.int32)
        self.ops_shared_lens = torch.tensor([ns * bs for ns in num_shared], device=device, dtype=torch.int32)
        self.ops_tail_tables = self.tail_table.to(torch.int32)
        self.ops_tail_lens = torch.tensor(tail_lens, device=device, dtype=torch.int32)
        # Host ints so the Triton launch needs no device->host sync.
        self.ops_max = dict(max_shared_len=max(num_shared) * bs, max_tail_len=max(tail_lens), max_group_size=max(sizes))

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        self.cache.write(layer, self.slots, k, v)
        kc, vc = self.cache.k_cache(layer), self.cache.v_cache(layer)
        if self.backend == "ops":
            from mrt_engine import ops

            return ops.branch_decode_attention(
                q, kc, vc, group_indptr=self.group_indptr, shared_block_tables=self.ops_shared_tables,
                shared_lens=self.ops_shared_lens, tail_block_tables=self.ops_tail_tables,
                tail_lens=self.ops_tail_lens, scale=self.scale, validate=False, **self.ops_max)
        return self._torch(q, kc, vc)

    def _torch(self, q: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor) -> torch.Tensor:
        num_seqs, num_heads, head_dim = q.shape
        num_kv_heads = kc.shape[2]
        group = num_heads // num_kv_heads
        qf = q.float().view(num_seqs, num_kv_heads, group, head_dim)  # [B, Hkv, grp, D]
        # Tail: each sequence's own blocks.
        kt = _gather(kc, self.tail_table)  # [B, Lt, Hkv, D]
        vt = _gather(vc, self.tail_table)
        o_t, m_t, l_t = _partial(qf, kt, vt, self.tail_bias, self.scale)  # [B, Hkv, grp, D], [B, Hkv, grp, 1] x2
        if not self.num_shared_max:
            return (o_t / l_t).view(num_seqs, num_heads, head_dim).to(q.dtype)
        # Shared: one product per unit, its rows' queries stacked.
        num_units, width = self.num_units, self.unit_rows
        qs = qf.new_zeros(num_units * width, num_kv_heads, group, head_dim)
        qs[self.q_slot] = qf
        qs = qs.view(num_units, width, num_kv_heads, group, head_dim).transpose(1, 2)
        qs = qs.reshape(num_units, num_kv_heads, width * group, head_dim)  # [U, Hkv, rows*grp, D]
        ks = _gather(kc, self.shared_table)  # [U, Ls, Hkv, D]
        vs = _gather(vc, self.shared_table)
        s = torch.matmul(qs, ks.permute(0, 2, 3, 1)) * self.scale  # [U, Hkv, rows*grp, Ls]
        s = (s.view(num_units, num_kv_heads, width, group, -1) + self.shared_bias).view_as(s)
        m_s = s.amax(-1, keepdim=True)
        p = torch.exp(s - m_s)
        l_s = p.sum(-1, keepdim=True)
        o_s = torch.matmul(p, vs.transpose(1, 2))  # [U, Hkv, rows*grp, D]

        def per_seq(x):  # [U, Hkv, rows*grp, E] -> [B, Hkv, grp, E]
            e = x.shape[-1]
            x = x.view(num_units, num_kv_heads, width, group, e).transpose(1, 2)
            return x.reshape(num_units * width, num_kv_heads, group, e)[self.q_slot]

        o_s, m_s, l_s = per_seq(o_s), per_seq(m_s), per_seq(l_s)
        m = torch.maximum(m_s, m_t)
        a = torch.exp(m_s - m)
        b = torch.exp(m_t - m)
        out = (o_s * a + o_t * b) / (l_s * a + l_t * b)
        return out.view(num_seqs, num_heads, head_dim).to(q.dtype)


def _gather(cache: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """cache [num_blocks, bs, Hkv, D], table [R, nb] -> [R, nb * bs, Hkv, D] in fp32."""
    rows, nb = table.shape
    x = cache.index_select(0, table.reshape(-1))
    return x.view(rows, nb * cache.shape[1], *cache.shape[2:]).float()


def _partial(q, k, v, bias, scale):
    """Unnormalised attention of q [R, Hkv, M, D] over k, v [R, L, Hkv, D] with additive
    bias [R, 1, 1, L] -> (sum_j p_j v_j [R, Hkv, M, D], row max [R, Hkv, M, 1], sum_j p_j)."""
    s = torch.matmul(q, k.permute(0, 2, 3, 1)) * scale + bias  # [R, Hkv, M, L]
    m = s.amax(-1, keepdim=True)
    p = torch.exp(s - m)
    return torch.matmul(p, v.transpose(1, 2)), m, p.sum(-1, keepdim=True)

