"""Advantages: group normalisation of sequence rewards, broadcast onto tokens.

Pure tensor functions. A *group* is the G completions sampled for one prompt.
"""
from __future__ import annotations

import torch

SCALES = ("std", "none")


def group_advantages(rewards: torch.Tensor, group_size: int, *, scale: str = "std",
                     eps: float = 1e-6) -> torch.Tensor:
    """GRPO advantages: ``A_i = (R_i - mean_g R) / (std_g R + eps)`` within each group.

    ``rewards [N]`` with ``N = num_groups * group_size``, groups contiguous.
    ``scale="std"``: divide by the group's standard deviation (GRPO; unbiased=False here,
    the population std, so a group of two rewards {0, 1} gives +-1).
    ``scale="none"``: only centre (Dr. GRPO, which drops the std division as a difficulty bias).
    A group with equal rewards gets zero advantages either way.
    """
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r}; use one of {SCALES}")
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be 1-D with a length divisible by group_size={group_size}, "
                         f"got shape {tuple(rewards.shape)}")
    grouped = rewards.view(-1, group_size)  # [num_groups, G]
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "std":
        centred = centred / (grouped.std(dim=1, unbiased=False, keepdim=True) + eps)
    return centred.reshape(-1)


def token_advantages(seq_advantages: torch.Tensor, mask: torch.Tensor,
                     dense: torch.Tensor | None = None) -> torch.Tensor:
    """Broadcast per-sequence advantages onto tokens and add a dense per-token term.

    ``seq_advantages [N]``, ``mask [N, T]`` (1 where the token is trained on),
    ``dense [N, T]`` optional (e.g. :func:`mrt_engine.rl.rewards.dense_progress_rewards`).
    ``A[i, t] = (seq_advantages[i] + dense[i, t]) * mask[i, t]``.
    """
    mask = mask.to(torch.float32)
    if seq_advantages.shape[0] != mask.shape[0]:
        raise ValueError(f"{seq_advantages.shape[0]} advantages for {mask.shape[0]} sequences")
    adv = seq_advantages.to(torch.float32)[:, None].expand_as(mask)
    if dense is not None:
        if dense.shape != mask.shape:
            raise ValueError(f"dense term {tuple(dense.shape)} must match mask {tuple(mask.shape)}")
        adv = adv + dense.to(torch.float32)
    return adv * mask
