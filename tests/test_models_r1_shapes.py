"""The random-init R1 shapes: real-size models that need nothing downloaded or carried."""
import subprocess
import sys
from pathlib import Path

import torch

from mrt_engine.models import R1_SHAPES, load_model

ROOT = Path(__file__).resolve().parent.parent


def test_r1_1p5b_shapes_on_meta_have_the_distill_qwen_architecture():
    with torch.device("meta"):
        model, tok = load_model("r1-1.5b-shapes", dtype="bfloat16")
    cfg, attn = model.config, model.model.layers[0].self_attn
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == ("qwen2", 28, 1536, 8960)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size) == (12, 2, 151936)
    assert attn.q_proj.weight.shape == (12 * 128, 1536) and attn.k_proj.weight.shape == (2 * 128, 1536)
    assert attn.q_proj.bias is not None and attn.k_proj.bias is not None and attn.v_proj.bias is not None
    assert model.lm_head.weight is not model.model.embed_tokens.weight  # untied head
    params = list(model.parameters())
    assert all(p.device.type == "meta" and p.dtype == torch.bfloat16 for p in params)
    assert 1.77e9 < sum(p.numel() for p in params) < 1.78e9  # R1-Distill-Qwen-1.5B: 1.78 B
    assert len(tok) == 151936  # every id the model can sample decodes
    assert torch.get_default_dtype() == torch.float32


def test_r1_7b_shapes_on_meta():
    with torch.device("meta"):
        model, _ = load_model("r1-7b-shapes")
    assert 7.6e9 < sum(p.numel() for p in model.parameters()) < 7.63e9


def test_r1_mini_keeps_the_kernel_constants_and_runs_on_cpu():
    model, tok = load_model("r1-mini")
    cfg = model.config
    assert cfg.hidden_size // cfg.num_attention_heads == 128 and cfg.num_attention_heads // cfg.num_key_value_heads == 6
    assert cfg.num_hidden_layers == 2 and cfg.vocab_size == R1_SHAPES["r1-mini"]["vocab_size"] == len(tok)
    again, _ = load_model("r1-mini")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))  # seeded
    bf16, _ = load_model("r1-mini", dtype="bfloat16")
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    ids = torch.tensor([tok.encode("Wait, 17 * 23 = 391", add_special_tokens=False)])
    assert model(ids).logits.shape == (1, ids.shape[1], cfg.vocab_size)
    sampled = [300, 72, cfg.vocab_size - 1]  # ids past the byte-level ones decode to filler tokens
    assert tok.decode(sampled) == f"<|r300|>f<|r{cfg.vocab_size - 1}|>"


def test_floors_print_the_1p5b_numbers_from_meta():
    proc = subprocess.run([sys.executable, "-m", "bench.tools.floors", "--model", "r1-1.5b-shapes"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1.777 B parameters" in proc.stdout and "FLOPs per token: forward 3.09 G" in proc.stdout
    for stage in ("generation", "score", "sample", "logprob head", "logprob policy", "step"):
        assert f"\n{stage} " in proc.stdout
