"""The models the benchmarks load: ``mrt_engine.models.load_model`` by name (embedded ones, local
checkpoints, and the random-init ``r1-*`` shapes, built on the device in the benchmark's dtype)."""
from __future__ import annotations

import torch

from mrt_engine.models import R1_SHAPES, load_model

# Random-init models: no checkpoint for vLLM to load, and no "Wait" in what they generate (the
# step stage cuts their rollouts by token windows instead).
RANDOM_MODELS = tuple(R1_SHAPES)


def load(name: str, device: torch.device, dtype: torch.dtype):
    """(model in eval mode, tokenizer with a pad token)."""
    return load_model(name, dtype=dtype, device=device)
