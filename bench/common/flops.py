"""The FLOP and byte model: what each stage's algorithm must compute and move.

FLOPs count 2 per multiply-add. The counts of a stage are computed here from its inputs,
so that a row's ``flops`` (the work its algorithm does) and ``min_flops`` / ``min_bytes``
(the fewest the task needs) come from one model for every stage.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelDims:
    """The numbers that set a decoder's FLOP and byte counts (Llama / Qwen2 family)."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool = True

    @classmethod
    def from_config(cls, cfg) -> "ModelDims":
        num_heads = cfg.num_attention_heads
        return cls(
            num_layers=cfg.num_hidden_layers, hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size, num_heads=num_heads,
            num_kv_heads=getattr(cfg, "num_key_value_heads", None) or num_heads,
            head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // num_heads,
            vocab_size=cfg.vocab_size, tied_embeddings=bool(getattr(cfg, "tie_word_embeddings", False)))

    @property
    def layer_params(self) -> int:
        """Matmul weights of one layer: q, k, v, o projections and the gated MLP."""
        h, d = self.hidden_size, self.head_dim
        attn = h * self.num_heads * d + 2 * h * self.num_kv_heads * d + self.num_heads * d * h
        return attn + 3 * h * self.intermediate_size

    @property
    def body_params(self) -> int:
        """Matmul weights of all layers (no embedding, no LM head, norms ignored)."""
        return self.num_layers * self.layer_params

    @property
    def head_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def weight_params(self) -> int:
        """Parameters a forward step must read: body + LM head (+ embedding rows, negligible)."""
        return self.body_params + self.head_params

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes


def attention_pairs_causal(seq_len: int, context: int = 0) -> int:
    """Query-key pairs when ``seq_len`` new tokens attend causally after ``context`` cached ones."""
    return seq_len * context + seq_len * (seq_len + 1) // 2


def forward_flops(dims: ModelDims, *, num_tokens: int, attention_pairs: int, lm_head_tokens: int) -> float:
    """FLOPs of a forward over ``num_tokens`` tokens (2 per multiply-add).

    Body matmuls ``2 * body_params`` per token; attention ``4 * layers * heads * head_dim``
    per query-key pair (QK^T and PV); the LM head ``2 * V * H`` per token whose logits are
    needed (scoring and training need them only at some rows).
    """
    body = 2 * dims.body_params * num_tokens
    attn = 4 * dims.num_layers * dims.num_heads * dims.head_dim * attention_pairs
    head = 2 * dims.head_params * lm_head_tokens
    return float(body + attn + head)


def decode_bytes(dims: ModelDims, *, num_steps: int, kv_tokens_read: int, dtype_bytes: int) -> float:
    """Fewest bytes a batched decode moves: the weights once per step plus every KV row read.

    ``kv_tokens_read`` = sum over steps and sequences of the context read; a shared prefix
    read once per group (cascade attention) counts once per group, not once per branch.
    """
    return float(dims.weight_params * dtype_bytes * num_steps + dims.kv_bytes_per_token(dtype_bytes) * kv_tokens_read)


def logprob_loss_flops(num_tokens: int, hidden_size: int, vocab_size: int) -> float:
    """log-prob of M targets + loss + backward through the LM head: 2MHV forward, 4MHV backward."""
    return 6.0 * num_tokens * hidden_size * vocab_size


def logprob_loss_bytes(num_tokens: int, hidden_size: int, vocab_size: int, dtype_bytes: int,
                       *, materialise_logits: bool) -> float:
    """Bytes moved by log-prob + loss + backward through the LM head.

    The floor (``materialise_logits=False``): read W forward and backward, write dW, read
    hidden and write its gradient. The plain ``log_softmax(x @ W.T).gather`` path also
    writes the ``[M, V]`` logits, reads and writes them in log_softmax, and reads and
    writes them again in the backward: about six ``[M, V]`` fp32 passes.
    """
    floor = 3 * vocab_size * hidden_size * dtype_bytes + 2 * num_tokens * hidden_size * dtype_bytes
    if not materialise_logits:
        return float(floor)
    return float(floor + 6 * num_tokens * vocab_size * 4)



# -- per stage ----------------------------------------------------------------------------

