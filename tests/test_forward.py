"""The shared functional forward reproduces the HF model's logits on packed sequences."""
import pytest
import torch

from mrt_engine.engine.forward import DecoderForward, varlen_causal_attention


def _packed_logits(model, tok, texts):
    fwd = DecoderForward(model)
    seqs = [tok(t, return_tensors="pt").input_ids[0] for t in texts]
    ids = torch.cat(seqs)
    pos = torch.cat([torch.arange(len(s)) for s in seqs])
    indptr = torch.tensor([0] + [len(s) for s in seqs]).cumsum(0)
    with torch.no_grad():
        logits = fwd.logits(fwd.hidden_states(ids, pos, varlen_causal_attention(indptr, fwd.shape.scale)))
        refs = [model(s[None]).logits[0] for s in seqs]
    return logits.split([len(s) for s in seqs]), refs


@pytest.mark.parametrize("name", ["tiny", pytest.param("smollm2", marks=pytest.mark.slow)])
def test_forward_matches_hf(name, request):
    model, tok = request.getfixturevalue(name)
    ours, refs = _packed_logits(model, tok, ["Hello there, how are you?", "2+2=4.\n\nWait", "x"])
    for a, b in zip(ours, refs):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4)


def test_forward_shares_parameters(tiny):
    model, _ = tiny
    fwd = DecoderForward(model)
    assert fwd.layers[0].self_attn.q_proj.weight.data_ptr() == model.model.layers[0].self_attn.q_proj.weight.data_ptr()
    assert fwd.lm_head.weight is model.lm_head.weight


def test_unsupported_architecture_is_named():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(NotImplementedError, match="gpt2"):
        DecoderForward(model)


@pytest.mark.parametrize("num_rows", [1, 7, 256, 257])
def test_cpu_head_slices_match_the_plain_head(tiny, num_rows):
    """Decode batches (<= ops.head.MAX_ROWS rows) take the vocabulary-sliced CPU head; a bias
    and a vocabulary that is no multiple of the slice must come out as the module computes
    them, and under autograd the plain module runs (mm's out= has no backward)."""
    from mrt_engine.ops import head

    model, _ = tiny
    fwd = DecoderForward(model)
    vocab, hidden_size = 2 * head.SLICE_ROWS + 37, model.config.hidden_size
    head = torch.nn.Linear(hidden_size, vocab, bias=True)
    fwd.lm_head = head
    h = torch.randn(num_rows, hidden_size)
    with torch.no_grad():
        torch.testing.assert_close(fwd.logits(h), head(h), atol=1e-5, rtol=1e-5)
    out = fwd.logits(h.requires_grad_())
    assert out.requires_grad
    torch.testing.assert_close(out, head(h), atol=1e-5, rtol=1e-5)
