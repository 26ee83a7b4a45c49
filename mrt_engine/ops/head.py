"""``head_logits``: ``hidden @ weight.T`` for a few rows against a large vocabulary, on CPU.

CPU BLAS runs a short-and-wide product such as ``[16, 576] x [576, 49152]`` (a decode batch
through SmolLM2's LM head) at about half the speed it reaches on the same work cut into
vocabulary slices of ~2,048 rows of the weight (measured on the 2-core machine: 27 -> 17 ms at
16 rows, 59 -> 40 ms at 85 rows). Each slice's product is written into its columns of one
output buffer, so nothing is copied and the sum over H is the same per element. The engine's
decode head and the chunked log-prob reference both call it.
"""
from __future__ import annotations

import torch

#: Vocabulary rows per product.
SLICE_ROWS = 2048
#: Above this many rows the product is no longer short, and slicing stops paying.
MAX_ROWS = 256


def slicing_pays(hidden: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``head_logits`` slices: CPU, few rows, a large vocabulary, one dtype, no autograd
    (``torch.mm(out=...)`` has no backward)."""
    return (not hidden.is_cuda and hidden.shape[0] <= MAX_ROWS and weight.shape[0] >= 2 * SLICE_ROWS
            and hidden.dtype == weight.dtype
            and not (torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)))


def head_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """hidden [N, H], weight [V, H], bias [V] or None -> hidden @ weight.T + bias [N, V] (a new
    tensor, dtype of the inputs); ``F.linear`` itself where slicing does not pay."""
    if not slicing_pays(hidden, weight):
        return torch.nn.functional.linear(hidden, weight, bias)
    vocab = weight.shape[0]
    out = torch.empty(hidden.shape[0], vocab, dtype=hidden.dtype, device=hidden.device)  # [N, V]
    for v0 in range(0, vocab, SLICE_ROWS):
        v1 = min(vocab, v0 + SLICE_ROWS)
        torch.mm(hidden, weight[v0:v1].T, out=out[:, v0:v1])
    if bias is not None:
        out += bias
    return out
