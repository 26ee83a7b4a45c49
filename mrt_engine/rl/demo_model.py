"""Exporting the demo model's weights after its SFT warm start.

The demo model itself (architecture, tokenizer, shipped weights) lives in the bottom layer:
``mrt_engine.models`` (``load_model("demo")``, ``load_model("demo-init")``). The names below
the export are re-exported from there only so that older imports keep working; new code
imports them from ``mrt_engine.models``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from mrt_engine.models import DEMO_ASSET as ASSET  # noqa: F401  (old name)
from mrt_engine.models import DEMO_CONFIG, build_demo_model, demo_tokenizer, load_demo_model  # noqa: F401


def export_weights(model, path: str | Path, *, dtype=torch.float16) -> None:
    """Save compact weights for shipping (fp16 halves the size; loaded back into fp32)."""
    from mrt_engine.rl.checkpoint import save_weights

    save_weights(model, path, dtype=dtype)
