"""Sampler (no model) and the engine's decode attention against a dense reference."""
import math

import pytest
import torch

from mrt_engine.engine.paged_attention import DecodeAttention, PagedKVCache, group_order
from mrt_engine.engine.config import SamplingParams
from mrt_engine.engine.sampler import SamplingBatch, prompt_seed, sample, sample_seed, uniform
from mrt_engine.engine.sequence import Sequence


def _batch(rows, *, temperature=1.0, top_p=1.0, top_k=0, seeds=None, logprobs=False):
    seeds = seeds if seeds is not None else list(range(rows))
    return SamplingBatch([temperature] * rows, [top_p] * rows, [top_k] * rows, seeds, [0] * rows, logprobs)


def test_greedy_and_logprobs():
    logits = torch.randn(5, 37)
    tokens, logprobs = sample(logits, _batch(5, temperature=0.0, logprobs=True))
    assert torch.equal(tokens, logits.argmax(-1))
    torch.testing.assert_close(logprobs, torch.log_softmax(logits, -1).gather(1, tokens[:, None]).squeeze(1))


def test_top_k_1_and_tiny_top_p_are_greedy():
    logits = torch.randn(6, 50)
    for kw in (dict(top_k=1), dict(top_p=1e-6)):
        tokens, _ = sample(logits, _batch(6, **kw))
        assert torch.equal(tokens, logits.argmax(-1)), kw


def test_top_k_and_top_p_restrict_support():
    logits = torch.randn(1, 20).repeat(400, 1)
    tokens, _ = sample(logits, _batch(400, top_k=3))
    assert set(tokens.tolist()) <= set(logits[0].topk(3).indices.tolist())
    probs = torch.softmax(logits[0], -1)
    order = probs.argsort(descending=True)
    keep = int((probs[order].cumsum(0) < 0.5).sum()) + 1  # smallest set with mass >= 0.5
    tokens, _ = sample(logits, _batch(400, top_p=0.5))
    assert set(tokens.tolist()) <= set(order[:keep].tolist())


def test_seeded_draws_are_reproducible_and_batch_independent():
    logits = torch.randn(4, 100)
    a, _ = sample(logits, _batch(4, seeds=[7, 8, 9, 10]))
    b, _ = sample(logits[[2]], _batch(1, seeds=[9]))
    assert a[2] == b[0]
    c, _ = sample(logits, _batch(4, seeds=[7, 8, 9, 10]))
    assert torch.equal(a, c)


def test_prompt_seed_keys_on_the_tokens_and_the_seed():
    a = prompt_seed(5, [1, 2, 3])
    assert a == prompt_seed(5, [1, 2, 3])
    assert len({a, prompt_seed(5, [1, 2, 4]), prompt_seed(5, [3, 2, 1]), prompt_seed(6, [1, 2, 3]),
                prompt_seed(5, [1, 2, 3, 0]), prompt_seed(5, [])}) == 6
    assert 0 <= a < 2 ** 63 and prompt_seed(-1, [7]) >= 0


def test_sample_frequencies_follow_temperature_scaled_softmax():
    torch.manual_seed(0)
    logits = torch.randn(1, 6) * 2
    num = 4000
    tokens, _ = sample(logits.repeat(num, 1), _batch(num, temperature=0.7, seeds=list(range(num))))
    freq = torch.bincount(tokens, minlength=6).float() / num
    expect = torch.softmax(logits[0] / 0.7, -1)
    assert (freq - expect).abs().max() < 4 * math.sqrt(0.25 / num) + 1e-3


def test_uniforms_are_in_open_interval_and_distinct():
    us = [uniform(sample_seed(3, k), t) for k in range(20) for t in range(20)]
    assert all(0.0 < u < 1.0 for u in us) and len(set(us)) == len(us)


def test_sampling_params_reject_bad_values():
    for kw, word in ((dict(n=0), "n="), (dict(temperature=-0.5), "temperature"), (dict(top_p=0.0), "top_p"),
                     (dict(top_k=-1), "top_k"), (dict(max_tokens=0), "max_tokens"), (dict(stop=("",)), "stop")):
        with pytest.raises(ValueError, match=word):
            SamplingParams(**kw)


