"""Triton kernels against their torch references, run on CPU through the Triton interpreter.

Everything here, including the paged block-table gathers (indirect loads work in the
triton 3.9 interpreter), runs under TRITON_INTERPRET=1 in fp32 and fp16. bf16 is checked
only on CUDA (the interpreter computes bf16 wrongly, so the launchers refuse it on CPU).
"""
import os

import pytest
import torch

from ops_helpers import branch_case, paged_case, prefill_case, prefill_oracle, scoring_case
from mrt_engine.ops import (
    branch_decode_attention,
    branch_decode_attention_with_lse,
    paged_decode_attention,
    paged_decode_attention_with_lse,
    paged_prefill_attention,
    paged_prefill_attention_with_lse,
    prefix_suffix_attention,
    prefix_suffix_attention_with_lse,
    selective_log_prob,
    selective_log_prob_reference,
)
from mrt_engine.ops.logprob_triton import selective_log_prob_triton
from mrt_engine.ops.attention_triton import (
    Tiles,
    branch_decode_attention_triton,
    cascade_decode_attention_triton,
    paged_decode_attention_triton,
    paged_prefill_attention_triton,
    prefix_suffix_attention_triton,
)

# One tolerance table: (rtol, atol) per dtype for outputs and for gradients.
TOL = {
    torch.float32: {"out": (1e-5, 1e-5), "grad": (1e-4, 1e-5)},
    torch.float16: {"out": (2e-3, 2e-3), "grad": (1e-2, 1e-2)},
    torch.bfloat16: {"out": (2e-2, 2e-2), "grad": (5e-2, 5e-2)},
}
DTYPES = [torch.float32, torch.float16]


def close(actual, expected, dtype, kind="out", what=""):
    rtol, atol = TOL[dtype][kind]
    torch.testing.assert_close(actual.float().cpu(), expected.float().cpu(), rtol=rtol, atol=atol,
                               msg=lambda m: f"{what} ({dtype}, {kind}): {m}")


# ---------------------------------------------------------------- selective log-prob

LOGPROB_SHAPES = [(1, 123, 16), (37, 123, 24), (20, 300, 40)]


@pytest.mark.parametrize("impl", ["fused", "matmul"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,v,h", LOGPROB_SHAPES)
def test_selective_log_prob_forward_matches_reference(m, v, h, dtype, impl):
    hidden = torch.randn(m, h).to(dtype)
    weight = (torch.randn(v, h) * 0.3).to(dtype)
    bias = torch.randn(v).to(dtype) if v == 300 else None
    targets = torch.randint(0, v, (m,))
    targets[0] = v - 1  # the last vocab column (tile edge)
    temperature = 0.7 if h == 24 else 1.0
    kw = dict(bias=bias, temperature=temperature, return_entropy=True)
    logp, ent = selective_log_prob_triton(hidden, weight, targets, impl=impl, chunk_size=16, **kw)
    ref_logp, ref_ent = selective_log_prob_reference(hidden, weight, targets, **kw)
    assert logp.dtype == torch.float32 and logp.shape == (m,)
    close(logp, ref_logp, dtype, what="logp")
    close(ent, ref_ent, dtype, what="entropy")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl,with_entropy,use_bias,chunk",
                         [("fused", False, False, None), ("fused", True, True, 7), ("matmul", True, True, 7)])
def test_selective_log_prob_gradients_match_autograd_through_reference(dtype, impl, with_entropy, use_bias, chunk):
    m, v, h = 23, 123, 24
    base = [torch.randn(m, h), torch.randn(v, h) * 0.3] + ([torch.randn(v)] if use_bias else [])
    targets = torch.randint(0, v, (m,))
    g_logp, g_ent = torch.randn(m), torch.randn(m)

    def grads(backend):
        leaves = [t.to(dtype).requires_grad_() for t in base]
        kw = dict(bias=leaves[2] if use_bias else None, temperature=0.9, return_entropy=with_entropy, chunk_size=chunk)
        if backend == "triton":
            out = selective_log_prob_triton(leaves[0], leaves[1], targets, impl=impl, **kw)
        else:
            out = selective_log_prob(leaves[0], leaves[1], targets, backend="torch", **kw)
        loss = (out[0] * g_logp).sum() + (out[1] * g_ent).sum() if with_entropy else (out * g_logp).sum()
        loss.backward()
        return [t.grad for t in leaves]

    for name, a, b in zip(["hidden", "weight", "bias"], grads("triton"), grads("torch")):
        assert a.dtype == dtype
        close(a, b, dtype, "grad", what=f"d/d{name}")


def test_selective_log_prob_triton_refuses_bf16_on_cpu():
    x, w = torch.randn(2, 16, dtype=torch.bfloat16), torch.randn(40, 16, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="bf16"):
        selective_log_prob(x, w, torch.tensor([1, 2]), backend="triton")


def test_dispatch_uses_reference_on_cpu_and_rejects_unknown_backend():
    x, w, t = torch.randn(3, 16), torch.randn(40, 16), torch.tensor([1, 2, 3])
    torch.testing.assert_close(selective_log_prob(x, w, t), selective_log_prob_reference(x, w, t))
    with pytest.raises(ValueError, match="backend"):
        selective_log_prob(x, w, t, backend="cuda")


# ---------------------------------------------------------------- shared-prefix scoring

SCORING = {
    # name: (prefix_lens, [(trace, cut)], suffix_lens, hq, hkv, head_dim)
    "one_suffix_L1": ([1], [(0, 1)], [1], 2, 2, 8),
    "cut_0_and_L_gqa4": ([6, 1], [(0, 0), (0, 6), (1, 1), (1, 0)], [1, 3, 2, 5], 4, 1, 8),
    "long_suffix_blocks": ([40, 9], [(0, 17), (0, 40), (1, 9)], [19, 2, 33], 2, 2, 16),
    "gqa3_like_smollm2": ([10], [(0, 4), (0, 10)], [7, 3], 6, 2, 8),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SCORING))
