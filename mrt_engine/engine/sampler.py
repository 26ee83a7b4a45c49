"""Batched sampling: greedy, temperature, top-k, top-p, with reproducible per-sample seeds.

Each row draws ONE uniform ``u`` from a counter-based hash of ``(seed, output position)``
and inverts the CDF of its processed distribution. So a sample's tokens depend only on its
seed and its logits, never on which other sequences shared the batch or on preemption
(recomputation reproduces the same stream).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

_MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(request_seed: int, sample_index: int) -> int:
    return splitmix64(splitmix64(request_seed & _MASK64) ^ sample_index)


def prompt_seed(seed: int, prompt_ids: list[int]) -> int:
    """The seed of one prompt of a ``generate`` call made with one ``seed`` for all prompts.

    Keyed by the prompt's tokens, not its place in the call: distinct prompts draw
    independently (one shared seed would give sample ``i`` of every prompt the same uniforms,
    so the problems of one evaluation or rollout would share their luck), while the same
    prompt and seed still give the same completions whatever else shares the call.
    """
    digest = hashlib.blake2b(np.asarray(prompt_ids, dtype=np.int64).tobytes(),
                             key=(seed & _MASK64).to_bytes(8, "little"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # 63 bits: an int every backend takes as a seed


def uniform(seed: int, position: int) -> float:
    """A uniform in (0, 1) for output position ``position`` of the sample seeded ``seed``."""
    return ((splitmix64(seed ^ splitmix64(position)) >> 11) + 0.5) / float(1 << 53)


@dataclass
class SamplingBatch:
    """Per-row settings of one sampling call (R rows)."""

    temperatures: list[float]
    top_ps: list[float]
    top_ks: list[int]
    seeds: list[int]
    positions: list[int]  # output index of the token being drawn
    want_logprobs: bool


def sample(logits: torch.Tensor, batch: SamplingBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """logits [R, V] -> (token ids [R] int64, log-probs [R] fp32 of those tokens under the
    raw distribution ``log_softmax(logits)``, or None)."""
    logits = logits.float()
    num_rows, vocab = logits.shape
    device = logits.device
    # Which rows are greedy is read from the host lists, not the device tensor: a step makes
    # no host sync here (the caller's read of the tokens is the step's one).
    num_greedy = sum(t == 0 for t in batch.temperatures)
    temps = torch.tensor(batch.temperatures, device=device)
    greedy = temps == 0
    tokens = None
    if num_greedy == num_rows:
        tokens = logits.argmax(-1)
    else:
        x = logits / torch.where(greedy, 1.0, temps)[:, None]
        if any(batch.top_ks):
            x = _top_k(x, batch.top_ks)
        if any(p < 1.0 for p in batch.top_ps):
            x = _top_p(x, torch.tensor(batch.top_ps, device=device))
        probs = torch.softmax(x, dim=-1)
        cdf = probs.cumsum_(-1)  # [R, V]
        u = torch.tensor([uniform(s, p) for s, p in zip(batch.seeds, batch.positions)],
                         device=device, dtype=cdf.dtype)[:, None]
        drawn = torch.searchsorted(cdf, u * cdf[:, -1:]).squeeze(1).clamp_(max=vocab - 1)
        tokens = torch.where(greedy, logits.argmax(-1), drawn) if num_greedy else drawn
    logprobs = None
    if batch.want_logprobs:
        logprobs = logits.gather(1, tokens[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)
    return tokens, logprobs


def _top_k(x: torch.Tensor, top_ks: list[int]) -> torch.Tensor:
    k_max = min(max(top_ks), x.shape[-1])
    values = x.topk(k_max, dim=-1).values  # [R, k_max], descending
    ks = torch.tensor([min(k, k_max) if k > 0 else k_max for k in top_ks], device=x.device)
    threshold = values.gather(1, (ks - 1)[:, None])
    off = torch.tensor([k == 0 for k in top_ks], device=x.device)[:, None]
    return x.masked_fill((x < threshold) & ~off, float("-inf"))


def _top_p(x: torch.Tensor, top_ps: torch.Tensor) -> torch.Tensor:
    sorted_x, order = x.sort(dim=-1, descending=True)
    probs = torch.softmax(sorted_x, dim=-1)
    before = probs.cumsum(-1) - probs  # mass strictly above each token
    drop = before >= top_ps[:, None]  # keeps the smallest set reaching top_p (at least one token)
    sorted_x = sorted_x.masked_fill(drop, float("-inf"))
    return torch.empty_like(x).scatter_(1, order, sorted_x)