# -- decode attention ---------------------------------------------------------------------
def _dense(q, ks, vs, scale):
    """q [Hq, D], ks/vs [L, Hkv, D] -> [Hq, D] in float64."""
    group = q.shape[0] // ks.shape[1]
    k = ks.double().repeat_interleave(group, 1).transpose(0, 1)  # [Hq, L, D]
    v = vs.double().repeat_interleave(group, 1).transpose(0, 1)
    w = torch.softmax((q.double()[:, None, :] @ k.transpose(1, 2)).squeeze(1) * scale, -1)
    return (w[:, None, :] @ v).squeeze(1)


@pytest.mark.parametrize("cascade,backend", [(True, "torch"), (False, "torch"), (True, "triton")])
def test_decode_attention_matches_dense(cascade, backend):
    """The engine's plan (ops.plan_decode) drives ops.branch_decode_attention: its torch
    reference, or the Triton kernel in the interpreter."""
    torch.manual_seed(1)
    bs, hkv, hq, d = 4, 2, 6, 8
    cache = PagedKVCache(num_layers=1, num_blocks=60, block_size=bs, num_kv_heads=hkv, head_dim=d,
                         dtype=torch.float32, device=torch.device("cpu"))
    cache.kv.normal_()
    perm = torch.randperm(60).tolist()
    trace = perm[:5]  # blocks of one trace, shared by two cut groups and a singleton
    seqs = []

    def make(length, blocks, group=None):
        s = Sequence([0] * length, SamplingParams(), request_id=0, sample_index=0, seed=0)
        s.block_table = blocks
        if group is not None:
            s.group_id = group
        seqs.append(s)

    nxt = iter(perm[5:])
    for j, extra in enumerate((1, 5, 4)):  # group A: 3 trace blocks + own tails
        make(12 + extra, trace[:3] + [next(nxt) for _ in range((extra + bs - 1) // bs)], 1000)
    for j, extra in enumerate((2, 3)):  # group B: 2 trace blocks + one own full block shared + tails
        own = next(nxt) if j == 0 else None
        if j == 0:
            shared_b = trace[:2] + [own]
        make(12 + extra, shared_b + [next(nxt)], 2000)
    make(18, trace[:4] + [next(nxt)])  # a singleton over the same trace (4 full blocks + 2 tokens)
    make(1, [next(nxt)])  # a one-token singleton: no shared part at all
    make(9, [next(nxt) for _ in range(3)])  # an unrelated singleton
    order = [seqs[i] for i in (5, 0, 6, 3, 1, 7, 4, 2)]
    seqs = group_order(order)
    scale = d ** -0.5
    attend = DecodeAttention(cache, seqs, scale, cascade=cascade, backend=backend)
    q = torch.randn(len(seqs), hq, d)
    k_new, v_new = torch.randn(len(seqs), hkv, d), torch.randn(len(seqs), hkv, d)
    out = attend(0, q, k_new, v_new)
    if cascade:  # singleton 18, group A (3), singleton 1, group B (2), singleton 9
        assert attend.plan.group_indptr.tolist() == [0, 1, 4, 5, 7, 8]
        assert attend.plan.shared_lens.tolist() == [16, 12, 0, 12, 8]
    else:  # every sequence its own group, over its own full blocks
        assert attend.plan.group_indptr.tolist() == list(range(9))
        assert attend.plan.shared_lens.tolist() == [16, 12, 16, 16, 0, 12, 12, 8]
    kc, vc = cache.k_cache(0), cache.v_cache(0)
    for i, s in enumerate(seqs):
        ks = kc[s.block_table].flatten(0, 1)[:len(s)]
        vs = vc[s.block_table].flatten(0, 1)[:len(s)]
        torch.testing.assert_close(ks[-1], k_new[i])  # the new token was written first
        torch.testing.assert_close(out[i].double(), _dense(q[i], ks, vs, scale), atol=1e-5, rtol=1e-5)
