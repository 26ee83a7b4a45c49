"""Scale-out on torch.distributed: one process by default, ``torchrun`` for more.

``parallel.strategy`` (see ``mrt_engine.config.ParallelConfig``):

- ``none``: one process, the policy as it is.
- ``ddp``: ``torch.nn.parallel.DistributedDataParallel``; parameters replicated, gradients
  all-reduced by DDP's own bucketed hooks during backward.
- ``fsdp2``: ``torch.distributed.fsdp.fully_shard`` on every decoder layer, then on the
  root; parameters, gradients and Adam states sharded over the ranks.

gloo on CPU, NCCL on CUDA, with a process-group timeout so that a rank that dies ends the
job instead of leaving the others waiting in a collective forever.

Rollouts need full weights. Under DDP each rank already has them (the very tensors the
optimizer updates). Under FSDP2 :func:`full_weights` unshards every FSDP module for the
rollout and the progress estimate (one all-gather of the parameters per step) and reshards
afterwards: each rank holds one full copy of the parameters for that phase, on top of its
shards, and gives it back before the update. The generator reads the weights through the
model's modules, so it sees the gathered tensors without a copy of its own.
"""
from __future__ import annotations

import contextlib
import datetime
import os

import torch
import torch.distributed as dist
from torch import nn

from mrt_engine.rl.logprobs import token_log_probs, tree_log_probs
from mrt_engine.rl.packing import TreeBatch


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(*, timeout_s: float = 300.0) -> None:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1 in the environment)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


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


def max_over_ranks(value: int) -> int:
    """The largest ``value`` of all ranks (``value`` itself in one process)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.int64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


class PolicyLogProbs(nn.Module):
    """The module the update runs: per-token log-probs of a batch under ``model``.

    DDP and FSDP2 act through a module's ``forward`` (DDP's reducer, FSDP2's unshard and
    reshard hooks), so the whole log-prob computation, LM head included, is one forward.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, loss_mask=None):
        """Log-probs ``[N, T]`` of padded rows (ids, attention and loss masks ``[N, T]``), or of the
        rows one :class:`TreeBatch` packs (passed alone, on the model's device)."""
        if isinstance(input_ids, TreeBatch):
            return tree_log_probs(self.model, input_ids)
        return token_log_probs(self.model, input_ids, attention_mask, loss_mask)


def wrap_policy(model: nn.Module, strategy: str) -> nn.Module:
    """The :class:`PolicyLogProbs` of ``model`` under ``strategy`` (build the optimizer after this)."""
    policy = PolicyLogProbs(model)
    if strategy == "none":
        return policy
    if not is_distributed():
        raise RuntimeError(f"parallel.strategy={strategy!r} needs a process group: launch with "
                           "torchrun --nproc_per_node=N -m mrt_engine.cli train ...")
    device = next(model.parameters()).device
    if strategy == "ddp":
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(policy, device_ids=ids)
    if strategy == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (world_size(),))
        for layer in model.get_decoder().layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(policy, mesh=mesh)  # the root: embeddings, final norm, LM head
        return policy
    raise ValueError(f"parallel.strategy={strategy!r}: use none, ddp or fsdp2")


def _fsdp_modules(policy: nn.Module) -> list[nn.Module]:
    return [m for m in policy.modules() if hasattr(m, "unshard") and hasattr(m, "reshard")]


@contextlib.contextmanager
def full_weights(policy: nn.Module):
    """Full (unsharded) parameters on every rank inside the block; a no-op unless FSDP2."""
    modules = _fsdp_modules(policy)
    for m in modules:
        m.unshard()
    try:
        yield
    finally:
        for m in modules:
            m.reshard()


def unwrap(policy: nn.Module) -> nn.Module:
    """The transformers model inside a policy wrapper (DDP's ``.module``, then ``.model``)."""
    inner = policy.module if isinstance(policy, nn.parallel.DistributedDataParallel) else policy
    return inner.model if isinstance(inner, PolicyLogProbs) else inner


def grad_norm_value(norm) -> float:
    """``clip_grad_norm_``'s result as a float (a DTensor under FSDP2)."""
    return float(norm.full_tensor()) if hasattr(norm, "full_tensor") else float(norm)
