"""Checkpoints of a ``torchrun`` run (``parallel.strategy`` ddp or fsdp2), with
``torch.distributed.checkpoint`` (DCP).

Layout of ``<output_dir>/checkpoints/step_<k>/`` (the same folder names as one-process runs,
so ``latest_checkpoint`` finds both):

- ``dcp/``: model and optimizer state, every rank writing its own shards (DCP's format).
- ``model.safetensors``: the full weights, gathered and written by rank 0, so the checkpoint
  also loads with ``mrt_engine.trainer.checkpoint.load_weights`` / ``model.init_checkpoint``.
- ``trainer_state.pt``: step, scheduler, data cursor, extra, world size; plain types only,
  loaded with ``weights_only=True``.

Written into ``.tmp_step_<k>`` and renamed into place by rank 0 after every rank is done
(barriers on both sides), so a run killed mid-write leaves the previous checkpoint whole.
Resume at the same world size continues exactly. At another world size the model and
optimizer state reshard (DCP loads DTensor shards into any mesh), but each rank's share of the
prompts changes, so the run continues correctly, not identically.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from mrt_engine.trainer import dist
from mrt_engine.trainer.checkpoint import list_checkpoints, pause_for_test


def is_distributed_checkpoint(path: str | Path) -> bool:
    return (Path(path) / "dcp").is_dir()


def save_distributed(output_dir: str | Path, step: int, *, policy, optimizer, scheduler, cursor, extra,
                     keep_last: int = 2) -> Path:
    import torch.distributed.checkpoint as dcp
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

    root = Path(output_dir) / "checkpoints"
    final, tmp = root / f"step_{step}", root / f".tmp_step_{step}"
    if dist.rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    model_state, optim_state = get_state_dict(policy, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp / "dcp"))
    full = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.rank() == 0:
        save_file(_unique(full, dist.unwrap(policy)), str(tmp / "model.safetensors"))
        pause_for_test(root, step)  # a test hook (see checkpoint.py): a kill mid-write
        torch.save({"step": step, "cursor": cursor, "extra": extra, "world_size": dist.world_size(),
                    "scheduler": scheduler.state_dict()}, tmp / "trainer_state.pt")
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in list_checkpoints(output_dir)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


def load_distributed(path: str | Path, *, policy, optimizer, scheduler) -> dict:
    """Restore in place on every rank; returns the trainer state (step, cursor, extra)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    path = Path(path)
    if not is_distributed_checkpoint(path):
        raise ValueError(f"{path} is a one-process checkpoint (no dcp/ folder); resume it without torchrun, or "
                         "start the distributed run from its weights with model.init_checkpoint")
    model_state, optim_state = get_state_dict(policy, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(path / "dcp"))
    set_state_dict(policy, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    trainer = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=True)
    scheduler.load_state_dict(trainer["scheduler"])
    return trainer


def _unique(state: dict, model) -> dict:
    """The full state under the model's own names, tied parameters once (the first name, as
    one-process checkpoints store them), non-persistent buffers left out."""
    keep, seen = [], set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) not in seen:
            seen.add(id(param))
            keep.append(name)
    keep += [name for name, _ in model.named_buffers() if name in model.state_dict()]
    return {name: state["model." + name].contiguous() for name in keep}
