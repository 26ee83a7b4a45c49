"""Optimizer and learning-rate schedule (cosine with linear warmup, as in the paper)."""
from __future__ import annotations

import math

import torch


def build_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norm weights (1-D tensors)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), foreach=False)


def cosine_with_warmup(step: int, *, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warmup ``(step+1)/warmup`` then cosine from 1 to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer, cfg, total_steps: int):
    warmup = int(round(cfg.warmup_ratio * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total_steps=total_steps, warmup_steps=warmup,
                                                min_ratio=cfg.min_lr_ratio))