def test_prefix_suffix_attention_matches_reference(name, dtype):
    prefix_lens, cuts, suffix_lens, hq, hkv, d = SCORING[name]
    case = scoring_case(prefix_lens, cuts, suffix_lens, hq, hkv, d, dtype=dtype)
    out, lse = prefix_suffix_attention_triton(**case, return_lse=True)
    ref, ref_lse = prefix_suffix_attention_with_lse(**case)
    assert out.dtype == dtype and out.shape == case["q"].shape
    close(out, ref, dtype, what="out")
    close(lse, ref_lse, dtype, what="lse")
    close(prefix_suffix_attention(**case, backend="triton", max_suffix_len=max(suffix_lens)), ref, dtype)


# ---------------------------------------------------------------- paged and branch decode

PAGED = {
    # name: (context_lens, block_size, hq, hkv, num_splits)
    "one_seq_one_token": ([1], 4, 2, 2, None),
    "empty_and_gqa4": ([5, 16, 0, 9], 4, 4, 1, None),
    "block16_split3": ([45, 3], 16, 4, 2, 3),
    "gqa3": ([7, 2], 4, 3, 1, None),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(PAGED))
def test_paged_decode_attention_matches_reference(name, dtype):
    lens, bs, hq, hkv, splits = PAGED[name]
    case = paged_case(lens, bs, hq, hkv, 8, dtype=dtype)
    out, lse = paged_decode_attention_triton(**case, num_splits=splits, return_lse=True)
    ref, ref_lse = paged_decode_attention_with_lse(**case)
    close(out, ref, dtype, what="out")
    close(lse, ref_lse, dtype, what="lse")
    close(paged_decode_attention(**case, backend="triton"), ref, dtype)


BRANCH = {
    # name: (group_sizes, shared_lens, tail_lens, block_size, hq, hkv, num_splits)
    "one_group": ([3], [8], [1, 2, 5], 4, 2, 2, None),
    "gqa4_mixed": ([1, 4, 2], [0, 12, 4], [3, 1, 0, 6, 4, 1, 7], 4, 4, 1, None),
    "long_shared_split": ([5, 1], [48, 16], [1, 0, 17, 2, 3, 5], 16, 2, 1, 3),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BRANCH))
