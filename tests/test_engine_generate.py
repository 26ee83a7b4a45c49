"""The Generator end to end: HF-identical greedy outputs, log-probs, n samples, branching,
preemption, stop conditions and input checks."""
import pytest
import torch

from mrt_engine.engine import Generator, SamplingParams
from mrt_engine.models import load_model

PROMPTS = ["Hello there, how are you?", "2+2=", "x",
           "The quick brown fox jumps over the lazy dog, and then it runs far into the forest to"]


@pytest.fixture(scope="module")
def lively():
    """The tiny Llama with a wide init: its greedy outputs vary (std-0.02 weights repeat one token)."""
    return load_model("tiny", tiny_config=dict(initializer_range=0.5))


def _hf_greedy(model, ids, max_new_tokens):
    device = model.device
    out = model.generate(torch.tensor([ids], device=device), attention_mask=torch.ones(1, len(ids), dtype=torch.long,
                                                                                     device=device),
                         max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


def _hf_logprobs(model, prompt_ids, token_ids):
    ids = torch.tensor(prompt_ids + token_ids)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids[None]).logits[0].float(), -1)
    return logp[len(prompt_ids) - 1:-1].gather(1, torch.tensor(token_ids)[:, None]).squeeze(1)


GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)


@pytest.mark.parametrize("name", ["lively", pytest.param("smollm2", marks=pytest.mark.slow)])
def test_greedy_matches_hf_generate_mixed_lengths(name, request):
    model, tok = request.getfixturevalue(name)
    gen = Generator(model, tok, num_blocks=256, block_size=4 if name == "lively" else 16)
    outs = gen.generate(PROMPTS, GREEDY)
    for prompt, out in zip(PROMPTS, outs):
        ids = tok.encode(prompt)
        assert out[0].prompt_ids == ids
        assert out[0].token_ids == _hf_greedy(model, ids, 12), prompt
        assert out[0].finish_reason == "length"


@pytest.mark.parametrize("name", ["lively", pytest.param("smollm2", marks=pytest.mark.slow)])
def test_logprobs_match_hf_forward(name, request):
    model, tok = request.getfixturevalue(name)
    gen = Generator(model, tok, num_blocks=256, block_size=4)
    params = SamplingParams(n=3, temperature=0.9, top_k=50, max_tokens=10, seed=11, logprobs=True, ignore_eos=True)
    for out in gen.generate(PROMPTS[:2], params):
        for sample in out:
            ref = _hf_logprobs(model, sample.prompt_ids, sample.token_ids)
            torch.testing.assert_close(torch.tensor(sample.logprobs), ref, atol=1e-4, rtol=0)


def test_text_and_token_prompts_agree_and_options_are_equivalent(lively):
    model, tok = lively
    ref = Generator(model, tok, num_blocks=256).generate(PROMPTS, GREEDY)
    as_ids = Generator(model, tok, num_blocks=256).generate([tok.encode(p) for p in PROMPTS], GREEDY)
    chunked = Generator(model, tok, num_blocks=256, block_size=4, max_num_batched_tokens=5).generate(PROMPTS, GREEDY)
    no_cascade = Generator(model, tok, num_blocks=256, cascade=False, enable_prefix_caching=False).generate(PROMPTS, GREEDY)
    for other in (as_ids, chunked, no_cascade):
        assert [o[0].token_ids for o in other] == [o[0].token_ids for o in ref]


def test_n_samples_are_seeded_and_batch_independent(lively):
    model, tok = lively
    gen = Generator(model, tok, num_blocks=256, block_size=4)
    params = SamplingParams(n=4, temperature=1.0, max_tokens=8, seed=5, ignore_eos=True)
    both = gen.generate(PROMPTS[:2], params)
    alone = gen.generate([PROMPTS[1]], params)
    assert [s.token_ids for s in both[1]] == [s.token_ids for s in alone[0]]
    assert len({tuple(s.token_ids) for s in both[0]}) > 1, "the n samples must differ"
    other = gen.generate([PROMPTS[1]], SamplingParams(n=4, temperature=1.0, max_tokens=8, seed=6, ignore_eos=True))
    assert [s.token_ids for s in other[0]] != [s.token_ids for s in alone[0]]


def test_one_seed_for_many_prompts_gives_each_prompt_its_own_draws(lively):
    """A call's one seed must not give sample i of every prompt the same uniforms (an evaluation
    would then share its luck across problems). At a huge temperature every prompt's
    distribution is near uniform, so shared uniforms would give every prompt the same tokens."""
    model, tok = lively
    gen = Generator(model, tok, num_blocks=256, block_size=4)
    params = SamplingParams(n=2, temperature=1e4, max_tokens=8, seed=5, ignore_eos=True)
    outs = gen.generate(PROMPTS + [PROMPTS[0]], params)
    firsts = [tuple(o[0].token_ids) for o in outs[:len(PROMPTS)]]
    assert len(set(firsts)) == len(PROMPTS), "distinct prompts drew the same tokens from one seed"
    assert [s.token_ids for s in outs[-1]] == [s.token_ids for s in outs[0]], "same prompt, same seed: same draws"


