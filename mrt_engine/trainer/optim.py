"""Optimizer and learning-rate schedule (cosine with linear warmup, as in the paper), over the
run's steps, or over its budget of generated tokens when it stops on tokens."""
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


def cosine_at_fraction(fraction: float, *, warmup_ratio: float, min_ratio: float = 0.0) -> float:
    """LR multiplier at ``fraction`` (0..1) of a run: linear warmup from 0 over the first
    ``warmup_ratio`` of it, then cosine from 1 to ``min_ratio``; ``min_ratio`` past the end."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < warmup_ratio:
        return fraction / warmup_ratio
    progress = (fraction - warmup_ratio) / max(1e-12, 1.0 - warmup_ratio)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class TokenBudgetSchedule:
    """Cosine with warmup over a run's budget of generated training tokens (``max_train_tokens``).

    A run that stops on tokens does not know its number of steps: an arm whose traces are short
    takes more steps for the same tokens, and a schedule over ``steps`` would give it more
    updates at a lower rate than an arm with long traces. Here a step's rate is the schedule at
    the midpoint of the share of the budget the step spends:
    ``cosine_at_fraction((tokens_before + within / 2) / budget)`` with ``within`` the step's
    tokens up to the end of the budget (the last step, which crosses it, is not given rate 0),
    so equal tokens get equal rates whatever the step count. The trainer calls :meth:`begin_step` once the step's rollout
    is known, before its update. Stateless between steps (the tokens spent are the trainer's
    own counter), so a resumed run gets the same rates; ``step()`` exists for the trainer's loop.
    """

    def __init__(self, optimizer, cfg, budget_tokens: int):
        if budget_tokens <= 0:
            raise ValueError(f"max_train_tokens={budget_tokens}: need > 0 for a schedule over tokens")
        self.optimizer, self.budget = optimizer, float(budget_tokens)
        self.warmup_ratio, self.min_ratio = cfg.warmup_ratio, cfg.min_lr_ratio
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]

    def multiplier(self, tokens_before: float, step_tokens: float) -> float:
        within = max(0.0, min(step_tokens, self.budget - tokens_before))  # the part of the step inside the budget
        mid = (tokens_before + within / 2.0) / self.budget
        return cosine_at_fraction(mid, warmup_ratio=self.warmup_ratio, min_ratio=self.min_ratio)

    def begin_step(self, tokens_before: float, step_tokens: float) -> float:
        """Set every group's rate for a step that starts after ``tokens_before`` tokens and spends
        ``step_tokens`` (all ranks together); returns the multiplier."""
        m = self.multiplier(tokens_before, step_tokens)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * m
        return m

    def step(self) -> None:
        """Nothing: the rate is set per step by :meth:`begin_step`."""

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "budget": self.budget}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs = list(state["base_lrs"])


def build_scheduler(optimizer, cfg, total_steps: int, *, total_tokens: int | None = None):
    """The schedule over ``total_tokens`` when a run stops on tokens (:class:`TokenBudgetSchedule`),
    else over ``total_steps`` (a LambdaLR of :func:`cosine_with_warmup`)."""
    if total_tokens:
        return TokenBudgetSchedule(optimizer, cfg, total_tokens)
    warmup = int(round(cfg.warmup_ratio * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total_steps=total_steps, warmup_steps=warmup,
                                                min_ratio=cfg.min_lr_ratio))