def test_branch_decode_attention_matches_reference(name, dtype):
    *shape, splits = BRANCH[name]
    case = branch_case(*shape, d=8, dtype=dtype)
    out, lse = branch_decode_attention_triton(**case, num_splits=splits, return_lse=True)
    ref, ref_lse = branch_decode_attention_with_lse(**case)
    close(out, ref, dtype, what="out")
    close(lse, ref_lse, dtype, what="lse")
    close(branch_decode_attention(**case, backend="triton"), ref, dtype)


# ---------------------------------------------------------------- cascade decode over one work list

CASCADE = {
    # name: (group_sizes, shared_lens, tail_lens, block_size, hq, hkv, plan_cascade_work options)
    **{name: (*BRANCH[name][:-1], {}) for name in BRANCH},
    "one_branch_length_1": ([1], [0], [1], 4, 2, 2, {}),
    "group_rows_over_the_tile": ([21, 1], [32, 4], [1] * 21 + [3], 4, 4, 2, {"max_rows": 16}),
    "long_prefix_split": ([3, 2], [200, 37], [5, 0, 9, 1, 17], 16, 6, 1,
                          {"min_chunk_tokens": 16, "target_programs": 64}),
    "nothing_to_attend": ([2, 1], [0, 0], [0, 4, 0], 4, 2, 2, {}),
    "no_work_at_all": ([1], [0], [0], 4, 2, 2, {}),
}


