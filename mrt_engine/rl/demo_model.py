"""The demo model: a small Llama over a byte-level tokenizer (259 tokens), trained by SFT on
the synthetic tasks. Its weights (our own, a few MB) ship in ``mrt_engine/assets``.

A byte vocabulary keeps the embedding tiny (the SmolLM2 vocabulary alone would be 49152 x H),
so the whole model fits in a few MB and trains on 2 CPU cores in minutes.
"""
from __future__ import annotations

from pathlib import Path

import torch

ASSET = Path(__file__).resolve().parent.parent / "assets" / "demo_sft.safetensors"
DEMO_CONFIG = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5,
                   tie_word_embeddings=True, rope_theta=10000.0)


def demo_tokenizer():
    from mrt_engine.models import _byte_tokenizer

    return _byte_tokenizer()


def build_demo_model(seed: int = 0):
    """A freshly initialised demo model and its tokenizer (fp32, CPU)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = demo_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **DEMO_CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model, tok


def load_demo_model(*, pretrained: bool = True, seed: int = 0, path: str | Path | None = None):
    """The demo model with the shipped SFT weights (``pretrained``) or a fresh init."""
    from mrt_engine.rl.checkpoint import load_weights

    model, tok = build_demo_model(seed)
    if pretrained:
        path = Path(path) if path else ASSET
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `mrt-engine sft --config configs/sft_demo.yaml "
                                    f"--export {ASSET}` to make it, or use model name 'demo-init'")
        load_weights(model, path)
    return model, tok


def export_weights(model, path: str | Path, *, dtype=torch.float16) -> None:
    """Save compact weights for shipping (fp16 halves the size; loaded back into fp32)."""
    from mrt_engine.rl.checkpoint import save_weights

    save_weights(model, path, dtype=dtype)
