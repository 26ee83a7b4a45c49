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

What a dense form places on an episode's tokens is its *credit*, a list per trace. Beside the
episode's own progress (:func:`episode_progress`) three other credits are shipped, each a pure
function of the progress values, so every dense form shares :func:`dense_progress_rewards`:

- :func:`progress_to_go`: the progress from the episode to the end of the trace;
- :func:`centred_progress`: progress minus a leave-one-out mean over the group at the same
  episode index;
- two placebos that keep the credit values and break their placement:
  :func:`shuffle_across_traces` (the batch's values permuted over all its episodes) and
  :func:`shuffle_within_traces` (each trace's values permuted among its own episodes).
"""
from __future__ import annotations

import random
from typing import Sequence

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

    Relation to the authors' public code (CMU-AIRe/MRT, train/rl/README.md): there the
    group-mean baseline of GRPO/PPO is replaced by ``A = R - R_termination``, the reward of
    terminating at the prefix, with no std scaling; the prefixes are cuts of the policy's own
    traces. ``mrt_scalar`` does exactly that online: one trace per problem from the current
    policy, cut after a random number of episodes, m continuations from the cut, some of
    them terminated at once; their mean grade is ``R_termination``. Every continuation
    (terminated ones included) is trained with this advantage; the prefix is context.

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


def progress_to_go(progress) -> torch.Tensor:
    """Progress-to-go: ``out[k] = sum_{k' >= k} progress[k']``, the progress from episode k to the end.

    ``progress [L]`` (:func:`episode_progress`). Returns fp32 ``[L]``; ``out[0] = J_L - J_0``.

    Relation to the paper: with per-episode rewards ``r_prg(z_j)``, the policy gradient of
    ``E[sum_j r_prg(z_j)]`` weights the tokens of episode k by the rewards from k onward (an
    action cannot change the rewards before it): this is the credit of the MRT objective taken
    literally. The authors' online variant (and our ``mrt_dense``) pays an episode its own
    progress only. Telescoping makes it ``J_L - J_{k-1}``: with ``natural_end: outcome`` the
    first episode gets ``R - J_0``, a second, uncentred copy of the outcome.
    """
    progress = torch.as_tensor(progress, dtype=torch.float32).reshape(-1)
    return progress.flip(0).cumsum(0).flip(0)


def centred_progress(progress: Sequence, groups: Sequence[int]) -> list[torch.Tensor]:
    """Progress minus the leave-one-out mean over the group at the same episode index.

    ``progress[i] [L_i]``: the episode progress of trace i; ``groups[i]``: its group (the traces
    sampled for one prompt). ``out[i][k] = progress[i][k] - mean{progress[i'][k] : i' != i in the
    same group, L_i' > k}``; where no other trace of the group has an episode k the baseline is
    0 (the progress is kept as is).

    Relation to the paper: not in it. It is the process-return baseline of step-level RL methods
    (a per-step group mean, left out one so the baseline does not depend on the trace itself):
    an episode is paid for progress beyond what its group made at the same point. Summed over
    a trace it no longer telescopes to ``R - J_0``, so it stops re-paying the outcome that GRPO
    already credits; it pays where J moves differently in traces of equal outcome.
    """
    rows = [torch.as_tensor(p, dtype=torch.float32).reshape(-1) for p in progress]
    if len(rows) != len(groups):
        raise ValueError(f"{len(rows)} progress rows for {len(groups)} group ids")
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    out = []
    for i, row in enumerate(rows):
        others = [rows[o] for o in members[groups[i]] if o != i]
        base = torch.zeros_like(row)  # [L_i]
        for k in range(row.numel()):
            at_k = [o[k] for o in others if o.numel() > k]
            if at_k:
                base[k] = torch.stack(at_k).mean()
        out.append(row - base)
    return out


def shuffle_across_traces(progress: Sequence, rng: random.Random) -> list[list[float]]:
    """Placebo: all episodes' values of the batch in one random permutation, cut back to each
    trace's episode count. Same multiset of credit values and the same episode counts; each
    trace's total and the placement are broken. ``rng.shuffle`` of the pooled list (the
    permutation ``mrt_dense_placebo`` has drawn since it exists, for a given seed)."""
    rows = [[float(v) for v in p] for p in progress]
    pooled = [v for row in rows for v in row]
    rng.shuffle(pooled)
    out, at = [], 0
    for row in rows:
        out.append(pooled[at:at + len(row)])
        at += len(row)
    return out


def shuffle_within_traces(progress: Sequence, rng: random.Random) -> list[list[float]]:
    """Placebo: each trace's values permuted among its own episodes. Same multiset per trace,
    so each trace's total (``J_L - J_0``: the part of the dense credit that re-pays the outcome)
    is kept and only the placement inside the trace is broken. A trace whose values are not all
    equal always changes (a permutation that leaves every value in place is drawn again); one
    episode, or equal values, cannot move.

    Relation to the paper: not in it; it is our control for "does it matter *which* episode is
    paid?". If the within-trace placebo matches ``mrt_dense``, what helps is the trace total,
    i.e. a second copy of the outcome, not credit to episodes.
    """
    out = []
    for p in progress:
        row = [float(v) for v in p]
        moved = list(row)
        if len(set(row)) > 1:
            while moved == row:
                rng.shuffle(moved)
        out.append(moved)
    return out


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
    is its own episode's progress on top of the sequence-level outcome advantage. Any other
    per-episode credit (:func:`progress_to_go`, :func:`centred_progress`, the placebos) goes
    through this same function in place of ``progress``.
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
