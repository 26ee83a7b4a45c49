"""The pure-torch references match float64 plain computations (the oracles of every kernel test)."""
import pytest
import torch

from ops_helpers import branch_case, paged_case, scoring_case
from ops_helpers import branch_oracle, logprob_oracle, paged_oracle, scoring_oracle
from mrt_engine.ops import (
    branch_decode_attention_reference,
    merge_state,
    paged_decode_attention_reference,
    prefix_suffix_attention_reference,
    selective_log_prob_reference,
)


@pytest.mark.parametrize("m,v,h,chunk", [(1, 123, 16, None), (37, 123, 24, 8), (64, 1000, 32, 7)])
@pytest.mark.parametrize("temperature,use_bias", [(1.0, False), (0.7, True)])
def test_selective_log_prob_reference_matches_float64(m, v, h, chunk, temperature, use_bias):
    hidden = torch.randn(m, h)
    weight = torch.randn(v, h) * 0.3
    bias = torch.randn(v) if use_bias else None
    targets = torch.randint(0, v, (m,))
    logp, ent = selective_log_prob_reference(hidden, weight, targets, bias=bias, temperature=temperature,
                                             return_entropy=True, chunk_size=chunk)
    ref_logp, ref_ent = logprob_oracle(hidden, weight, targets, bias, temperature)
    assert logp.dtype == torch.float32 and logp.shape == (m,)
    torch.testing.assert_close(logp.double(), ref_logp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent.double(), ref_ent, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_bias", [False, True])
def test_selective_log_prob_reference_gradients_match_autograd(use_bias):
    m, v, h = 19, 123, 16
    hidden = torch.randn(m, h, dtype=torch.float64)
    weight = torch.randn(v, h, dtype=torch.float64) * 0.3
    bias = torch.randn(v, dtype=torch.float64) if use_bias else None
    targets = torch.randint(0, v, (m,))
    g_logp, g_ent = torch.randn(m, dtype=torch.float64), torch.randn(m, dtype=torch.float64)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight) + ((bias,) if use_bias else ())]
        b = leaves[2] if use_bias else None
        logp, ent = fn(leaves[0], leaves[1], b)
        ((logp.double() * g_logp).sum() + (ent.double() * g_ent).sum()).backward()
        return [x.grad for x in leaves]

    ours = run(lambda x, w, b: selective_log_prob_reference(x.float(), w.float(), targets, bias=None if b is None else b.float(),
                                                            temperature=0.8, return_entropy=True, chunk_size=5))
    plain = run(lambda x, w, b: logprob_oracle(x, w, targets, b, 0.8))
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)


def test_selective_log_prob_reference_rejects_bad_input():
    hidden, weight = torch.randn(3, 8), torch.randn(10, 8)
    with pytest.raises(ValueError, match="targets must lie"):
        selective_log_prob_reference(hidden, weight, torch.tensor([0, 10, 1]))
    with pytest.raises(ValueError, match="disagree on H"):
        selective_log_prob_reference(hidden, torch.randn(10, 9), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="temperature"):
        selective_log_prob_reference(hidden, weight, torch.tensor([0, 1, 1]), temperature=0.0)


def test_merge_state_equals_joint_softmax_and_handles_empty():
    q, k, v = torch.randn(4, 2, 8), torch.randn(10, 2, 8), torch.randn(10, 2, 8)
    s = torch.einsum("qhd,khd->qhk", q, k)
    full = torch.einsum("qhk,khd->qhd", torch.softmax(s, -1), v)

    def state(lo, hi):
        ss = s[..., lo:hi]
        return torch.einsum("qhk,khd->qhd", torch.softmax(ss, -1), v[lo:hi]), torch.logsumexp(ss, -1)

    out, lse = merge_state(*state(0, 3), *state(3, 10))
    torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse, torch.logsumexp(s, -1))
    empty = (torch.zeros(4, 2, 8), torch.full((4, 2), float("-inf")))
    out2, lse2 = merge_state(*empty, *state(0, 10))
    torch.testing.assert_close(out2, full, rtol=1e-5, atol=1e-5)
    out3, lse3 = merge_state(*empty, *empty)
    assert torch.all(out3 == 0) and torch.all(torch.isneginf(lse3))


SCORING = {
    # name: (prefix_lens, [(trace, cut)], suffix_lens, hq, hkv)
    "one_suffix": ([5], [(0, 3)], [4], 2, 2),
    "cut_0_and_L_gqa4": ([6, 1], [(0, 0), (0, 6), (1, 1), (1, 0)], [1, 3, 2, 5], 4, 1),
    "many_traces": ([7, 3, 9], [(0, 2), (0, 7), (1, 3), (2, 0), (2, 5), (2, 9)], [3, 1, 4, 2, 2, 1], 4, 2),
}


@pytest.mark.parametrize("name", list(SCORING))
def test_prefix_suffix_attention_reference_matches_masked_float64(name):
    prefix_lens, cuts, suffix_lens, hq, hkv = SCORING[name]
    case = scoring_case(prefix_lens, cuts, suffix_lens, hq, hkv, 8)
    out = prefix_suffix_attention_reference(**case)
    ref = scoring_oracle(**case)
    assert out.shape == case["q"].shape and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_prefix_suffix_attention_reference_rejects_out_of_range_prefix():
    case = scoring_case([4], [(0, 3)], [2], 2, 2, 8)
    case["cuts"] = torch.tensor([5], dtype=torch.int32)
    with pytest.raises(ValueError, match="prefix rows"):
        prefix_suffix_attention_reference(**case)


@pytest.mark.parametrize("lens,bs,hq,hkv", [([1], 4, 2, 2), ([5, 16, 0, 9], 4, 4, 1), ([33, 2], 16, 8, 2)])
def test_paged_decode_reference_matches_float64(lens, bs, hq, hkv):
    case = paged_case(lens, bs, hq, hkv, 8)
    out = paged_decode_attention_reference(**case)
    ref = paged_oracle(case["q"], case["k_cache"], case["v_cache"], case["block_tables"], case["context_lens"], case["scale"])
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


BRANCH = {
    # name: (group_sizes, shared_lens, tail_lens, block_size, hq, hkv)
    "one_group": ([3], [8], [1, 2, 5], 4, 2, 2),
    "gqa4_mixed": ([1, 4, 2], [0, 12, 4], [3, 1, 0, 6, 4, 1, 7], 4, 4, 1),
}


@pytest.mark.parametrize("name", list(BRANCH))
def test_branch_decode_reference_matches_float64(name):
    case = branch_case(*BRANCH[name], d=8)
    out = branch_decode_attention_reference(**case)
    ref = branch_oracle(case["q"], case["k_cache"], case["v_cache"], case["group_indptr"], case["shared_block_tables"],
                        case["shared_lens"], case["tail_block_tables"], case["tail_lens"], case["scale"])
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
