"""``merge_state``: combine two partial attention results over disjoint key sets.

A state is ``(v, s)``: ``v [..., H, D]`` the softmax-weighted values over one key set and
``s [..., H]`` the natural-log log-sum-exp of the scaled scores over that set (``-inf`` for
an empty set). Cascade attention (shared prefix + tail) and prefix/suffix scoring both
compute two states and merge them here; split-KV kernels merge K states with
``merge_states``, the one implementation of the weighting.
"""
from __future__ import annotations

import torch


def merge_state(v_a: torch.Tensor, s_a: torch.Tensor, v_b: torch.Tensor, s_b: torch.Tensor):
    """(v_a, s_a) + (v_b, s_b) -> (v, s); natural-log LSE; empty + empty -> (0, -inf)."""
    if v_a.shape != v_b.shape or s_a.shape != s_b.shape or v_a.shape[:-1] != s_a.shape:
        raise ValueError(
            f"merge_state shapes: v_a {tuple(v_a.shape)}, s_a {tuple(s_a.shape)}, v_b {tuple(v_b.shape)}, "
            f"s_b {tuple(s_b.shape)}; expected v [..., H, D] and s [..., H] matching"
        )
    v, s = merge_states(torch.stack([v_a, v_b]), torch.stack([s_a, s_b]))
    return v.to(v_a.dtype), s


def merge_states(v: torch.Tensor, s: torch.Tensor):
    """Merge K partial states stacked on dim 0: v [K, ..., H, D], s [K, ..., H] -> (v, s) fp32."""
    s = s.float()
    lse = torch.logsumexp(s, dim=0)  # [..., H]; all -inf -> -inf
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    w = torch.exp(s - safe)  # [K, ..., H]; -inf parts -> 0
    return (v.float() * w[..., None]).sum(0), lse