def _cascade_work(case, **options):
    from mrt_engine.ops import DecodePlan, plan_cascade_work

    plan = DecodePlan(group_indptr=case["group_indptr"], shared_block_tables=case["shared_block_tables"],
                      shared_lens=case["shared_lens"], tail_block_tables=case["tail_block_tables"],
                      tail_lens=case["tail_lens"], max_shared_len=int(case["shared_lens"].max()),
                      max_tail_len=int(case["tail_lens"].max()), max_group_size=0)
    hq, hkv = case["q"].shape[1], case["k_cache"].shape[2]
    return plan_cascade_work(plan, gqa_ratio=hq // hkv, num_kv_heads=hkv, **options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CASCADE))
def test_cascade_decode_over_one_work_list_matches_reference(name, dtype):
    *shape, options = CASCADE[name]
    case = branch_case(*shape, d=8 if name in BRANCH else 24, dtype=dtype)
    work = _cascade_work(case, **options)
    out, lse = cascade_decode_attention_triton(case["q"], case["k_cache"], case["v_cache"], work=work,
                                               scale=case["scale"], return_lse=True)
    ref, ref_lse = branch_decode_attention_with_lse(**case)
    assert out.dtype == dtype
    close(out, ref, dtype, what="out")
    close(lse, ref_lse, dtype, what="lse")
    close(branch_decode_attention(**case, backend="triton", work=work), ref, dtype)


def test_cascade_work_list_is_balanced_longest_first_and_covers_every_key_once():
    case = branch_case(*CASCADE["long_prefix_split"][:-1], d=8)
    work = _cascade_work(case, min_chunk_tokens=16, target_programs=64)
    items = work.items.tolist()
    lengths = [hi - lo for _, _, _, lo, hi, _ in items]
    assert lengths == sorted(lengths, reverse=True) and max(lengths) == work.chunk_tokens
    assert sum(1 for *_, row, lo, hi, _ in items if row == 0) > 1  # the 200-token prefix is split
    assert all(n * 6 <= work.block_q for _, n, *_ in items)
    # every sequence reads its shared keys and its tail keys exactly once
    group_of = torch.repeat_interleave(torch.arange(2), torch.tensor([3, 2])).tolist()
    for b in range(5):
        seen = {}
        for first, n, row, lo, hi, _ in items:
            if first <= b < first + n:
                seen.setdefault(row, []).append((lo, hi))
        spans = {row: sorted(r) for row, r in seen.items()}
        expect = {}
        if int(case["shared_lens"][group_of[b]]):
            expect[group_of[b]] = int(case["shared_lens"][group_of[b]])
        if int(case["tail_lens"][b]):
            expect[2 + b] = int(case["tail_lens"][b])
        assert set(spans) == set(expect)
        for row, r in spans.items():
            assert r[0][0] == 0 and r[-1][1] == expect[row] and all(a[1] == c[0] for a, c in zip(r, r[1:]))
    num_entries = work.merge_indptr[1:] - work.merge_indptr[:-1]
    assert num_entries.tolist() == [sum(1 for first, n, *_ in items if first <= b < first + n) for b in range(5)]


def test_cascade_decode_bf16_under_the_switch(monkeypatch):
    monkeypatch.setenv("MRT_TRITON_CPU", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    case = branch_case([3, 1], [32, 16], [2, 5, 1, 7], 16, 6, 1, d=16, dtype=torch.bfloat16)
    work = _cascade_work(case)
    out = branch_decode_attention(**case, work=work)
    f32 = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in case.items()}
    assert out.dtype == torch.bfloat16
    close(out, branch_decode_attention_with_lse(**f32)[0], torch.bfloat16, what="bf16 cascade")


# ---------------------------------------------------------------- paged prefill (the engine's prefill)

PREFILL = {
    # name: (cached_lens, chunk_lens, block_size, hq, hkv, head_dim, tiles)
    "one_token_no_cache": ([0], [1], 4, 2, 2, 8, None),
    "cached_and_not_gqa4": ([0, 5, 17], [3, 1, 9], 4, 4, 1, 8, None),
    "empty_chunk_gqa3_odd_dim": ([7, 2, 0], [0, 5, 6], 4, 3, 1, 24, None),
    "long_chunk_block16": ([33, 0], [40, 21], 16, 2, 2, 16, None),
    # the GPU's tiles (128 rows, 64 keys): whole unmasked key tiles before the chunk, GQA 6:1
    "gpu_tiles_gqa6": ([150, 64, 1], [70, 1, 64], 16, 6, 1, 16, Tiles(block_q=128, block_n=64)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(PREFILL))
def test_paged_prefill_attention_matches_reference(name, dtype):
    *shape, tiles = PREFILL[name]
    case = prefill_case(*shape, dtype=dtype)
    out, lse = paged_prefill_attention_triton(**case, return_lse=True, tiles=tiles or Tiles())
    ref, ref_lse = paged_prefill_attention_with_lse(**case)
    assert out.dtype == dtype and out.shape == case["q"].shape
    close(out, ref, dtype, what="out")
    close(lse, ref_lse, dtype, what="lse")
    f64 = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in case.items()}
    close(ref, prefill_oracle(**f64), torch.float32, what="reference vs float64 oracle")
    close(paged_prefill_attention(**case, backend="triton", max_q_len=max(shape[1]), validate=False), ref, dtype)


def test_paged_prefill_bf16_runs_the_launcher_in_fp32_under_the_switch(monkeypatch):
    monkeypatch.setenv("MRT_TRITON_CPU", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    case = prefill_case([9, 0], [4, 7], 4, 6, 1, 16, dtype=torch.bfloat16)
    out = paged_prefill_attention(**case)  # auto dispatch: the Triton launcher on fp32 copies
    ref = paged_prefill_attention(**{k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                                     for k, v in case.items()}, backend="torch")
    assert out.dtype == torch.bfloat16
    close(out, ref, torch.bfloat16, what="bf16 prefill")


def test_paged_prefill_rejects_keys_outside_their_blocks():
    case = prefill_case([5], [4], 4, 2, 2, 8)
    case["cached_lens"] = torch.tensor([9], dtype=torch.int32)  # 13 keys in 3 blocks of 4
    with pytest.raises(ValueError, match="paged prefill"):
        paged_prefill_attention(**case, backend="triton")


def test_decode_split_count_is_a_runtime_argument():
    # Growing sequences and changing split counts reuse one compiled decode kernel (the split
    # count and the table width are runtime arguments Triton does not specialise on).
    from mrt_engine.ops import _kernels

    kernel = _kernels.load().grouped_paged_decode_kernel
    assert "num_splits" in kernel.arg_names and "NUM_SPLITS" not in kernel.arg_names
    interpreted = getattr(kernel, "kwargs", None)  # the interpreter keeps the jit options as given
    unspecialised = (interpreted["do_not_specialize"] if interpreted is not None
                     else [p.name for p in kernel.params if p.do_not_specialize])
    assert {"num_splits", "tokens_per_split", "stride_table", "num_rows_out"} <= set(unspecialised)
    for lens, splits in (([5, 16], 1), ([45, 3], 3), ([130, 7], 5)):
        case = paged_case(lens, 16, 4, 2, 8)
        close(paged_decode_attention_triton(**case, num_splits=splits), paged_decode_attention_with_lse(**case)[0],
              torch.float32, what=f"splits={splits}")


# ---------------------------------------------------------------- CUDA (skipped without a GPU)

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_kernels_match_reference(dtype):
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1 runs the kernels in the CPU interpreter (no bf16): "
                    "run CUDA checks with TRITON_INTERPRET=0, as bench/gpu_check.sh does")
    dev = "cuda"
    hidden = torch.randn(300, 256, device=dev).to(dtype).requires_grad_()
    weight = (torch.randn(5000, 256, device=dev) * 0.05).to(dtype).requires_grad_()
    targets = torch.randint(0, 5000, (300,), device=dev)
    logp = selective_log_prob(hidden, weight, targets)
    ref = selective_log_prob_reference(hidden.detach().float(), weight.detach().float(), targets)
    close(logp, ref, dtype, what="cuda logp")
    matmul_logp = selective_log_prob_triton(hidden.detach(), weight.detach(), targets, impl="matmul", chunk_size=128)
    close(matmul_logp, ref, dtype, "grad", what="cuda logp (matmul impl; logits rounded to the input dtype)")
    logp.sum().backward()
    h2, w2 = hidden.detach().float().requires_grad_(), weight.detach().float().requires_grad_()
    selective_log_prob_reference(h2, w2, targets).sum().backward()
    close(hidden.grad, h2.grad, dtype, "grad", what="cuda d/dhidden")
    close(weight.grad, w2.grad, dtype, "grad", what="cuda d/dweight")

    case = scoring_case([300, 77], [(0, 0), (0, 150), (0, 300), (1, 77)], [40, 13, 70, 1], 8, 2, 64, dtype=dtype)
    case = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in case.items()}
    ref = prefix_suffix_attention_with_lse(**{k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                                              for k, v in case.items()})[0]
    close(prefix_suffix_attention(**case), ref, dtype, what="cuda scoring")

    case = branch_case([8, 1, 3], [512, 64, 48], [1, 5, 17, 30, 2, 2, 2, 9, 0, 3, 4, 70], 16, 8, 2, 64, dtype=dtype)
    work = _cascade_work(case, min_chunk_tokens=128).to(dev)  # the 512-token prefix in 4 parts
    case = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in case.items()}
    f32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in case.items()}
    close(branch_decode_attention(**case), branch_decode_attention_with_lse(**f32)[0], dtype, what="cuda branch")
    close(branch_decode_attention(**case, work=work), branch_decode_attention_with_lse(**f32)[0], dtype,
          what="cuda cascade over one work list")
    pcase = paged_case([1, 700, 33, 0], 16, 8, 2, 64, dtype=dtype)
    pcase = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in pcase.items()}
    p32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in pcase.items()}
    close(paged_decode_attention(**pcase), paged_decode_attention_with_lse(**p32)[0], dtype, what="cuda paged")
    # the engine's prefill: chunks with and without cached tokens, the 1.5B model's heads (12:2 of 128)
    fcase = prefill_case([0, 300, 17, 5], [64, 13, 200, 1], 16, 12, 2, 128, dtype=dtype)
    fcase = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in fcase.items()}
    f32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in fcase.items()}
    close(paged_prefill_attention(**fcase), paged_prefill_attention_with_lse(**f32)[0], dtype, what="cuda prefill")


def test_kernel_launchers_reject_out_of_range_metadata():
    case = scoring_case([4], [(0, 3)], [2], 2, 2, 8)
    case["cuts"] = torch.tensor([5], dtype=torch.int32)
    with pytest.raises(ValueError, match="prefix rows"):
        prefix_suffix_attention(**case, backend="triton")
    case = paged_case([5, 3], 4, 2, 2, 8)
    case["block_tables"][1, 0] = case["k_cache"].shape[0]  # one past the last block
    with pytest.raises(ValueError, match="block ids"):
        paged_decode_attention(**case, backend="triton")