def generation_counts(dims: ModelDims, prompt_lens: list[int], n: int, new_tokens: int, dtype_bytes: int):
    """(FLOPs, fewest bytes) of sampling ``n`` x ``new_tokens`` tokens after each prompt.

    Prompts are prefilled once (shared by their n samples); each decode step reads the
    weights once for the whole batch and the KV of every context, a prompt's KV once per
    group (cascade) and each sample's own tail per sample.
    """
    prefill = sum(forward_flops(dims, num_tokens=p, attention_pairs=attention_pairs_causal(p), lm_head_tokens=1)
                  for p in prompt_lens)
    decode_tokens = len(prompt_lens) * n * new_tokens
    pairs = sum(n * (new_tokens * p + new_tokens * (new_tokens + 1) // 2) for p in prompt_lens)
    decode = forward_flops(dims, num_tokens=decode_tokens, attention_pairs=pairs, lm_head_tokens=decode_tokens)
    kv_read = sum(new_tokens * p + n * new_tokens * (new_tokens - 1) // 2 for p in prompt_lens)
    nbytes = decode_bytes(dims, num_steps=new_tokens, kv_tokens_read=kv_read, dtype_bytes=dtype_bytes)
    return prefill + decode, nbytes


def score_counts(dims: ModelDims, items) -> tuple[float, float, float]:
    """(fast FLOPs, naive FLOPs, fewest bytes) of scoring mode over prepared items.

    Fast: prompt + trace prefilled once; per cut, the suffix and answer tokens attend the
    prefix and themselves, LM head on the answer rows. Naive: every cut re-encodes
    prompt + prefix + suffix + answer, LM head on every row (a plain HF forward).
    """
    fast = naive = 0.0
    nbytes = 0.0
    for it in items:
        base = len(it.prompt_ids) + len(it.trace_ids)
        fast += forward_flops(dims, num_tokens=base, attention_pairs=attention_pairs_causal(base), lm_head_tokens=0)
        for c in range(it.num_cuts):
            ctx_len = it.context_len(c)
            for ans in it.answer_ids:
                tail = len(it.suffix_ids[c]) + len(ans)
                fast += forward_flops(dims, num_tokens=tail, attention_pairs=attention_pairs_causal(tail, ctx_len),
                                      lm_head_tokens=len(ans))
                total = ctx_len + tail
                naive += forward_flops(dims, num_tokens=total, attention_pairs=attention_pairs_causal(total),
                                       lm_head_tokens=len(ans) + 1)
        nbytes += dims.weight_params * 4  # weights read at least once (compute-bound: negligible)
    return fast, naive, nbytes


def sample_counts(dims: ModelDims, items, *, num_branches: int, max_answer_tokens: int,
                  dtype_bytes: int) -> tuple[float, float, float]:
    """(fast FLOPs, naive FLOPs, fewest bytes) of sample mode over prepared items.

    Floor: prefill each trace once, then every answer token decoded (its context read once
    per cut group); naive re-prefills each cut's context.
    """
    num_cuts = sum(it.num_cuts for it in items)
    prefill_once = sum(forward_flops(dims, num_tokens=len(it.prompt_ids) + len(it.trace_ids),
                                     attention_pairs=attention_pairs_causal(len(it.prompt_ids) + len(it.trace_ids)),
                                     lm_head_tokens=0) for it in items)
    reprefill = sum(forward_flops(dims, num_tokens=it.context_len(c) + len(it.suffix_ids[c]),
                                  attention_pairs=attention_pairs_causal(it.context_len(c) + len(it.suffix_ids[c])),
                                  lm_head_tokens=1) for it in items for c in range(it.num_cuts))
    answer_tokens = num_cuts * num_branches * max_answer_tokens  # at most
    decode = forward_flops(dims, num_tokens=answer_tokens, attention_pairs=answer_tokens * (
        sum(it.context_len(c) for it in items for c in range(it.num_cuts)) // max(num_cuts, 1)),
        lm_head_tokens=answer_tokens)
    suffixes = sum(forward_flops(dims, num_tokens=len(it.suffix_ids[c]), attention_pairs=attention_pairs_causal(
        len(it.suffix_ids[c]), it.context_len(c)), lm_head_tokens=1) for it in items for c in range(it.num_cuts))
    nbytes = decode_bytes(dims, num_steps=max_answer_tokens, kv_tokens_read=0, dtype_bytes=dtype_bytes)
    return prefill_once + suffixes + decode, reprefill + decode, nbytes


def policy_pass_counts(dims: ModelDims, *, batch: int, seq_len: int, dtype_bytes: int) -> tuple[float, float]:
    """(FLOPs, fewest bytes) of the whole policy forward + backward over ``batch`` x ``seq_len``
    tokens: backward = 2 x forward; read the weights forward and backward, write their grads."""
    flops = 3 * forward_flops(dims, num_tokens=batch * seq_len, attention_pairs=batch * attention_pairs_causal(seq_len),
                              lm_head_tokens=batch * (seq_len - 1))
    return flops, 3.0 * dims.weight_params * dtype_bytes
