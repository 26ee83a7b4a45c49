"""Planner: C++ and Python agree exactly on random inputs; the plans mean what they say."""
import random

import pytest
import torch

from mrt_engine.ops import branch_decode_attention, branch_decode_attention_reference, paged_decode_attention_reference
from mrt_engine.ops.plan import plan_decode, plan_scoring

needs_native = pytest.mark.native  # skipped where mrt_engine._C is missing, failed in CI (conftest.py)


def _random_scoring(rng):
    num_traces = rng.randint(1, 6)
    vocab = rng.choice([2, 3, 50])  # tiny vocabularies make equal and prefix traces likely
    base = [rng.randrange(vocab) for _ in range(12)]
    tokens = []
    for _ in range(num_traces):
        if rng.random() < 0.5:
            tokens.append(base[: rng.randint(0, 12)])
        else:
            tokens.append([rng.randrange(vocab) for _ in range(rng.randint(0, 10))])
    cuts = [sorted(rng.sample(range(len(t) + 1), rng.randint(0, min(4, len(t) + 1)))) for t in tokens]
    suffix_lens = [[rng.randint(1, 5) for _ in cs] for cs in cuts]
    return [len(t) for t in tokens], cuts, suffix_lens, tokens


def _assert_same(a, b):
    for f in a.__dataclass_fields__:
        x, y = getattr(a, f), getattr(b, f)
        assert (torch.equal(x, y) if torch.is_tensor(x) else x == y), f


@needs_native
def test_native_and_python_scoring_plans_agree_on_random_inputs():
    rng = random.Random(0)
    for _ in range(300):
        lens, cuts, sl, tokens = _random_scoring(rng)
        for tt in (None, tokens):
            _assert_same(plan_scoring(lens, cuts, sl, trace_tokens=tt, use_native=True),
                         plan_scoring(lens, cuts, sl, trace_tokens=tt, use_native=False))


def _random_decode(rng):
    block_size = rng.choice([1, 4, 16])
    next_block = iter(range(10_000))
    tables, lens, gids = [], [], []
    for g in range(rng.randint(1, 5)):
        shared = [next(next_block) for _ in range(rng.randint(0, 6))]
        for _ in range(rng.randint(1, 4)):
            keep = shared[: rng.randint(0, len(shared))] if rng.random() < 0.3 else shared
            own = [next(next_block) for _ in range(rng.randint(0, 3))]
            t = keep + own
            tables.append(t)
            lens.append(rng.randint(max(0, (len(t) - 1) * block_size), len(t) * block_size) if t else 0)
            gids.append(g)
    return tables, lens, block_size, gids


@needs_native
def test_native_and_python_decode_plans_agree_on_random_inputs():
    rng = random.Random(1)
    for _ in range(300):
        tables, lens, bs, gids = _random_decode(rng)
        for g in (None, gids):
            _assert_same(plan_decode(tables, lens, block_size=bs, group_ids=g, use_native=True),
                         plan_decode(tables, lens, block_size=bs, group_ids=g, use_native=False))


@pytest.mark.parametrize("use_native", [False, pytest.param(True, marks=needs_native)])
def test_scoring_plan_layout_and_dedup(use_native):
    tokens = [[5, 6, 7], [5, 6, 7, 8, 9], [1, 2], [5, 6, 7]]
    plan = plan_scoring([3, 5, 2, 3], [[0, 3], [2], [1, 2], [1]], 2, trace_tokens=tokens, use_native=use_native)
    # traces 0 and 3 are prefixes of trace 1: one slot serves all three; trace 2 has its own.
    assert plan.unique_traces.tolist() == [1, 2]
    assert plan.trace_indptr.tolist() == [0, 5, 7]
    assert plan.prefix_start.tolist() == [0, 0, 0, 5, 5, 0]  # traces 0, 1, 3 read slot 0; trace 2 slot 1
    assert plan.cuts.tolist() == [0, 3, 2, 1, 2, 1]
    assert plan.suffix_indptr.tolist() == [0, 2, 4, 6, 8, 10, 12]
    assert plan.suffix_positions.tolist()[:6] == [0, 1, 3, 4, 2, 3]
    assert (plan.max_suffix_len, plan.num_prefix_tokens, plan.num_suffix_tokens) == (2, 7, 12)
    no_dedup = plan_scoring([3, 5, 2, 3], [[0, 3], [2], [1, 2], [1]], 2, use_native=use_native)
    assert no_dedup.trace_indptr.tolist() == [0, 3, 8, 10, 13]


