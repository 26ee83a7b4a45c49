"""Model runner: packs a scheduled batch, runs the shared forward over the paged KV cache
and returns the logits of the rows that sample.

The forward is ``DecoderForward(model)``: the model's own parameter tensors, so an optimizer
step on the model is seen by the next generation step with no copy and no sync.
"""
from __future__ import annotations

import torch

from mrt_engine.ops import triton_on_cpu
from mrt_engine.ops._dispatch import use_triton

from .paged_attention import DecodeAttention, FlatDecodeAttention, PagedKVCache, PrefillAttention, group_order
from .config import EngineConfig
from .forward import DecoderForward
from .scheduler import ScheduledBatch
from .sequence import Sequence


def resolve_backend(requested: str, device: torch.device) -> str:
    """'ops' (``mrt_engine.ops`` dispatches: CUDA -> Triton when installed, CPU -> the torch
    reference; where Triton runs, prefill goes through ``ops.paged_prefill_attention`` too),
    'torch' (the cascade reference forced) or 'sdpa' (flat decode on fused SDPA,
    ``FlatDecodeAttention``); 'auto' is 'ops' on CUDA (and on CPU under ``MRT_TRITON_CPU=1``),
    else 'sdpa'. Prefill is one fused SDPA call per chunk where the kernel does not run."""
    if requested != "auto":
        return requested
    return "ops" if device.type == "cuda" or triton_on_cpu() else "sdpa"


class ModelRunner:
    def __init__(self, forward: DecoderForward, config: EngineConfig, num_blocks: int):
        shape = forward.shape
        self.forward = forward
        self.config = config
        self.block_size = config.block_size
        self.backend = resolve_backend(config.attention_backend, forward.device)
        self.cache = PagedKVCache(num_layers=shape.num_layers, num_blocks=num_blocks, block_size=config.block_size,
                                  num_kv_heads=shape.num_kv_heads, head_dim=shape.head_dim,
                                  dtype=forward.dtype, device=forward.device)
        # Where decode runs the Triton kernels, prefill does too (and the one-launch cascade may).
        self.triton_kernels = self.backend == "ops" and use_triton(None, self.cache.kv)

    @torch.inference_mode()
    def execute(self, batch: ScheduledBatch) -> tuple[list[Sequence], list[Sequence], torch.Tensor | None]:
        """Run one step. Returns (the batch's sequences in the order run, the sequences
        that sample, their logits [R, V] fp32 or None)."""
        device = self.forward.device
        scale = self.forward.shape.scale
        if batch.is_prefill:
            seqs, counts = batch.seqs, batch.num_new_tokens
            ids, pos = [], []
            for seq, n in zip(seqs, counts):
                start = seq.num_computed_tokens
                ids += seq.token_ids[start:start + n]
                pos += range(start, start + n)
            attend = PrefillAttention(self.cache, seqs, counts, scale, kernel=self.triton_kernels)
            sampling = [s.num_computed_tokens + n == len(s) for s, n in zip(seqs, counts)]
            # the last row of each chunk that ends its prompt (indices from the host: no sync)
            rows = torch.tensor([end - 1 for end, keep in zip(attend.indptr[1:], sampling) if keep], dtype=torch.long,
                                device=device)
            samplers = [s for s, keep in zip(seqs, sampling) if keep]
        else:
            seqs = group_order(batch.seqs)
            ids = [s.token_ids[-1] for s in seqs]
            pos = [len(s) - 1 for s in seqs]
            if self.backend == "sdpa":
                attend = FlatDecodeAttention(self.cache, seqs, scale)
            else:
                attend = DecodeAttention(self.cache, seqs, scale, cascade=self.config.cascade,
                                         backend=None if self.backend == "ops" else "torch",
                                         work_list=self.config.cascade_work_list and self.triton_kernels,
                                         gqa_ratio=self.forward.shape.num_heads // self.forward.shape.num_kv_heads)
            rows = None
            samplers = seqs
        input_ids = torch.tensor(ids, device=device)  # [T]
        positions = torch.tensor(pos, device=device)  # [T]
        hidden = self.forward.hidden_states(input_ids, positions, attend)  # [T, H]
        if not samplers:
            return seqs, samplers, None
        if rows is not None:
            hidden = hidden[rows]
        return seqs, samplers, self.forward.logits(hidden).float()  # [R, V]
