"""Sample mode: reproducible with a seed; fast and naive agree within standard errors.

The test model is built so that J is known and far from 0 and 1: every layer's output is
zeroed and every token embeds to the same vector, so the next-token distribution is one
fixed categorical (context-free) over "5" (p=0.5), "}" (p=0.5) and nothing else. After
``\\boxed{`` the graded answer is "5" exactly when the first two tokens are "5", "}", so
J = 0.25 at every cut (and the exact score-mode J is 0.25 too).
"""
import math

import pytest
import torch

from mrt_engine.models import load_model
from mrt_engine.progress import ProgressEstimator

from test_progress import MANY, ONE, PROBLEM


@pytest.fixture(scope="module")
def coin_model():
    model, tok = load_model("tiny", tiny_config={"tie_word_embeddings": False, "num_hidden_layers": 1})
    five = tok("5", add_special_tokens=False).input_ids
    brace = tok("}", add_special_tokens=False).input_ids
    assert len(five) == 1 and len(brace) == 1
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.fill_(1.0)
        model.model.norm.weight.fill_(1.0)
        w = model.lm_head.weight
        w.zero_()
        w[:, 0] = -40.0  # hidden is all ones: logit = w[:, 0] + 0 elsewhere
        w[five[0], 0] = 0.0
        w[brace[0], 0] = 0.0
    return model, tok


def _sample(model, tok, method, seed=0, n=48, traces=(MANY, ONE)):
    est = ProgressEstimator(model, tok, mode="sample", method=method, template="boxed", num_branches=n,
                            max_answer_tokens=3, temperature=1.0, seed=seed)
    return est.estimate([PROBLEM] * len(traces), list(traces), ["5"] * len(traces))


def test_exact_j_of_the_coin_model(coin_model):
    model, tok = coin_model
    res = ProgressEstimator(model, tok, mode="score", template="boxed").estimate([PROBLEM], [MANY], ["5"])[0]
    assert res.j == pytest.approx([0.25] * len(res.j), rel=1e-4)


def test_naive_sample_reproducible(coin_model):
    model, tok = coin_model
    a = _sample(model, tok, "naive", seed=3, n=8, traces=(ONE,))
    b = _sample(model, tok, "naive", seed=3, n=8, traces=(ONE,))
    c = _sample(model, tok, "naive", seed=4, n=8, traces=(ONE,))
    assert [r.samples for r in a] == [r.samples for r in b]
    assert [r.j for r in a] == [r.j for r in b]
    assert [r.samples for r in a] != [r.samples for r in c]


def test_naive_sample_estimates_known_j(coin_model):
    model, tok = coin_model
    res = _sample(model, tok, "naive")
    for r in res:
        assert len(r.j) == len(r.cut_tokens) and len(r.progress) == len(r.j) - 1
        assert all(len(s) == 48 for s in r.samples)
        for j, err in zip(r.j, r.j_stderr):
            assert 0 < err < 0.1
            assert abs(j - 0.25) < 4 * err
    assert res[0].outcome == 1.0


def _engine_available():
    try:
        from mrt_engine.engine import Generator  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _engine_available(), reason="the engine part (Generator) is not merged in this tree")
def test_fast_sample_reproducible_and_agrees_with_naive(coin_model):
    model, tok = coin_model
    fast = _sample(model, tok, "fast", seed=5)
    again = _sample(model, tok, "fast", seed=5, traces=(MANY,))
    assert fast[0].samples == again[0].samples  # the first group's seed does not depend on later items
    naive = _sample(model, tok, "naive", seed=5)
    for f, n in zip(fast, naive):
        for jf, ef, jn, en in zip(f.j, f.j_stderr, n.j, n.j_stderr):
            assert abs(jf - jn) <= 3 * math.hypot(ef, en) + 1e-9
        assert f.tokens_at_cut == pytest.approx(n.tokens_at_cut, abs=1.5)


def test_one_sample_has_undefined_stderr(coin_model):
    model, tok = coin_model
    res = _sample(model, tok, "naive", n=1, traces=(ONE,))[0]
    assert all(math.isnan(e) for e in res.j_stderr)
    assert res.to_json()["j_stderr"] == [None] * len(res.j)


@pytest.mark.skipif(not _engine_available(), reason="the engine part (Generator) is not merged in this tree")
def test_existing_generator_is_reused(coin_model):
    from mrt_engine.engine import Generator

    model, tok = coin_model
    gen = Generator(model, tok)
    est = ProgressEstimator(None, tok, generator=gen, mode="sample", template="boxed", num_branches=4,
                            max_answer_tokens=3, temperature=1.0, seed=7)
    assert est.model is model and est.forward is gen.forward
    a = est.estimate([PROBLEM], [ONE], ["5"])[0]
    b = ProgressEstimator(model, tok, mode="sample", template="boxed", num_branches=4, max_answer_tokens=3,
                          temperature=1.0, seed=7).estimate([PROBLEM], [ONE], ["5"])[0]
    assert a.samples == b.samples
    # Score mode on the generator's forward (same tensors as the model).
    s = ProgressEstimator(None, tok, generator=gen, mode="score", template="boxed").estimate([PROBLEM], [ONE], ["5"])[0]
    assert s.j == pytest.approx([0.25] * len(s.j), rel=1e-4)


def test_sample_mode_runs_with_its_default_r1_template(coin_model):
    # The R1 termination text does not end where the answer begins; sample mode must accept
    # it (only score mode teacher-forces the reference).
    model, tok = coin_model
    est = ProgressEstimator(model, tok, mode="sample", method="naive", num_branches=2, max_answer_tokens=4, seed=0)
    assert est.template.name == "r1"
    (res,) = est.estimate([PROBLEM], [MANY], ["5"])
    assert len(res.j) == len(res.episodes) + 1
    assert all(0.0 <= j <= 1.0 for j in res.j)


@pytest.mark.skipif(not _engine_available(), reason="the engine part (Generator) is not merged in this tree")
def test_fast_sample_batches_all_traces_in_one_engine_call_with_per_trace_draws():
    # A model whose answers depend on the context (the coin model's do not): one branch_many
    # call for all traces gives each trace the same draws as a call of its own with its seed.
    from mrt_engine.engine import Generator

    model, tok = load_model("tiny", tiny_config=dict(initializer_range=0.5))
    gen = Generator(model, tok, num_blocks=512, block_size=4)
    calls = []
    branch_many = gen.branch_many
    gen.branch_many = lambda traces, params: calls.append(len(traces)) or branch_many(traces, params)
    est = ProgressEstimator(None, tok, generator=gen, mode="sample", template="boxed", num_branches=3,
                            max_answer_tokens=4, temperature=1.0)
    traces, seeds = [MANY, ONE, MANY[:40]], [11, 12, 13]
    together = est.estimate([PROBLEM] * 3, traces, ["5"] * 3, seed=seeds)
    assert calls == [3]  # one engine call for the whole step
    for trace, seed, res in zip(traces, seeds, together):
        (alone,) = est.estimate([PROBLEM], [trace], ["5"], seed=[seed])
        assert alone.samples == res.samples and alone.j == res.j
    assert calls == [3, 1, 1, 1]