def test_scoring_plan_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        plan_scoring([3], [[4]], 1)
    with pytest.raises(ValueError, match="suffix_lens must be >= 1"):
        plan_scoring([3], [[1]], [[0]])
    with pytest.raises(ValueError, match="trace_tokens lengths"):
        plan_scoring([3], [[1]], 1, trace_tokens=[[1, 2]])


@pytest.mark.parametrize("use_native", [False, pytest.param(True, marks=needs_native)])
def test_decode_plan_groups_and_attention_agree_with_plain_paged(use_native):
    bs = 4
    shared = [10, 11, 12]
    tables = [shared + [20], shared + [21, 22], shared[:2] + [30], [40, 41], [50]]
    lens = [13, 18, 9, 6, 2]
    plan = plan_decode(tables, lens, block_size=bs, use_native=use_native)
    assert plan.group_indptr.tolist() == [0, 3, 4, 5]
    # 2 blocks common to all three; a singleton's full blocks go to the shared pass too
    assert plan.shared_lens.tolist() == [8, 4, 0]
    assert plan.tail_lens.tolist() == [5, 10, 1, 2, 2]
    grouped = plan_decode(tables, lens, block_size=bs, group_ids=[0, 0, 1, 1, 2], use_native=use_native)
    # group 1 = sequences 2 and 3 share no block; a group of one (sequence 4) has no full block
    assert grouped.group_indptr.tolist() == [0, 2, 4, 5] and grouped.shared_lens.tolist() == [12, 0, 0]
    assert grouped.tail_lens.tolist() == [1, 6, 9, 6, 2]
    singles = plan_decode(tables, lens, block_size=bs, group_ids=range(5), use_native=use_native)
    assert singles.shared_lens.tolist() == [12, 16, 8, 4, 0] and singles.tail_lens.tolist() == [1, 2, 1, 2, 2]
    assert singles.tail_block_tables.tolist() == [[20], [22], [30], [41], [50]]
    # The cascade over the plan equals plain paged attention over the full tables.
    k_cache, v_cache = torch.randn(64, bs, 2, 8), torch.randn(64, bs, 2, 8)
    q = torch.randn(5, 4, 8)
    width = max(len(t) for t in tables)
    full = torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.int32)
    ref = paged_decode_attention_reference(q, k_cache, v_cache, block_tables=full, context_lens=torch.tensor(lens),
                                           scale=0.3)
    for p in (plan, grouped, singles):
        assert (p.max_shared_len, p.max_tail_len) == (int(p.shared_lens.max()), int(p.tail_lens.max()))
        out = branch_decode_attention_reference(
            q, k_cache, v_cache, group_indptr=p.group_indptr, shared_block_tables=p.shared_block_tables,
            shared_lens=p.shared_lens, tail_block_tables=p.tail_block_tables, tail_lens=p.tail_lens, scale=0.3)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        # The plan's own arguments (hints, no per-call checks) drive the Triton kernel (interpreter).
        out = branch_decode_attention(q, k_cache, v_cache, **p.to("cpu").attention_args(), scale=0.3, backend="triton")
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_decode_plan_rejects_context_past_its_blocks():
    with pytest.raises(ValueError, match="exceed"):
        plan_decode([[1, 2]], [9], block_size=4)
