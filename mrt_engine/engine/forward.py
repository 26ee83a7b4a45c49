"""A functional decoder forward over a loaded transformers model, with pluggable attention.

The engine (paged KV, decode), the progress estimator (shared-prefix scoring) and the
trainer all run the same weights: this module holds *references* to the transformers
model's own parameter tensors (no copy), so an optimizer step on the model is seen by the
next forward at once.

Tokens are packed: ``input_ids [T]`` and ``positions [T]`` hold every sequence of a batch
back to back; the attention callback knows how they are grouped (varlen indptr, block
tables, cut tables...). That keeps one code path for prefill, decode and scoring.

Supported families: Llama (SmolLM2, Llama 3.x, incl. llama3 RoPE scaling), Mistral (no
sliding window), Qwen2 (q/k/v bias; DeepSeek-R1-Distill-Qwen) and Qwen3 (per-head q/k
RMSNorm). RoPE variants come from the model's own ``rotary_emb`` module, so every scaling
type transformers implements is honoured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from mrt_engine.ops import prefix_suffix_attention
from mrt_engine.ops._dispatch import use_triton
from mrt_engine.ops.head import head_logits

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


class AttentionFn(Protocol):
    def __call__(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [T, Hq, D], k/v [T, Hkv, D] (post-RoPE, for the new tokens) -> out [T, Hq, D].

        The callback may also store k/v (a KV cache) and read earlier tokens' k/v.
        """


@dataclass(frozen=True)
class ModelShape:
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    max_positions: int
    scale: float  # softmax scale applied to q.k (natural-log domain)


