"""Block manager and scheduler on their own (no model): ref counts, prefix cache, fork,
preemption bookkeeping."""
from mrt_engine.engine import block_manager as bm_mod
from mrt_engine.engine.block_manager import BlockManager
from mrt_engine.engine.config import SamplingParams
from mrt_engine.engine.scheduler import Scheduler
from mrt_engine.engine.sequence import Sequence


def _seq(tokens, n=1):
    return Sequence(tokens, SamplingParams(n=n), request_id=0, sample_index=0, seed=0, num_samples=n)


def test_allocate_and_free_ref_counts():
    bm = BlockManager(8, 4)
    s = _seq(list(range(10)))  # 3 blocks
    assert bm.can_allocate(s)
    bm.allocate(s)
    assert len(s.block_table) == 3 and bm.num_free_blocks == 5
    assert all(bm.ref_count[b] == 1 for b in s.block_table)
    bm.free_seq(s)
    assert bm.num_free_blocks == 8 and s.block_table == []


def test_prefix_cache_hit_needs_commit_and_equal_tokens():
    bm = BlockManager(16, 4)
    a = _seq(list(range(10)))
    bm.allocate(a)
    b = _seq(list(range(10)) + [99])
    bm.allocate(b)
    assert b.num_cached_tokens == 0, "uncommitted blocks must not be hits"
    bm.free_seq(b)
    bm.commit(a, 10)  # blocks 0, 1 full and computed
    c = _seq(list(range(10)) + [99])
    bm.allocate(c)
    assert c.block_table[:2] == a.block_table[:2] and c.num_cached_tokens == 8
    assert bm.ref_count[a.block_table[0]] == 2
    d = _seq([0, 1, 2, 3, 7, 7, 7, 7, 1])  # first block equal, second differs: chain stops there
    bm.allocate(d)
    assert d.block_table[0] == a.block_table[0] and d.block_table[1] != a.block_table[1]
    assert d.num_cached_tokens == 4


def test_hash_collision_is_a_miss(monkeypatch):
    monkeypatch.setattr(bm_mod, "chain_hash", lambda prev, tokens: 1234)  # every block collides
    bm = BlockManager(16, 4)
    a = _seq([1, 2, 3, 4, 5])
    bm.allocate(a)
    bm.commit(a, 5)
    b = _seq([9, 9, 9, 9, 5])  # same hash, other tokens
    bm.allocate(b)
    assert b.num_cached_tokens == 0 and b.block_table[0] != a.block_table[0]


def test_last_token_is_never_a_cache_hit():
    bm = BlockManager(16, 4)
    a = _seq(list(range(8)))
    bm.allocate(a)
    bm.commit(a, 8)
    b = _seq(list(range(8)))  # identical, block aligned: the last block is recomputed for its logits
    bm.allocate(b)
    assert b.num_cached_tokens == 4


def test_freed_blocks_stay_cached_until_reused():
    bm = BlockManager(4, 4)
    a = _seq(list(range(9)))
    bm.allocate(a)
    bm.commit(a, 9)
    kept = a.block_table[:2]
    bm.free_seq(a)
    b = _seq(list(range(9)))
    assert bm.can_allocate(b)
    bm.allocate(b)
    assert b.block_table[:2] == kept and b.num_cached_tokens == 8
    bm.free_seq(b)
    c = _seq([50 + i for i in range(16)])  # takes every block: the old hashes are evicted
    bm.allocate(c)
    d = _seq(list(range(9)))
    bm.free_seq(c)
    bm.allocate(d)
    assert d.num_cached_tokens == 0


def test_fork_shares_full_blocks_and_copies_partial():
    bm = BlockManager(32, 4)
    parent = _seq(list(range(10)), n=4)
    bm.allocate(parent)
    parent.num_computed_tokens = 10
    before = bm.num_allocations
    children = [_seq(list(range(10))) for _ in range(3)]
    bm.fork(parent, children)
    assert bm.num_allocations - before == 3  # one copy of the partial last block each
    copies = bm.take_copies()
    assert [src for src, _ in copies] == [parent.block_table[2]] * 3
    for child, (_, dst) in zip(children, copies):
        assert child.block_table[:2] == parent.block_table[:2] and child.block_table[2] == dst
    assert bm.ref_count[parent.block_table[0]] == 4 and bm.ref_count[parent.block_table[2]] == 1
    for s in children + [parent]:
        bm.free_seq(s)
    assert bm.num_free_blocks == 32


def test_fork_of_block_aligned_sequence_allocates_nothing():
    bm = BlockManager(32, 4)
    parent = _seq(list(range(8)), n=3)
    bm.allocate(parent)
    parent.num_computed_tokens = 8
    before = bm.num_allocations
    bm.fork(parent, [_seq(list(range(8))) for _ in range(2)])
    assert bm.num_allocations == before and not bm.take_copies()


def test_scheduler_chunks_prefill_under_token_budget():
    bm = BlockManager(64, 4)
    sched = Scheduler(bm, max_num_seqs=8, max_num_batched_tokens=7)
    sched.add(_seq(list(range(10))))
    sched.add(_seq(list(range(100, 103))))
    batch = sched.schedule()
    assert batch.is_prefill and batch.num_new_tokens == [7]
    batch.seqs[0].num_computed_tokens += 7
    batch = sched.schedule()
    assert batch.num_new_tokens == [3, 3] and sum(batch.num_new_tokens) <= 7


def test_scheduler_preempts_instead_of_failing():
    bm = BlockManager(4, 2)
    sched = Scheduler(bm, max_num_seqs=8, max_num_batched_tokens=64)
    a, b = _seq([1, 2, 3]), _seq([4, 5, 6])
    sched.add(a)
    sched.add(b)
    batch = sched.schedule()
    assert batch.is_prefill and batch.seqs == [a, b] and bm.num_free_blocks == 0
    for s, tok in ((a, 7), (b, 8)):
        s.num_computed_tokens, s.prefilled = 3, True
        s.token_ids += [tok, tok]  # two tokens in: the next decode needs a third block
        s.num_computed_tokens = 4
    batch = sched.schedule()
    assert not batch.is_prefill and batch.seqs == [a] and len(a.block_table) == 3
    assert sched.num_preemptions == 1 and list(sched.waiting) == [b]
    assert b.block_table == [] and b.num_computed_tokens == 0 and not b.prefilled
    sched.finish(a)
    batch = sched.schedule()  # b comes back; its first (full, freed) block is still cached
    assert batch.is_prefill and batch.seqs == [b] and b.num_cached_tokens == 2 and batch.num_new_tokens == [3]