def test_branch_allocates_prefix_blocks_once_and_matches_regeneration(lively):
    model, tok = lively
    bs, n = 4, 3
    prefix = tok.encode(PROMPTS[3])
    suffix = tok.encode(" So the answer is")
    gen = Generator(model, tok, num_blocks=256, block_size=bs)
    # One cut: prefill + fork must take at most ceil(P / block) + (n - 1) fresh blocks.
    cut = len(prefix) - 3
    P = cut + len(suffix)
    before = gen.block_manager.num_allocations
    gen.branch(prefix, [cut], [suffix], SamplingParams(n=n, temperature=0.0, max_tokens=1, ignore_eos=True))
    used = gen.block_manager.num_allocations - before
    assert used <= -(-P // bs) + (n - 1), used
    assert gen.block_manager.num_free_blocks == 256
    # Several cuts: greedy continuations equal an independent full re-generation.
    cuts = [0, 5, 8, len(prefix)]
    suffixes = [suffix] * len(cuts)
    params = SamplingParams(n=n, temperature=0.0, max_tokens=6, ignore_eos=True)
    fresh = Generator(model, tok, num_blocks=256, block_size=bs, enable_prefix_caching=False)
    before = gen.block_manager.num_allocations
    branched = gen.branch(prefix, cuts, suffixes, params)
    shared_allocs = gen.block_manager.num_allocations - before
    for c, outs in zip(cuts, branched):
        assert len(outs) == n
        solo = fresh.generate([prefix[:c] + suffix], SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True))[0][0]
        for o in outs:
            assert o.prompt_ids == prefix[:c] + suffix and o.token_ids == solo.token_ids
    before = fresh.block_manager.num_allocations
    fresh.branch(prefix, cuts, suffixes, params)
    assert shared_allocs < fresh.block_manager.num_allocations - before  # the prefix cache saved blocks


def test_branch_many_equals_branch_per_trace(lively):
    model, tok = lively
    gen = Generator(model, tok, num_blocks=256, block_size=4)
    a, b = tok.encode(PROMPTS[3]), tok.encode(PROMPTS[0] + " I am fine, thanks")
    s = tok.encode(" Answer:")
    params = SamplingParams(n=2, temperature=0.8, max_tokens=5, seed=3, ignore_eos=True)
    many = gen.branch_many([(a, [4, 9], [s, s]), (b, [3, len(b)], [s, []])], params)
    one_a = gen.branch(a, [4, 9], [s, s], params)
    one_b = gen.branch(b, [3, len(b)], [s, []], params)
    tokens = lambda res: [[o.token_ids for o in cut] for cut in res]  # noqa: E731
    assert tokens(many[0]) == tokens(one_a) and tokens(many[1]) == tokens(one_b)


def test_tiny_kv_budget_preempts_and_completes_everything(lively):
    model, tok = lively
    prompts = PROMPTS + [p[::-1] for p in PROMPTS]
    greedy = SamplingParams(n=2, temperature=0.0, max_tokens=20, ignore_eos=True)
    roomy = Generator(model, tok, num_blocks=512, block_size=4).generate(prompts, greedy)
    tight = Generator(model, tok, num_blocks=20, block_size=4)  # the demand is ~150 blocks
    outs = tight.generate(prompts, greedy)
    assert tight.scheduler.num_preemptions > 0
    assert tight.block_manager.num_free_blocks == 20
    assert [[s.token_ids for s in o] for o in outs] == [[s.token_ids for s in o] for o in roomy]
    # Sampled: everything completes, and every token's log-prob is the model's (the KV that
    # preempted samples recompute is right). Seeded draws can differ from an unpreempted run
    # only where float noise moves a CDF boundary.
    sampled = SamplingParams(n=3, temperature=1.0, max_tokens=20, seed=9, ignore_eos=True, logprobs=True)
    before = tight.scheduler.num_preemptions
    outs = tight.generate(prompts[:4], sampled)
    assert tight.scheduler.num_preemptions > before
    for out in outs:
        assert len(out) == 3
        for sample in out:
            assert len(sample.token_ids) == 20
            ref = _hf_logprobs(model, sample.prompt_ids, sample.token_ids)
            torch.testing.assert_close(torch.tensor(sample.logprobs), ref, atol=1e-4, rtol=0)


