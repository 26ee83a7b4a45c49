"""The CPU fast path of scoring attention (fused SDPA) against the fp32 reference and a float64 oracle."""
import pytest
import torch

from mrt_engine import ops
from mrt_engine.engine.forward import token_major_sdpa
from mrt_engine.ops.attention_sdpa import prefix_suffix_attention_sdpa, suffix_calls

from mrt_engine.ops.attention_sdpa import paged_decode_attention_sdpa

from ops_helpers import masked_attention, paged_case, paged_oracle, scoring_case, scoring_oracle

CASES = {
    # name: (prefix_lens, [(trace, cut)], suffix_lens, hq, hkv)
    "one_branch_len_1": ([5], [(0, 3)], [1], 2, 2),
    "cut_0_only": ([4], [(0, 0)], [6], 3, 1),
    "cut_0_and_L_gqa4": ([6, 1], [(0, 0), (0, 6), (1, 1), (1, 0)], [1, 3, 2, 5], 4, 1),
    "many_traces_gqa2": ([7, 3, 9], [(0, 2), (0, 7), (1, 3), (2, 0), (2, 5), (2, 9)], [3, 1, 4, 2, 2, 1], 4, 2),
    # suffixes of one trace not adjacent in the batch: each run is its own call
    "interleaved_traces": ([8, 5], [(0, 2), (1, 4), (0, 8), (1, 0), (0, 5)], [2, 3, 1, 4, 2], 3, 3),
    "empty_suffix": ([6], [(0, 2), (0, 4), (0, 6)], [3, 0, 2], 2, 1),
    "long_odd": ([37, 1, 50], [(0, c) for c in (0, 5, 17, 36, 37)] + [(1, 1)] + [(2, c) for c in (3, 29, 50)],
                 [7, 9, 13, 1, 4, 2, 11, 5, 6], 6, 2),
}


@pytest.mark.parametrize("max_rows", [1, 4, 256])
@pytest.mark.parametrize("name", list(CASES))
def test_sdpa_scoring_matches_reference_and_oracle_fp32(name, max_rows):
    prefix_lens, cuts, suffix_lens, hq, hkv = CASES[name]
    case = scoring_case(prefix_lens, cuts, suffix_lens, hq, hkv, 16, seed=len(name))
    out = prefix_suffix_attention_sdpa(**case, max_rows=max_rows)
    assert out.shape == case["q"].shape and out.dtype == torch.float32
    torch.testing.assert_close(out, ops.prefix_suffix_attention_reference(**case), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.double(), scoring_oracle(**case), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["cut_0_and_L_gqa4", "long_odd"])
def test_sdpa_scoring_bf16_close_to_fp32_reference(name):
    prefix_lens, cuts, suffix_lens, hq, hkv = CASES[name]
    case = scoring_case(prefix_lens, cuts, suffix_lens, hq, hkv, 16, dtype=torch.bfloat16)
    out = prefix_suffix_attention_sdpa(**case)
    assert out.dtype == torch.bfloat16
    f32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in case.items()}
    ref = ops.prefix_suffix_attention_reference(**f32)
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


