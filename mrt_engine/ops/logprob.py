"""``selective_log_prob``: dispatch between the fused Triton kernel and the torch reference."""
from __future__ import annotations

from ._dispatch import interpreter_dtype, use_triton
from .logprob_ref import selective_log_prob_reference
from .logprob_triton import selective_log_prob_triton


def selective_log_prob(hidden, weight, targets, *, bias=None, temperature=1.0, return_entropy=False,
                       chunk_size=None, backend=None):
    """Per-token log-probs [M] fp32 of ``targets`` under ``softmax((hidden @ weight.T + bias) / T)``.

    Natural log. Returns ``(logp, entropy)`` when ``return_entropy``. Differentiable w.r.t.
    hidden, weight (and bias); never materialises the ``[M, V]`` logits. CUDA -> Triton,
    CPU -> reference; ``backend="triton"|"torch"`` forces one.
    """
    if use_triton(backend, hidden, weight):
        hidden, weight, bias = interpreter_dtype(hidden, weight, bias)
        return selective_log_prob_triton(hidden, weight, targets, bias=bias, temperature=temperature,
                                         return_entropy=return_entropy, chunk_size=chunk_size)
    return selective_log_prob_reference(hidden, weight, targets, bias=bias, temperature=temperature,
                                        return_entropy=return_entropy, chunk_size=chunk_size)