def test_stop_token_ids_strings_eos_and_max_tokens(lively):
    model, tok = lively
    gen = Generator(model, tok, num_blocks=256)
    full = gen.generate([PROMPTS[0]], GREEDY)[0][0]
    stop_id = full.token_ids[4]
    first = full.token_ids.index(stop_id)
    out = gen.generate([PROMPTS[0]], SamplingParams(temperature=0.0, max_tokens=12, stop_token_ids=(stop_id,)))[0][0]
    assert out.token_ids == full.token_ids[:first + 1] and out.finish_reason == "stop"
    text = full.text
    stop = text[len(text) // 2:len(text) // 2 + 3]
    out = gen.generate([PROMPTS[0]], SamplingParams(temperature=0.0, max_tokens=12, stop=(stop,)))[0][0]
    assert out.finish_reason == "stop" and stop in tok.decode(out.token_ids) and out.text == text[:text.find(stop)]
    gen.eos_token_id = stop_id
    out = gen.generate([PROMPTS[0]], SamplingParams(temperature=0.0, max_tokens=12))[0][0]
    assert out.token_ids == full.token_ids[:first + 1] and out.finish_reason == "stop"
    out = gen.generate([PROMPTS[0]], SamplingParams(temperature=0.0, max_tokens=3, ignore_eos=True))[0][0]
    assert out.token_ids == full.token_ids[:3] and out.finish_reason == "length"


def test_bad_input_raises_before_any_work(lively):
    model, tok = lively
    gen = Generator(model, tok, num_blocks=64, max_model_len=32)
    cases = [
        (lambda: gen.generate([""]), "empty"),
        (lambda: gen.generate([[]]), "empty"),
        (lambda: gen.generate(["ok", [1] * 40]), "max_model_len"),
        (lambda: gen.generate("a bare string"), "list of prompts"),
        (lambda: gen.generate([[10**9]]), "vocabulary"),
        (lambda: gen.branch([1, 2, 3], [5], [[4]]), "cuts"),
        (lambda: gen.branch([1, 2, 3], [1, 2], [[4]]), "suffix"),
        (lambda: gen.branch([1, 2, 3], [0], [[]]), "nothing to continue"),
        (lambda: gen.generate(["ok"], SamplingParams(n=0)), "n="),
        (lambda: gen.generate(["ok"], SamplingParams(temperature=-1.0)), "temperature"),
        (lambda: Generator(model, tok, num_blocks=2).generate(["ok"], SamplingParams(max_tokens=200)), "KV blocks"),
        (lambda: Generator(model, tok, blocksize=4), "unknown engine options"),
    ]
    for fn, word in cases:
        with pytest.raises((ValueError, TypeError), match=word):
            fn()
    assert gen.num_steps == 0 and gen.block_manager.num_free_blocks == 64


def test_generator_runs_on_the_models_own_tensors(lively):
    model, tok = lively
    gen = Generator(model, tok, num_blocks=64)
    assert gen.forward.lm_head.weight.data_ptr() == model.lm_head.weight.data_ptr()
    ids = tok.encode(PROMPTS[0])
    before = gen.generate([ids], GREEDY)[0][0].token_ids
    layer = model.model.layers[0].mlp.down_proj.weight
    saved = layer.detach().clone()
    try:
        with torch.no_grad():
            layer.mul_(-3.0)  # an "optimizer step" in place
        after = gen.generate([ids], GREEDY)[0][0].token_ids
        assert after == _hf_greedy(model, ids, 12) and after != before
    finally:
        with torch.no_grad():
            layer.copy_(saved)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_runs_on_cpu(dtype):
    model, tok = load_model("tiny", dtype=dtype, tiny_config=dict(initializer_range=0.5))
    gen = Generator(model, tok, num_blocks=64, block_size=4)
    assert gen.runner.cache.kv.dtype == model.dtype
    outs = gen.generate(PROMPTS[:2], SamplingParams(n=2, temperature=0.8, max_tokens=6, seed=1, logprobs=True,
                                                    ignore_eos=True))
    for out in outs:
        for sample in out:
            assert len(sample.token_ids) == 6
            ref = _hf_logprobs(model, sample.prompt_ids, sample.token_ids)
            torch.testing.assert_close(torch.tensor(sample.logprobs), ref, atol=0.1, rtol=0)


@pytest.mark.cuda
def test_cuda_greedy_matches_hf(lively):
    model, tok = lively
    model = model.to("cuda")
    try:
        gen = Generator(model, tok, num_blocks=256)
        outs = gen.generate(PROMPTS, GREEDY)
        for prompt, out in zip(PROMPTS, outs):
            ids = tok.encode(prompt)
            assert out[0].token_ids == _hf_greedy(model, ids, 12)
    finally:
        model.to("cpu")


def test_decode_backends_agree(lively):
    """The CPU default (flat decode on fused SDPA), the cascade reference ('torch') and
    'ops' (mrt_engine.ops.branch_decode_attention: its torch reference on CPU, the Triton
    kernel on CUDA) give the same greedy tokens and log-probs, forks included."""
    model, tok = lively
    params = SamplingParams(n=3, temperature=0.0, max_tokens=8, ignore_eos=True, logprobs=True)
    default = Generator(model, tok, num_blocks=128, block_size=4)
    assert default.runner.backend == "sdpa"
    ours = default.generate(PROMPTS, params)
    for backend in ("torch", "ops"):
        gen = Generator(model, tok, num_blocks=128, block_size=4, attention_backend=backend)
        assert gen.runner.backend == backend
        theirs = gen.generate(PROMPTS, params)
        for a, b in zip(ours, theirs):
            assert [s.token_ids for s in a] == [s.token_ids for s in b]
            for x, y in zip(a, b):
                torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4, rtol=0)


