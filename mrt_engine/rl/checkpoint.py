"""Checkpoints: model weights in safetensors plus optimizer, scheduler, RNG and data-cursor
state, written atomically (a temporary folder renamed into place), so a killed run never
leaves a half-written ``step_*`` folder behind.

Layout of ``<output_dir>/checkpoints/step_<k>/``: ``model.safetensors``, ``trainer_state.pt``
(optimizer, scheduler, RNG, cursor, step, extra), ``config.json`` (the model's config).
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

_PREFIX = "step_"


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unique_state(model) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers, each storage once (the first name of a tied pair)."""
    seen, out = set(), {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if name not in model.state_dict():
            continue  # non-persistent buffer (e.g. RoPE inv_freq)
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        out[name] = t.detach().contiguous()
    return out


def save_weights(model, path: str | Path, *, dtype: torch.dtype | None = None) -> None:
    """Model weights to one safetensors file (tied weights stored once; ``dtype`` to shrink)."""
    from safetensors.torch import save_file

    state = {k: (v.to(dtype) if dtype is not None else v).cpu() for k, v in _unique_state(model).items()}
    save_file(state, str(path))


def load_weights(model, path: str | Path) -> None:
    """Copy weights from a safetensors file into ``model`` in place (tensor identity kept, so a
    generator holding references to the parameters sees the loaded values)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"no weights at {path}; pass a model.safetensors file or a checkpoint folder")
    state = load_file(str(path))
    expected = _unique_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]} "
                         "(wrong model for this checkpoint?)")
    with torch.no_grad():
        for name, target in expected.items():
            if target.shape != state[name].shape:
                raise ValueError(f"{name}: checkpoint shape {tuple(state[name].shape)} != model shape {tuple(target.shape)}")
            target.copy_(state[name])


def save_checkpoint(output_dir: str | Path, step: int, *, model, optimizer=None, scheduler=None, cursor=None,
                    extra: dict | None = None, keep_last: int = 2) -> Path:
    """Write ``checkpoints/step_<step>`` atomically; keep the newest ``keep_last`` ones."""
    root = Path(output_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{step}"
    tmp = root / f".tmp_{_PREFIX}{step}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_weights(model, tmp / "model.safetensors")
    state = {"step": step, "rng": rng_state(), "cursor": cursor, "extra": extra or {},
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "scheduler": scheduler.state_dict() if scheduler is not None else None}
    torch.save(state, tmp / "trainer_state.pt")
    if hasattr(model, "config") and hasattr(model.config, "to_dict"):
        (tmp / "config.json").write_text(json.dumps(model.config.to_dict(), indent=1, default=str))
    for f in tmp.iterdir():  # flush file contents before the rename makes them visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(output_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and p.name[len(_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def load_checkpoint(path: str | Path, *, model, optimizer=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Restore a checkpoint in place; returns the trainer state (step, cursor, extra)."""
    path = Path(path)
    load_weights(model, path / "model.safetensors")
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        set_rng_state(state["rng"])
    return state
