"""Per-token log-probs of a padded batch under a causal LM, through the fused selective
log-prob (never materialises ``[tokens, vocab]`` logits)."""
from __future__ import annotations

import torch

from mrt_engine.ops import selective_log_prob


def _selective_log_prob(hidden, weight, targets, *, temperature=1.0, bias=None):
    return selective_log_prob(hidden, weight, targets, bias=bias, temperature=temperature)


def token_log_probs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor, *,
                    temperature: float = 1.0) -> torch.Tensor:
    """``logp[i, t] = log p(input_ids[i, t] | input_ids[i, :t])`` where ``loss_mask[i, t]``, else 0.

    ``input_ids, attention_mask, loss_mask [N, T]`` (right padded; ``loss_mask[:, 0]`` must be 0
    since the first token has no context). Returns fp32 ``[N, T]``; differentiable w.r.t. the
    model's parameters. Only the masked rows go through the LM head.
    """
    if input_ids.shape != attention_mask.shape or input_ids.shape != loss_mask.shape:
        raise ValueError("input_ids, attention_mask and loss_mask must share one [N, T] shape")
    if bool(loss_mask[:, 0].any()):
        raise ValueError("loss_mask[:, 0] must be 0: the first token has no context to predict it from")
    decoder = model.get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [N, T, H]
    select = loss_mask[:, 1:].bool()                      # [N, T-1]: position t predicts t+1
    rows = hidden[:, :-1][select]                         # [M, H]
    targets = input_ids[:, 1:][select]                    # [M]
    head = model.get_output_embeddings()
    logp_rows = _selective_log_prob(rows, head.weight, targets, temperature=temperature,
                                    bias=getattr(head, "bias", None))  # [M] fp32
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    out_tail = out[:, 1:].masked_scatter(select, logp_rows)
    return torch.cat([out[:, :1], out_tail], dim=1)
