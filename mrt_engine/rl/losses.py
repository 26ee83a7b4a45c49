"""Policy losses: token-level clipped surrogate, optional KL to a reference, aggregation modes.

Pure tensor functions on a padded ``[N, T]`` layout with a 0/1 ``mask`` of trained tokens.
Log-probs come from the fused selective log-prob (:mod:`mrt_engine.rl.logprobs`), so the
``[tokens, vocab]`` logits are never materialised.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

AGGREGATIONS = ("grpo", "dr_grpo", "dapo")


@dataclass
class LossOutput:
    loss: torch.Tensor        # scalar to backpropagate
    pg_loss: torch.Tensor     # surrogate part (detached)
    kl: torch.Tensor          # mean k3 KL per trained token (detached; 0 without a reference)
    clip_frac: torch.Tensor   # fraction of trained tokens where the clip was active
    ratio_mean: torch.Tensor  # mean importance ratio over trained tokens


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate "k3": ``exp(d) - d - 1`` with ``d = ref_logp - logp``.

    Unbiased, non-negative, low variance (Schulman's estimator, as in GRPO).
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, *, max_tokens: int | None = None,
              total_sequences: int | None = None, total_tokens: float | None = None) -> torch.Tensor:
    """Reduce a per-token loss ``[N, T]`` to a scalar.

    - ``grpo``: ``(1/N) sum_i (1/|o_i|) sum_t l_it`` (sequence mean, then batch mean; GRPO).
    - ``dapo``: ``sum_{i,t} l_it / sum_i |o_i|`` (token mean over the batch; DAPO).
    - ``dr_grpo``: ``sum_{i,t} l_it / (N * max_tokens)`` (constant normaliser; Dr. GRPO), with
      ``max_tokens`` the completion budget.

    For gradient accumulation pass the whole batch's ``total_sequences`` (grpo, dr_grpo) or
    ``total_tokens`` (dapo): the micro-batch losses then sum to the full-batch loss.
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"aggregation={mode!r}; use one of {AGGREGATIONS}")
    mask = mask.to(per_token.dtype)
    num_seqs = total_sequences if total_sequences is not None else per_token.shape[0]
    if mode == "grpo":
        seq_len = mask.sum(dim=1).clamp(min=1)
        return ((per_token * mask).sum(dim=1) / seq_len).sum() / num_seqs
    if mode == "dapo":
        denom = total_tokens if total_tokens is not None else mask.sum().clamp(min=1)
        return (per_token * mask).sum() / denom
    if max_tokens is None or max_tokens <= 0:
        raise ValueError("aggregation='dr_grpo' needs max_tokens (the completion budget) > 0")
    return (per_token * mask).sum() / (num_seqs * max_tokens)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                clip_low: float = 0.2, clip_high: float = 0.2, ref_logp: torch.Tensor | None = None,
                kl_coef: float = 0.0, aggregation: str = "grpo", max_tokens: int | None = None,
                total_sequences: int | None = None, total_tokens: float | None = None) -> LossOutput:
    """Token-level clipped surrogate (PPO/GRPO) with optional KL to a reference policy.

    ``ratio = exp(logp - old_logp)``;
    ``l_t = -min(ratio * A_t, clip(ratio, 1 - clip_low, 1 + clip_high) * A_t) + kl_coef * k3_t``;
    reduced by :func:`aggregate`. All inputs ``[N, T]``; ``advantages`` already per token
    (sequence advantage broadcast plus any dense term). ``clip_high > clip_low`` gives DAPO's
    clip-higher. With one update per batch ``old_logp = logp.detach()`` and the ratio is 1:
    the gradient is then the plain ``A * grad log pi``.
    """
    if not (logp.shape == old_logp.shape == advantages.shape == mask.shape):
        raise ValueError(f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)}, advantages "
                         f"{tuple(advantages.shape)} and mask {tuple(mask.shape)} must share one [N, T] shape")
    if kl_coef and ref_logp is None:
        raise ValueError("kl_coef > 0 needs ref_logp (log-probs of the reference model)")
    maskf = mask.to(torch.float32)
    ratio = torch.exp(logp - old_logp.detach())
    surr1 = ratio * advantages
    surr2 = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
    pg = -torch.min(surr1, surr2)  # [N, T]
    kw = dict(max_tokens=max_tokens, total_sequences=total_sequences, total_tokens=total_tokens)
    pg_loss = aggregate(pg, maskf, aggregation, **kw)
    loss = pg_loss
    num_tok = maskf.sum().clamp(min=1)
    kl_mean = torch.zeros((), dtype=torch.float32, device=logp.device)
    if ref_logp is not None:
        kl = kl_k3(logp, ref_logp.detach())
        if kl_coef:
            loss = loss + kl_coef * aggregate(kl, maskf, aggregation, **kw)
        kl_mean = (kl * maskf).sum().detach() / num_tok
    clipped = ((surr2 < surr1) & (maskf > 0)).to(torch.float32)
    return LossOutput(loss=loss, pg_loss=pg_loss.detach(), kl=kl_mean,
                      clip_frac=clipped.sum() / num_tok, ratio_mean=(ratio.detach() * maskf).sum() / num_tok)


def sft_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Supervised (teacher-forced) loss: mean negative log-likelihood over trained tokens."""
    maskf = mask.to(logp.dtype)
    return -(logp * maskf).sum() / maskf.sum().clamp(min=1)