def test_cpu_dispatch_takes_the_sdpa_path_and_torch_forces_the_reference(monkeypatch):
    case = scoring_case([9, 4], [(0, 3), (0, 9), (1, 2)], [2, 5, 3], 4, 2, 8)
    calls = []
    import mrt_engine.ops.attention as attention

    real = attention.prefix_suffix_attention_sdpa
    monkeypatch.setattr(attention, "prefix_suffix_attention_sdpa", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast = ops.prefix_suffix_attention(**case)
    assert calls == [1]
    ref = ops.prefix_suffix_attention(**case, backend="torch")
    assert calls == [1]
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


def test_sdpa_scoring_empty_batch_and_bad_input():
    case = scoring_case([4], [], [], 2, 2, 8)
    assert prefix_suffix_attention_sdpa(**case).shape == (0, 2, 8)
    case = scoring_case([4], [(0, 3)], [2], 2, 2, 8)
    case["cuts"] = torch.tensor([5], dtype=torch.int32)
    with pytest.raises(ValueError, match="prefix rows"):
        prefix_suffix_attention_sdpa(**case)
    case["cuts"] = torch.tensor([3], dtype=torch.int32)
    with pytest.raises(ValueError, match="max_rows"):
        prefix_suffix_attention_sdpa(**case, max_rows=0)


def test_suffix_calls_split_runs_by_start_and_rows():
    # suffix rows: 3, 2, 4, 1, 5; starts: 0, 0, 0, 9, 0
    indptr = [0, 3, 5, 9, 10, 15]
    assert suffix_calls(indptr, [0, 0, 0, 9, 0], max_rows=5) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert suffix_calls(indptr, [0, 0, 0, 9, 0], max_rows=100) == [(0, 3), (3, 4), (4, 5)]
    assert suffix_calls(indptr, [0, 0, 0, 9, 0], max_rows=1) == [(i, i + 1) for i in range(5)]


@pytest.mark.parametrize("n,m,hq,hkv", [(1, 1, 2, 2), (7, 7, 6, 2), (5, 12, 4, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_token_major_sdpa_matches_masked_oracle(n, m, hq, hkv, dtype):
    g = torch.Generator().manual_seed(n * 31 + m)
    q = torch.randn(n, hq, 8, generator=g).to(dtype)
    k = torch.randn(m, hkv, 8, generator=g).to(dtype)
    v = torch.randn(m, hkv, 8, generator=g).to(dtype)
    # bottom-right causal: query i (position m - n + i) sees keys 0..m - n + i
    mask = torch.arange(m)[None, :] <= (torch.arange(n) + m - n)[:, None]
    out = token_major_sdpa(q, k, v, 8 ** -0.5, None if n == m else mask)
    ref = masked_attention(q, k, v, mask, 8 ** -0.5)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert out.dtype == dtype and out.shape == (n, hq, 8)
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("lens,bs,hq,hkv", [([1], 4, 2, 2), ([5, 16, 1, 9], 4, 4, 1), ([33, 2], 16, 9, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_paged_decode_matches_reference_and_oracle(lens, bs, hq, hkv, dtype):
    case = paged_case(lens, bs, hq, hkv, 16, dtype=dtype)
    out = paged_decode_attention_sdpa(**case)
    assert out.dtype == dtype and out.shape == case["q"].shape
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    f32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in case.items()}
    torch.testing.assert_close(out.float(), ops.paged_decode_attention_reference(**f32), rtol=tol, atol=tol)
    oracle = paged_oracle(f32["q"], f32["k_cache"], f32["v_cache"], case["block_tables"], case["context_lens"],
                          case["scale"])
    torch.testing.assert_close(out.double(), oracle, rtol=tol, atol=tol)


def test_sdpa_paged_decode_rejects_an_empty_context():
    case = paged_case([3, 0], 4, 2, 2, 8)
    with pytest.raises(ValueError, match="context_lens"):
        paged_decode_attention_sdpa(**case)


BRANCH = {
    # name: (group_sizes, shared_lens, tail_lens, block_size, hq, hkv)
    "one_branch_len_1": ([1], [0], [1], 4, 2, 2),
    "one_group": ([3], [8], [1, 2, 5], 4, 2, 2),
    # a singleton with no tail (its context is whole shared blocks), a group with no shared blocks
    "gqa4_mixed": ([1, 4, 2], [0, 12, 4], [3, 1, 0, 6, 4, 1, 7], 4, 4, 1),
    "gqa3_empty_tail": ([2, 1, 3], [16, 8, 32], [3, 0, 5, 1, 2, 16], 8, 9, 3),
    "no_shared_at_all": ([2, 2], [0, 0], [5, 1, 3, 7], 4, 4, 2),
}


@pytest.mark.parametrize("name", list(BRANCH))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_branch_decode_matches_reference(name, dtype):
    from mrt_engine.ops.attention_sdpa import branch_decode_attention_sdpa

    from ops_helpers import branch_case

    case = branch_case(*BRANCH[name], d=16, dtype=dtype)
    out = branch_decode_attention_sdpa(**case)
    assert out.dtype == dtype and out.shape == case["q"].shape
    f32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in case.items()}
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.float(), ops.branch_decode_attention_reference(**f32), rtol=tol, atol=tol)
    # the planner's validate=False skips checks only
    assert torch.equal(branch_decode_attention_sdpa(**case, validate=False), out)


def test_worth_cascading_needs_a_real_saving():
    from mrt_engine.ops.attention_sdpa import MIN_SAVED_TOKENS, worth_cascading

    # 9 groups of 4 branches of a ~700-token trace: saves ~3/4 of the gather
    assert worth_cascading([4] * 9, [700] * 9, [716] * 36)
    # generation: 4 groups of 4 samples of a 48-token prompt: too little to pay for a second call
    assert not worth_cascading([4] * 4, [48] * 4, [112] * 16)
    # singletons share nothing
    assert not worth_cascading([1] * 8, [4096] * 8, [4100] * 8)
    assert not worth_cascading([2], [MIN_SAVED_TOKENS - 16], [MIN_SAVED_TOKENS] * 2)
