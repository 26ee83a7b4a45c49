"""Per-algorithm credit assignment: samples (graded, maybe with progress) -> token advantages.

Each branch only calls the pure functions of rewards.py and advantages.py.
"""
from __future__ import annotations

import torch

from mrt_engine.rl.advantages import group_advantages, token_advantages
from mrt_engine.rl.rewards import dense_progress_rewards, length_penalty_rewards, scalar_mrt_advantages


def advantages_for(algo, samples, batch, *, group_size: int, max_tokens: int, progress=None) -> tuple[torch.Tensor, dict]:
    """Token advantages ``[N, T]`` for the packed ``batch`` of ``samples`` and a few metrics.

    - grpo: group-normalised outcome.
    - length_penalty: group-normalised ``R - coef * len / max_tokens``.
    - mrt_scalar: ``R - mean(R_terminate)`` per prefix group (no std scaling, as in the paper).
    - mrt_dense: group-normalised outcome plus ``alpha * progress`` of each episode on its tokens.
    """
    rewards = torch.tensor([s.reward for s in samples], dtype=torch.float32)  # [N]
    lengths = torch.tensor([s.num_completion_tokens for s in samples], dtype=torch.float32)
    metrics = {}
    dense = None
    name = algo.name
    if name in ("grpo", "mrt_dense"):
        seq_adv = group_advantages(rewards, group_size, scale=algo.advantage_scale)
    elif name == "length_penalty":
        shaped = length_penalty_rewards(rewards, lengths, max_tokens=max_tokens, coef=algo.length_coef)
        metrics["shaped_reward"] = shaped.mean().item()
        seq_adv = group_advantages(shaped, group_size, scale=algo.advantage_scale)
    elif name == "mrt_scalar":
        m = algo.num_continuations
        terminated = torch.tensor([s.terminated for s in samples]).view(-1, m)
        seq_adv = scalar_mrt_advantages(rewards.view(-1, m), terminated).reshape(-1)
        r = rewards.view(-1, m)
        term_mean = (r * terminated).sum(1) / terminated.sum(1)
        cont_mean = (r * ~terminated).sum(1) / (~terminated).sum(1).clamp(min=1)
        metrics["j_prefix"] = term_mean.mean().item()
        metrics["progress_mean"] = (cont_mean - term_mean).mean().item()
    else:
        raise ValueError(f"algorithm {name!r} has no RL advantages (star / mrt_star are SFT rounds)")
    if name == "mrt_dense":
        if progress is None:
            raise ValueError("mrt_dense needs per-trace progress (estimate_trace_progress)")
        width = batch.input_ids.shape[1]
        spans = [[(start + a, start + b) for a, b in p.episode_spans] for p, start in zip(progress, batch.completion_start)]
        dense = dense_progress_rewards([p.progress for p in progress], spans, width, alpha=algo.alpha)
        metrics["progress_mean"] = float(torch.cat([p.progress for p in progress]).mean())
        metrics["num_episodes"] = sum(len(p.episode_spans) for p in progress) / len(progress)
    adv = token_advantages(seq_adv, batch.loss_mask, dense)
    metrics["adv_abs_mean"] = (adv.abs().sum() / batch.loss_mask.sum().clamp(min=1)).item()
    return adv, metrics
