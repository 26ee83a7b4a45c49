"""Rank awareness: single process by default; under torchrun the same code shards prompts by
rank, averages metrics and gradients, and lets rank 0 write.

Parameters are replicated and gradients all-reduced (plain data parallel over gloo/NCCL);
FSDP2 for models that do not fit on one device is the next step and keeps this interface.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env() -> None:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1 in the environment)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def shard(items: list, *, of_rank: int | None = None, num_ranks: int | None = None) -> list:
    """This rank's share of a step's items (contiguous blocks; every rank gets the same count)."""
    r = rank() if of_rank is None else of_rank
    n = world_size() if num_ranks is None else num_ranks
    if len(items) % n:
        raise ValueError(f"{len(items)} items cannot be split evenly over {n} ranks; make prompts_per_step "
                         f"a multiple of the world size")
    per = len(items) // n
    return items[r * per:(r + 1) * per]


def mean_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Average scalar metrics over ranks (identity in one process)."""
    if not is_distributed() or not metrics:
        return metrics
    keys = sorted(metrics)
    t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    t /= world_size()
    return dict(zip(keys, t.tolist()))


def all_reduce_grads(model: torch.nn.Module) -> None:
    if not is_distributed():
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world_size()
