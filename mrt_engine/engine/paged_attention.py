"""Paged KV cache and the attention callbacks the model runner hands to ``DecoderForward``.

The cache of layer ``l`` is ``k_cache(l), v_cache(l)``: ``[num_blocks, block_size, Hkv, D]``
each (the layout the paged ops in ``mrt_engine.ops`` read). Every callback first writes the
new tokens' K/V of its layer into their slots, then attends; so within one step a sequence
may read blocks that another sequence of the same step writes (prefix-cache hits admitted
together).

Plans (block tables, masks, index maps) are built once per step; ``attend`` runs per layer
with no host work besides a few tensor ops.

Decode is cascade attention through ``mrt_engine.ops``: the queries of a forked group (n
samples of one prompt, or n continuations of one cut) read the group's shared blocks once,
then each sequence reads its own tail blocks; the two partial softmaxes are merged with
``ops.merge_state`` (natural-log LSE). The plan comes from ``ops.plan_decode``.
"""
from __future__ import annotations

import torch

from mrt_engine import ops
from mrt_engine.ops import attention_sdpa  # by module: the saving threshold and kernels are read per call

from .forward import token_major_sdpa
from .sequence import Sequence


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
    causally.

    ``kernel=True`` (the runner's ``ops`` backend where the Triton kernels run: CUDA, or CPU
    under ``MRT_TRITON_CPU=1``): one ``ops.paged_prefill_attention`` launch per layer for every
    chunk of the step, reading cached and new keys through the block tables (built here once
    per step; no host sync per layer). Otherwise one fused SDPA call per chunk (the CPU path).
    """

    def __init__(self, cache: PagedKVCache, seqs: list[Sequence], num_new: list[int], scale: float, *,
                 kernel: bool = False):
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
        self.slots = torch.tensor(slots, device=device)
        self.kernel_args = None
        if kernel:
            tables = [seq.block_table[:-(-(start + n) // bs)] for seq, start, n in zip(seqs, self.num_cached, num_new)]
            width = max(1, max(len(t) for t in tables))
            self.kernel_args = dict(
                q_indptr=torch.tensor(self.indptr, dtype=torch.int32, device=device),  # [N+1]
                block_tables=torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.int32,
                                          device=device),  # [N, width]
                cached_lens=torch.tensor(self.num_cached, dtype=torch.int32, device=device),  # [N]
                max_q_len=max(num_new), validate=False)
            return
        for seq, n, start in zip(seqs, num_new, self.num_cached):
            num_blocks = (start + bs - 1) // bs
            self.cached_blocks.append(torch.tensor(seq.block_table[:num_blocks], device=device))
            if start:
                # mask [n, start + n]: query i (position start + i) sees keys 0..start + i
                q_pos = torch.arange(start, start + n, device=device)[:, None]
                self.masks.append(torch.arange(start + n, device=device)[None, :] <= q_pos)
            else:
                self.masks.append(None)

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        self.cache.write(layer, self.slots, k, v)
        kc, vc = self.cache.k_cache(layer), self.cache.v_cache(layer)
        if self.kernel_args is not None:
            return ops.paged_prefill_attention(q, kc, vc, scale=self.scale, **self.kernel_args)
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
            out[start:end] = token_major_sdpa(qs, ks, vs, self.scale, self.masks[i])
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

    Cascade decode, FlashInfer's shape: ``ops.plan_decode`` (C++ or its Python twin) builds
    the index tensors once per step (the runs of one ``group_id`` and the full blocks their
    tables share); every layer then runs ``ops.branch_decode_attention``: a group's shared
    blocks read once for all its members, each sequence's tail blocks, the two states merged
    with ``ops.merge_state``. ``backend`` is the ops backend: None dispatches (CUDA -> Triton,
    CPU -> the torch reference), "torch" or "triton" force one. ``cascade=False`` makes every
    sequence its own group.
    """

    def __init__(self, cache: PagedKVCache, seqs: list[Sequence], scale: float, *, cascade: bool = True,
                 backend: str | None = None, work_list: bool = False, gqa_ratio: int = 1):
        bs = cache.block_size
        device = cache.kv.device
        self.cache, self.scale, self.backend = cache, scale, backend
        lens = [len(s) for s in seqs]  # the new token is written before attending: it counts
        self.slots = torch.tensor([s.block_table[(n - 1) // bs] * bs + (n - 1) % bs for s, n in zip(seqs, lens)],
                                  device=device)
        group_ids = [s.group_id for s in seqs] if cascade else list(range(len(seqs)))
        plan = ops.plan_decode([s.block_table for s in seqs], lens, block_size=bs, group_ids=group_ids)
        self.plan = plan.to(device)
        self._args = self.plan.attention_args()
        if work_list:  # the Triton path's one-launch cascade (``ops.plan_cascade_work``), planned once per step
            self._args["work"] = ops.plan_cascade_work(plan, gqa_ratio=gqa_ratio,
                                                       num_kv_heads=cache.kv.shape[-2]).to(device)

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        self.cache.write(layer, self.slots, k, v)
        return ops.branch_decode_attention(q, self.cache.k_cache(layer), self.cache.v_cache(layer), scale=self.scale,
                                           backend=self.backend, **self._args)


class FlatDecodeAttention:
    """CPU decode on fused SDPA: flat (each sequence's blocks gathered, one call per layer for
    the whole batch), or cascade when a step's forked groups share enough prefix.

    Flat is ``ops.paged_decode_attention_sdpa`` without the per-layer planning: the gather
    index and the length mask are built once per step. When the flat gather would copy a
    shared prefix once per member and ``ops.attention_sdpa.worth_cascading`` says the saving
    pays for a second fused call (sample mode's branches of a long trace: 4.6 -> 1.9 ms per
    layer), the step runs ``branch_decode_attention_sdpa`` on ``ops.plan_decode``'s groups.
    ``seqs`` must be in :func:`group_order`.
    """

    def __init__(self, cache: PagedKVCache, seqs: list[Sequence], scale: float):
        bs = cache.block_size
        device = cache.kv.device
        self.cache, self.scale = cache, scale
        lens = [len(s) for s in seqs]  # the new token is written before attending: it counts
        self.slots = torch.tensor([s.block_table[(n - 1) // bs] * bs + (n - 1) % bs for s, n in zip(seqs, lens)],
                                  device=device)
        self.cascade_args = None
        group_ids = [s.group_id for s in seqs]
        if len(set(group_ids)) < len(group_ids):  # some group has two members: a cascade may pay
            plan = ops.plan_decode([s.block_table for s in seqs], lens, block_size=bs, group_ids=group_ids)
            bounds = plan.group_indptr.tolist()
            sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
            if attention_sdpa.worth_cascading(sizes, plan.shared_lens.tolist(), lens):
                self.cascade_args = plan.to(device).attention_args()
                return
        num_blocks = max(-(-n // bs) for n in lens)
        tables = torch.tensor([s.block_table[:num_blocks] + [0] * (num_blocks - len(s.block_table[:num_blocks]))
                               for s in seqs])
        self.mask = attention_sdpa.decode_mask(torch.tensor(lens, device=device), bs)
        self.index = attention_sdpa.decode_gather_index(tables, num_blocks, device)

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        self.cache.write(layer, self.slots, k, v)
        kc, vc = self.cache.k_cache(layer), self.cache.v_cache(layer)
        if self.cascade_args is not None:
            return attention_sdpa.branch_decode_attention_sdpa(q, kc, vc, scale=self.scale, **self.cascade_args)
        return attention_sdpa.decode_sdpa(q, kc, vc, self.index, self.mask, self.scale)
