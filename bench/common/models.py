"""The models the benchmarks load: embedded ones by name, local checkpoints, random-init shapes."""
from __future__ import annotations

import torch

# A randomly initialised model with the shapes of DeepSeek-R1-Distill-Qwen-1.5B (its Qwen2
# config), for the GPU default: the timings of a 1.5B reasoner without downloading one.
R1_1P5B_SHAPES = dict(
    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=131072,
    rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False)
RANDOM_MODELS = {"r1-1.5b-shapes": R1_1P5B_SHAPES}


def load(name: str, device: torch.device, dtype: torch.dtype):
    """(model in eval mode, tokenizer): ``RANDOM_MODELS`` built here, the rest by ``mrt_engine.models``."""
    from mrt_engine.models import load_model, load_tokenizer

    if name in RANDOM_MODELS:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        tok = load_tokenizer("smollm2-135m")
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        cfg = Qwen2Config(**RANDOM_MODELS[name], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)
        with torch.device(device):
            torch.manual_seed(0)
            model = Qwen2ForCausalLM(cfg).to(dtype)
        return model.eval(), tok
    return load_model(name, dtype=dtype, device=device)