class DecoderForward:
    """Run a transformers causal LM layer by layer with a caller-supplied attention."""

    def __init__(self, model: nn.Module):
        cfg = model.config
        model_type = getattr(cfg, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise NotImplementedError(
                f"model_type={model_type!r} is not supported by the engine forward; supported: {SUPPORTED_MODEL_TYPES}. "
                "Use method='naive' (plain transformers) for other architectures."
            )
        self.model = model
        inner = model.model
        self.embed_tokens = inner.embed_tokens
        self.layers = inner.layers
        self.norm = inner.norm
        self.rotary_emb = inner.rotary_emb
        self.lm_head = model.lm_head
        attn0 = self.layers[0].self_attn
        num_heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // num_heads
        self.shape = ModelShape(
            num_layers=len(self.layers), num_heads=num_heads,
            num_kv_heads=getattr(cfg, "num_key_value_heads", None) or num_heads, head_dim=head_dim,
            hidden_size=cfg.hidden_size, vocab_size=cfg.vocab_size,
            max_positions=getattr(cfg, "max_position_embeddings", 1 << 30),
            scale=float(getattr(attn0, "scaling", head_dim ** -0.5)),
        )
        if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", model_type == "mistral"):
            # Long traces past the window would be scored with full attention: say so up front.
            self.sliding_window = cfg.sliding_window
        else:
            self.sliding_window = None

    # -- pieces ---------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    def rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [T, D] for the given absolute positions [T]."""
        dummy = torch.empty(0, device=positions.device, dtype=self.dtype)
        cos, sin = self.rotary_emb(dummy, positions[None, :].long())
        return cos[0], sin[0]

    def qkv(self, layer_idx: int, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """Normed hidden h [T, H] -> q [T, Hq, D], k, v [T, Hkv, D], RoPE applied to q and k."""
        attn = self.layers[layer_idx].self_attn
        s = self.shape
        num_tokens = h.shape[0]
        q = attn.q_proj(h).view(num_tokens, s.num_heads, s.head_dim)
        k = attn.k_proj(h).view(num_tokens, s.num_kv_heads, s.head_dim)
        v = attn.v_proj(h).view(num_tokens, s.num_kv_heads, s.head_dim)
        if hasattr(attn, "q_norm"):  # Qwen3: per-head RMSNorm before RoPE
            q = attn.q_norm(q)
            k = attn.k_norm(k)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        return q, k, v

    def hidden_states(self, input_ids: torch.Tensor, positions: torch.Tensor, attend: AttentionFn,
                      *, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids [T], positions [T] -> final-normed hidden states [T, H]."""
        if input_ids.dim() != 1 or positions.shape != input_ids.shape:
            raise ValueError(f"input_ids and positions must be 1-D and equal in shape, got "
                             f"{tuple(input_ids.shape)} and {tuple(positions.shape)}")
        h = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        cos, sin = self.rope(positions)
        s = self.shape
        for i, layer in enumerate(self.layers):
            residual = h
            x = layer.input_layernorm(h)
            q, k, v = self.qkv(i, x, cos, sin)
            o = attend(i, q, k, v)  # [T, Hq, D]
            h = residual + layer.self_attn.o_proj(o.reshape(-1, s.num_heads * s.head_dim))
            residual = h
            h = residual + layer.mlp(layer.post_attention_layernorm(h))
        return self.norm(h)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [N, H] -> logits [N, V] in the model dtype (for the few rows that need them).

        A CPU decode batch goes through ``ops.head_logits`` (the vocabulary in slices: BLAS runs
        the short-and-wide product at half speed otherwise); same weight tensor, no copy.
        """
        return head_logits(hidden, self.lm_head.weight, getattr(self.lm_head, "bias", None))


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D]; cos/sin [T, D] (half-split "rotate_half" convention of HF Llama)."""
    cos = cos[:, None, :].to(x.dtype)
    sin = sin[:, None, :].to(x.dtype)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def token_major_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of one sequence in token-major layout: q [n, Hq, D], k/v [m, Hkv, D] -> [n, Hq, D].

    ``mask`` [n, m] bool (True = attend); None means causal with n == m. The inputs go to
    ``scaled_dot_product_attention`` as 4-D ``[1, H, n, D]`` with K/V heads repeated to the
    query heads: on CPU, 3-D inputs fall back to the unfused math kernel and ``enable_gqa``
    is slower than the repeat (measured on SmolLM2-135M prefill, docs/benchmarks.md).
    """
    group = q.shape[1] // k.shape[1]
    if group > 1:
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
    qh, kh, vh = (t.transpose(0, 1)[None] for t in (q, k, v))
    if mask is None:
        o = torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
    else:
        o = torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
    return o[0].transpose(0, 1)


def varlen_causal_attention(seq_indptr: torch.Tensor, scale: float) -> Callable:
    """A stateless attention callback: causal attention within each packed sequence.

    ``seq_indptr [B+1]``: sequence b owns rows ``seq_indptr[b]:seq_indptr[b+1]``. Used for
    full re-prefill (no cache: the score path's trace prefill) and in tests as the plain-torch
    oracle of the forward. Where the Triton kernels run (CUDA, or CPU under ``MRT_TRITON_CPU=1``)
    it is one ``ops.prefix_suffix_attention`` launch per layer for all sequences (each a
    suffix at cut 0 of an empty prefix); elsewhere one fused SDPA call per sequence.
    """
    bounds = seq_indptr.tolist()
    kernel_args = {}  # device -> the launch metadata, moved there once

    def attend_kernel(q, k, v):
        if q.device not in kernel_args:
            n = len(bounds) - 1
            zeros = torch.zeros(n, dtype=torch.int32, device=q.device)
            kernel_args[q.device] = dict(
                suffix_indptr=torch.tensor(bounds, dtype=torch.int32, device=q.device), prefix_start=zeros,
                cuts=zeros, max_suffix_len=max((b - a for a, b in zip(bounds[:-1], bounds[1:])), default=0),
                validate=False)
        return prefix_suffix_attention(q, k, v, k[:0], v[:0], scale=scale, **kernel_args[q.device])

    def attend(layer_idx, q, k, v):
        if use_triton(None, q):
            return attend_kernel(q, k, v)
        out = torch.empty_like(q)
        for start, end in zip(bounds[:-1], bounds[1:]):
            if end > start:
                out[start:end] = token_major_sdpa(q[start:end], k[start:end], v[start:end], scale)
        return out

    return attend
