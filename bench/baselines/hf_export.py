"""The one HF exporter: a model as a plain safetensors checkpoint (what vLLM loads)."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import torch


def export_hf_checkpoint(model, tokenizer, path: str | Path) -> Path:
    """Write ``model`` as a plain safetensors checkpoint (kept when one is there already).

    A GGUF-loaded model cannot ``save_pretrained`` itself, so its state dict goes into a
    fresh model built from the same config first.
    """
    path = Path(path)
    if (path / "config.json").exists() and any(path.glob("*.safetensors")):
        return path
    path.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(model.config)
    for attr in ("quantization_config", "gguf_file"):  # weights are dequantised: plain fp32 now
        if hasattr(cfg, attr):
            delattr(cfg, attr)
    with torch.device("meta"):
        fresh = type(model)(cfg)
    fresh.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()}, assign=True)
    fresh.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def checkpoint_for(name: str, model, tokenizer) -> Path:
    """A plain HF checkpoint of ``name``: local checkpoints as they are, embedded defaults
    exported once to ~/.cache/mrt_engine/bench/ (or $MRT_BENCH_CACHE; deterministic: fixed seed)."""
    if os.path.isdir(name):
        return Path(name)
    cache = Path(os.environ.get("MRT_BENCH_CACHE", Path.home() / ".cache" / "mrt_engine" / "bench"))
    return export_hf_checkpoint(model, tokenizer, cache / name)
