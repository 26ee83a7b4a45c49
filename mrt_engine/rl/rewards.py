"""Rewards: outcome, MRT progress bonuses (scalar and dense), length penalty.

All functions are pure tensor functions. Shapes: ``N`` traces, ``T`` padded token positions.

The MRT objective (docs/method.md section 2) is ``L_outcome + alpha * E[sum_j r_prg(z_j; c_{j-1})]``
with ``r_prg(z_j; c) = J(c, z_j) - J(c)``: the gain in forced-termination success that
episode j causes. Two training forms are shipped (docs/method.md section 5):

- scalar (the paper's): a continuation from a prefix gets ``A = R - mean(R_terminate)``,
  the forced-termination success at the prefix replacing the usual group mean
  (:func:`scalar_mrt_advantages`).
- dense (the authors' later online variant): every episode is paid its own progress, placed
  on that episode's tokens (:func:`dense_progress_rewards`).
"""
from __future__ import annotations

import torch


def outcome_rewards(scores) -> torch.Tensor:
    """0/1 (or graded) outcome reward R per trace: ``R_i = score_i``. Returns fp32 ``[N]``."""
    rewards = torch.as_tensor(scores, dtype=torch.float32)
    if rewards.dim() != 1:
        raise ValueError(f"scores must be 1-D (one per trace), got shape {tuple(rewards.shape)}")
    return rewards


def episode_progress(j: torch.Tensor) -> torch.Tensor:
    """Per-episode progress from success probabilities at the cuts.

    ``j [L+1]``: J after 0, 1, ..., L episodes (``j[0]`` = the empty prefix).
    Returns ``[L]`` with ``r_prg_k = j[k+1] - j[k]`` (docs/method.md section 2).
    """
    j = torch.as_tensor(j, dtype=torch.float32)
    if j.dim() != 1 or j.numel() < 1:
        raise ValueError(f"j must be 1-D with at least one cut (the empty prefix), got shape {tuple(j.shape)}")
    return j[1:] - j[:-1]


def scalar_mrt_advantages(rewards: torch.Tensor, terminated: torch.Tensor, *,
                          baseline: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar MRT-RL advantages for continuations that share one prefix per row.

    ``rewards [P, m]``: outcome reward of the m continuations sampled from prefix p.
    ``terminated [P, m]`` bool: the continuation was forced to terminate at once (termination
    text appended, then answered) rather than reasoning on.
    ``A[p, i] = R[p, i] - mean_{i': terminated[p, i']} R[p, i']``  (docs/method.md section 5).

    ``baseline [P]`` optional: an estimate of the forced-termination success at the prefix
    (e.g. J from :class:`mrt_engine.progress.ProgressEstimator` in scoring mode). It is used
    for rows with no terminated continuation; the paper always samples some, so with
    neither the row is an error rather than a silent zero baseline.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    terminated = torch.as_tensor(terminated, dtype=torch.bool)
    if rewards.dim() != 2 or terminated.shape != rewards.shape:
        raise ValueError(f"rewards and terminated must both be [num_prefixes, m], got "
                         f"{tuple(rewards.shape)} and {tuple(terminated.shape)}")
    num_term = terminated.sum(dim=1)  # [P]
    term_mean = (rewards * terminated).sum(dim=1) / num_term.clamp(min=1)
    if baseline is not None:
        baseline = torch.as_tensor(baseline, dtype=torch.float32).reshape(-1)
        if baseline.shape[0] != rewards.shape[0]:
            raise ValueError(f"baseline has {baseline.shape[0]} entries for {rewards.shape[0]} prefixes")
        term_mean = torch.where(num_term > 0, term_mean, baseline)
    elif bool((num_term == 0).any()):
        rows = torch.nonzero(num_term == 0).flatten().tolist()
        raise ValueError(f"prefixes {rows} have no terminated continuation: sample at least one "
                         "(num_terminate >= 1) or pass baseline= (J at the prefix)")
    return rewards - term_mean[:, None]


def dense_progress_rewards(progress: list[torch.Tensor], episode_token_spans: list[list[tuple[int, int]]],
                           num_positions: int, *, alpha: float = 1.0) -> torch.Tensor:
    """Dense MRT reward: each episode's progress placed on that episode's tokens.

    ``progress[i] [L_i]``: progress of episode k of trace i (see :func:`episode_progress`).
    ``episode_token_spans[i]``: ``(start, end)`` token offsets of each episode within the
    completion of trace i (end exclusive; the same count as ``progress[i]``).
    Returns ``[N, num_positions]`` fp32 with ``out[i, t] = alpha * progress[i][k]`` for every
    token t of episode k and 0 elsewhere (prompt padding, tokens past the last episode).

    Departure from the paper: the authors' online variant adds the bonus to the episode's
    reward; we keep it per token (not summed to go), so the policy-gradient signal for a token
    is its own episode's progress on top of the sequence-level outcome advantage.
    """
    if len(progress) != len(episode_token_spans):
        raise ValueError(f"{len(progress)} progress rows for {len(episode_token_spans)} traces")
    out = torch.zeros(len(progress), num_positions, dtype=torch.float32)  # [N, T]
    for i, (prg, spans) in enumerate(zip(progress, episode_token_spans)):
        prg = torch.as_tensor(prg, dtype=torch.float32).reshape(-1)
        if prg.numel() != len(spans):
            raise ValueError(f"trace {i}: {prg.numel()} progress values for {len(spans)} episodes")
        for k, (start, end) in enumerate(spans):
            if not 0 <= start <= end <= num_positions:
                raise ValueError(f"trace {i} episode {k}: token span ({start}, {end}) outside [0, {num_positions}]")
            out[i, start:end] = alpha * prg[k]
    return out


def length_penalty_rewards(rewards: torch.Tensor, lengths: torch.Tensor, *, max_tokens: int,
                           coef: float = 0.5, only_correct: bool = False) -> torch.Tensor:
    """Length-penalised outcome reward (the "length penalty" baseline of docs/method.md Table 1).

    ``R'_i = R_i - coef * lengths_i / max_tokens`` (completion tokens, a linear penalty in
    [0, coef]). With ``only_correct`` the penalty applies only where ``R_i > 0``, so a short
    wrong answer is never preferred over a long right one. The paper does not give its exact
    penalty; this linear form is our choice.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    lengths = torch.as_tensor(lengths, dtype=torch.float32)
    if rewards.shape != lengths.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and lengths {tuple(lengths.shape)} differ in shape")
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    penalty = coef * lengths / max_tokens
    if only_correct:
        penalty = torch.where(rewards > 0, penalty, torch.zeros_like(penalty))
    return rewards - penalty
