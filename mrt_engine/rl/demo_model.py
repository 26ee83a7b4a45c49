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
    """Byte-level tokenizer: 3 specials then the 256 byte symbols in code-point order.

    Built here rather than with ``mrt_engine.models``' byte tokenizer because that one takes
    the byte alphabet in the order ``ByteLevel.alphabet()`` returns it, which changes from one
    process to the next (a set underneath): saved weights would not match the next process's ids.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.chat_template = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tok


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