def test_sdpa_cascade_steps_agree_with_the_flat_and_reference_decode(lively, monkeypatch):
    """With the saving threshold at 0, the CPU default runs its forked groups through the
    SDPA cascade (``branch_decode_attention_sdpa``); tokens and log-probs stay those of the
    flat decode and of the cascade reference."""
    from mrt_engine.ops import attention_sdpa

    model, tok = lively
    params = SamplingParams(n=3, temperature=0.0, max_tokens=8, ignore_eos=True, logprobs=True)
    flat = Generator(model, tok, num_blocks=128, block_size=4).generate(PROMPTS, params)
    monkeypatch.setattr(attention_sdpa, "MIN_SAVED_TOKENS", 0)
    calls = []
    real = attention_sdpa.branch_decode_attention_sdpa
    monkeypatch.setattr(attention_sdpa, "branch_decode_attention_sdpa", lambda *a, **k: calls.append(1) or real(*a, **k))
    cascaded = Generator(model, tok, num_blocks=128, block_size=4).generate(PROMPTS, params)
    reference = Generator(model, tok, num_blocks=128, block_size=4, attention_backend="torch").generate(PROMPTS, params)
    assert calls, "no decode step took the cascade"
    for a, b, c in zip(cascaded, flat, reference):
        assert [s.token_ids for s in a] == [s.token_ids for s in b] == [s.token_ids for s in c]
        for x, y, z in zip(a, b, c):
            torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4, rtol=0)
            torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(z.logprobs), atol=1e-4, rtol=0)


def test_fork_without_free_blocks_queues_children_for_recompute(lively, monkeypatch):
    from mrt_engine.engine.scheduler import Scheduler

    model, tok = lively
    ids = tok.encode(PROMPTS[3])[:10]  # 10 tokens: 3 blocks of 4, the last one partial
    params = SamplingParams(n=4, temperature=0.0, max_tokens=5, ignore_eos=True)
    roomy = Generator(model, tok, num_blocks=64, block_size=4).generate([ids], params)[0]
    queued = []
    add = Scheduler.add
    monkeypatch.setattr(Scheduler, "add", lambda self, seq: (queued.append(seq.sample_index), add(self, seq)))
    tight = Generator(model, tok, num_blocks=4, block_size=4)  # one block left after the prompt: one copy
    outs = tight.generate([ids], params)[0]
    assert len([i for i in queued if i > 0]) == 2  # two children had to wait and recompute
    assert [o.token_ids for o in outs] == [o.token_ids for o in roomy]
    assert all(len(o.token_ids) == 5 for o in outs) and tight.block_manager.num_free_blocks == 4


def test_reset_prefix_cache_after_a_weight_update(lively):
    # A prompt of several full blocks is prefix-cached; after an in-place weight change the
    # cached KV is stale (without the reset this test fails), and reset_prefix_cache() makes
    # the next call match HF again.
    model, tok = lively
    gen = Generator(model, tok, num_blocks=64, block_size=4)
    ids = tok.encode(PROMPTS[3])
    assert len(ids) >= 12
    gen.generate([ids], GREEDY)
    assert gen.block_manager.hash_to_block  # full blocks were cached
    layer = model.model.layers[0].mlp.down_proj.weight
    saved = layer.detach().clone()
    try:
        with torch.no_grad():
            layer.mul_(-3.0)
        gen.reset_prefix_cache()
        assert not gen.block_manager.hash_to_block
        assert gen.generate([ids], GREEDY)[0][0].token_ids == _hf_greedy(model, ids, 12)
    finally:
        with torch.no_grad():
            layer.copy_(saved)


def test_reset_prefix_cache_refuses_while_blocks_are_held():
    from mrt_engine.engine.block_manager import BlockManager

    bm = BlockManager(8, 4)
    bm._take_free()  # a block held by some sequence
    with pytest.raises(RuntimeError, match="still hold KV blocks"):
        bm.reset_prefix_cache()
