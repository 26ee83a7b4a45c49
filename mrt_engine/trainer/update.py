"""One policy update over a packed rollout batch: micro-batches, gradient accumulation,
clipping, optimizer and scheduler steps. Also the supervised (SFT) step.

``optim.packing`` picks the layout of the policy-gradient passes (the gradient pass and the
no-grad passes for the old and reference policy): ``padded`` runs ``micro_batch_size`` rows at a
time, each on its own; ``tree`` packs rows into prefix trees (:mod:`mrt_engine.rl.packing`,
every shared prefix once) in micro-batches of at most ``micro_batch_tokens`` packed tokens. Both
give log-probs in the padded ``[rows, T]`` layout, so the loss is the same function.

Every function takes the *policy module* (``mrt_engine.trainer.dist.PolicyLogProbs`` of the model,
maybe wrapped in DDP or sharded by FSDP2): calling it gives per-token log-probs, and the
wrapper synchronises the gradients itself, so nothing here all-reduces by hand.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from mrt_engine.trainer import dist
from mrt_engine.trainer.dist import grad_norm_value
from mrt_engine.rl.packing import TreeBatch, pack_tree, split_micro_batches, tree_micro_batches
from mrt_engine.rl.losses import policy_loss, sft_loss
from mrt_engine.rl.rollout import Batch
from mrt_engine.rl.rollout import pack


def autocast_context(precision: str, device: torch.device):
    """bf16 autocast where the device supports it ("auto": CUDA with bf16), else nothing."""
    if precision == "no" or (precision == "auto" and not (device.type == "cuda" and torch.cuda.is_bf16_supported())):
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _micro_ranges(n: int, size: int):
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def _to(batch: Batch, device) -> Batch:
    return Batch(batch.input_ids.to(device), batch.attention_mask.to(device), batch.loss_mask.to(device),
                 batch.completion_start, batch.groups)


def _device(policy) -> torch.device:
    return next(policy.parameters()).device


@dataclass
class MicroBatch:
    """Rows ``start:end`` of the batch, and their prefix-tree packing (None: padded rows)."""

    start: int
    end: int
    tree: TreeBatch | None = None


def plan_micro_batches(batch: Batch, *, micro_batch_size: int, packing: str = "padded",
                       micro_batch_tokens: int = 0, device=None) -> list[MicroBatch]:
    """The micro-batches of one update (planned once: the old-policy, reference and gradient
    passes run the same ones), tree plans on ``device``. Under ``torchrun`` every rank gets the
    same number of them (DDP and FSDP2 run collectives in each forward and backward); ranks
    hold equal row counts."""
    if packing == "padded":
        return [MicroBatch(a, b) for a, b in _micro_ranges(batch.num_sequences, micro_batch_size)]
    if packing != "tree":
        raise ValueError(f"packing={packing!r}: use 'tree' or 'padded'")
    budget = micro_batch_tokens or micro_batch_size * int(batch.attention_mask.sum(dim=1).max())
    ranges = tree_micro_batches(batch, max_tokens=budget)
    ranges = split_micro_batches(ranges, dist.max_over_ranks(len(ranges)))
    return [MicroBatch(a, b, pack_tree(batch, a, b, device=device)) for a, b in ranges]


def _micro_log_probs(policy, batch: Batch, mb: MicroBatch, device) -> tuple[torch.Tensor, Batch]:
    """(log-probs ``[rows, width]``, the rows as a padded batch on ``device``) of one micro-batch."""
    rows = _to(batch.rows(mb.start, mb.end), device)
    if mb.tree is not None:
        return policy(mb.tree.to(device)), rows
    return policy(rows.input_ids, rows.attention_mask, rows.loss_mask), rows


@torch.no_grad()
def batch_log_probs(policy, batch: Batch, *, micro_batch_size: int, precision: str = "no", packing: str = "padded",
                    micro_batch_tokens: int = 0, micro_batches: list[MicroBatch] | None = None) -> torch.Tensor:
    """Log-probs ``[N, T]`` of the completion tokens without gradients (old / reference policy)."""
    device = _device(policy)
    if micro_batches is None:
        micro_batches = plan_micro_batches(batch, micro_batch_size=micro_batch_size, packing=packing,
                                           micro_batch_tokens=micro_batch_tokens, device=device)
    out = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    for mb in micro_batches:
        with autocast_context(precision, device):
            lp, _ = _micro_log_probs(policy, batch, mb, device)
        out[mb.start:mb.end, :lp.shape[1]] = lp.float().cpu()
    return out


def policy_update(policy, optimizer, batch: Batch, advantages: torch.Tensor, *, algo, optim, max_tokens: int,
                  precision: str = "no", ref_logp: torch.Tensor | None = None,
                  micro_batches: list[MicroBatch] | None = None) -> dict:
    """``algo.num_updates`` optimizer steps over ``batch``; returns averaged loss metrics.
    ``micro_batches``: from :func:`plan_micro_batches` (planned from ``optim`` when None)."""
    device = _device(policy)
    policy.train()
    if micro_batches is None:
        micro_batches = plan_micro_batches(batch, micro_batch_size=optim.micro_batch_size, packing=optim.packing,
                                           micro_batch_tokens=optim.micro_batch_tokens, device=device)
    old_logp = batch_log_probs(policy, batch, micro_batch_size=optim.micro_batch_size, precision=precision,
                               micro_batches=micro_batches) if algo.num_updates > 1 else None
    total_tokens = float(batch.loss_mask.sum().clamp(min=1))
    sums = {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "grad_norm": 0.0}
    for _ in range(algo.num_updates):
        optimizer.zero_grad(set_to_none=True)
        for m in micro_batches:
            a, b = m.start, m.end
            with autocast_context(precision, device):
                logp, mb = _micro_log_probs(policy, batch, m, device)
            width = mb.input_ids.shape[1]
            adv = advantages[a:b, :width].to(device)
            old = old_logp[a:b, :width].to(device) if old_logp is not None else logp.detach()
            ref = ref_logp[a:b, :width].to(device) if ref_logp is not None else None
            out = policy_loss(logp, old, adv, mb.loss_mask, clip_low=algo.clip_low, clip_high=algo.clip_high,
                              ref_logp=ref, kl_coef=algo.kl_coef, aggregation=algo.aggregation,
                              max_tokens=max_tokens, total_sequences=batch.num_sequences, total_tokens=total_tokens)
            out.loss.backward()
            # kl and clip_frac are token means: weigh each micro-batch by its trained tokens, so
            # the metric is the batch's token mean whatever the micro-batches are
            share = float(mb.loss_mask.sum()) / total_tokens
            sums["loss"] += out.loss.item()
            sums["kl"] += out.kl.item() * share
            sums["clip_frac"] += out.clip_frac.item() * share
        sums["grad_norm"] += _step(policy, optimizer, optim.grad_clip)
    return {k: v / algo.num_updates for k, v in sums.items()}


def _step(policy, optimizer, grad_clip: float) -> float:
    params = [p for p in policy.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf"))
    optimizer.step()
    return grad_norm_value(norm)


def sft_update(policy, optimizer, batch: Batch, *, micro_batch_size: int, grad_clip: float,
               precision: str = "no") -> dict:
    """One supervised step (teacher forcing) on the completion tokens of ``batch``."""
    device = _device(policy)
    policy.train()
    optimizer.zero_grad(set_to_none=True)
    total_tokens = float(batch.loss_mask.sum().clamp(min=1))
    loss_sum = 0.0
    for a, b in _micro_ranges(batch.num_sequences, micro_batch_size):
        mb = _to(batch.rows(a, b), device)
        with autocast_context(precision, device):
            logp = policy(mb.input_ids, mb.attention_mask, mb.loss_mask)
        # token mean over the whole batch: each micro-batch adds its share
        loss = sft_loss(logp, mb.loss_mask) * (float(mb.loss_mask.sum()) / total_tokens)
        loss.backward()
        loss_sum += loss.item()
    norm = _step(policy, optimizer, grad_clip)
    return {"loss": loss_sum, "grad_norm": norm}


def sft_epochs(policy, optimizer, samples: list, *, epochs: int, pad_id: int, rng, micro_batch_size: int,
               grad_clip: float, precision: str = "no") -> dict:
    """``epochs`` shuffled passes of supervised steps over ``samples`` (one step per micro-batch)."""

    samples, losses = list(samples), []
    for _ in range(epochs if samples else 0):
        rng.shuffle(samples)
        for i in range(0, len(samples), micro_batch_size):
            out = sft_update(policy, optimizer, pack(samples[i:i + micro_batch_size], pad_id),
                             micro_batch_size=micro_batch_size, grad_clip=grad_clip, precision=precision)
            losses.append(out["loss"])
    return {"loss": sum(losses) / len(losses) if losses else 0.0}
