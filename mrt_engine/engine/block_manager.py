"""Fixed-size KV blocks with reference counts and a prefix cache (chained hashes).

A block holds the KV of ``block_size`` consecutive tokens of a sequence. Full blocks are
keyed by a hash chained over every token before them; a lookup hit is only taken when the
block's stored token ids equal the ones asked for (a hash collision is a miss). Freed blocks
keep their hash and content until the block is handed out again, so a later request (or a
preempted sequence being recomputed) can find them: the free list is least-recently-freed
first.

A hash is registered only for a block whose KV is computed in the current step or earlier
(``commit``): the forward writes every new token's KV of a layer before any attention of that
layer, so a sequence admitted in the same step may read it.
"""
from __future__ import annotations

from .sequence import Sequence


def chain_hash(prev: int, token_ids: tuple[int, ...]) -> int:
    return hash((prev, token_ids))


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, *, enable_prefix_caching: bool = True):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.ref_count = [0] * num_blocks
        self.block_hash: list[int | None] = [None] * num_blocks
        self.block_tokens: list[tuple[int, ...] | None] = [None] * num_blocks
        self.hash_to_block: dict[int, int] = {}
        self.free: dict[int, None] = dict.fromkeys(range(num_blocks))  # ordered: oldest free first
        self.num_allocations = 0  # blocks handed out fresh (cache hits and shared forks excluded)
        self.pending_copies: list[tuple[int, int]] = []  # (src, dst) block copies for the runner
        # Blocks handed out for the first time: the runner zeroes them, since the cache is
        # allocated uninitialised and masked-out slots must not hold NaN/inf garbage.
        self.used = [False] * num_blocks
        self.pending_fresh: list[int] = []

    # -- bookkeeping ----------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        return len(self.free)

    def _take_free(self) -> int:
        block = next(iter(self.free))
        del self.free[block]
        old = self.block_hash[block]
        if old is not None and self.hash_to_block.get(old) == block:
            del self.hash_to_block[old]  # evicted from the prefix cache
        self.block_hash[block] = None
        self.block_tokens[block] = None
        self.ref_count[block] = 1
        self.num_allocations += 1
        if not self.used[block]:
            self.used[block] = True
            self.pending_fresh.append(block)
        return block

    def reset_prefix_cache(self) -> None:
        """Forget every cached block hash (the KV they index was computed with old weights).

        Only the lookup tables change; blocks held by live sequences would keep stale KV, so
        this refuses to run while any block is in use.
        """
        if any(self.ref_count):
            raise RuntimeError("reset_prefix_cache() called while sequences still hold KV blocks; "
                               "call it between generate() calls")
        self.hash_to_block.clear()
        self.block_hash = [None] * self.num_blocks
        self.block_tokens = [None] * self.num_blocks

    def _ref(self, block: int) -> None:
        if self.ref_count[block] == 0:
            del self.free[block]
        self.ref_count[block] += 1

    def _unref(self, block: int) -> None:
        self.ref_count[block] -= 1
        assert self.ref_count[block] >= 0, f"block {block} freed twice"
        if self.ref_count[block] == 0:
            self.free[block] = None

    def _lookup(self, h: int, tokens: tuple[int, ...]) -> int | None:
        block = self.hash_to_block.get(h)
        if block is None or self.block_tokens[block] != tokens:
            return None
        return block

    def _full_block_hashes(self, token_ids: list[int], num_full: int):
        bs = self.block_size
        h = 0
        for i in range(num_full):
            tokens = tuple(token_ids[i * bs:(i + 1) * bs])
            h = chain_hash(h, tokens)
            yield h, tokens

    # -- admission ------------------------------------------------------------------------
    def _num_cache_hits(self, seq: Sequence) -> list[int]:
        """Blocks of the prefix cache that hold ``seq``'s leading full blocks (the newest
        token is always left to compute: its logits are needed)."""
        if not self.enable_prefix_caching:
            return []
        hits = []
        for h, tokens in self._full_block_hashes(seq.token_ids, (len(seq) - 1) // self.block_size):
            block = self._lookup(h, tokens)
            if block is None:
                break
            hits.append(block)
        return hits

    def can_allocate(self, seq: Sequence, reserve: int = 0) -> bool:
        hits = self._num_cache_hits(seq)
        num_needed = (len(seq) + self.block_size - 1) // self.block_size
        num_hits_free = sum(1 for b in hits if self.ref_count[b] == 0)  # reviving them uses free slots
        return num_needed - len(hits) + num_hits_free + reserve <= self.num_free_blocks

    def allocate(self, seq: Sequence) -> None:
        """Blocks for all of ``seq``'s current tokens; leading ones from the prefix cache."""
        assert not seq.block_table, f"{seq} already has blocks"
        hits = self._num_cache_hits(seq)
        for block in hits:
            self._ref(block)
        seq.block_table = list(hits)
        num_needed = (len(seq) + self.block_size - 1) // self.block_size
        for _ in range(num_needed - len(hits)):
            seq.block_table.append(self._take_free())
        seq.num_computed_tokens = seq.num_cached_tokens = len(hits) * self.block_size

    def commit(self, seq: Sequence, num_tokens: int) -> None:
        """Register the prefix-cache hashes of ``seq``'s full blocks within its first
        ``num_tokens`` tokens (their KV is computed by the end of this step)."""
        if not self.enable_prefix_caching:
            return
        bs = self.block_size
        h = 0
        for i, (h, tokens) in enumerate(self._full_block_hashes(seq.token_ids, num_tokens // bs)):
            block = seq.block_table[i]
            if self.block_hash[block] is not None:
                continue  # already registered (a hit, or committed in an earlier step)
            if h in self.hash_to_block and self.hash_to_block[h] != block:
                continue  # an equal block is already cached; keep that one
            self.block_hash[block] = h
            self.block_tokens[block] = tokens
            self.hash_to_block[h] = block

    def free_seq(self, seq: Sequence) -> None:
        for block in reversed(seq.block_table):  # the tail first: it is the least reusable
            self._unref(block)
        seq.block_table = []
        seq.num_computed_tokens = seq.num_cached_tokens = 0

    # -- decode ---------------------------------------------------------------------------
    def needs_block(self, seq: Sequence) -> bool:
        """Does writing the KV of the newest token need a fresh block?"""
        return len(seq.block_table) * self.block_size < len(seq)

    def append_block(self, seq: Sequence) -> None:
        seq.block_table.append(self._take_free())

    # -- branching ------------------------------------------------------------------------
    def num_blocks_to_fork(self, seq: Sequence, n: int) -> int:
        return (n - 1) if len(seq) % self.block_size else 0

    def fork(self, seq: Sequence, children: list[Sequence]) -> None:
        """Give each child ``seq``'s KV: every full block shared (ref count + 1), the partly
        filled last one copied into a fresh block (the copy is queued in
        ``pending_copies`` for the runner to do before the next forward)."""
        bs = self.block_size
        num_full = seq.num_computed_tokens // bs
        partial = seq.num_computed_tokens % bs != 0
        for child in children:
            shared = seq.block_table[:num_full]
            for block in shared:
                self._ref(block)
            child.block_table = list(shared)
            if partial:
                dst = self._take_free()
                self.pending_copies.append((seq.block_table[num_full], dst))
                child.block_table.append(dst)
            child.num_computed_tokens = seq.num_computed_tokens
            child.num_cached_tokens = seq.num_cached_tokens

    def take_copies(self) -> list[tuple[int, int]]:
        copies, self.pending_copies = self.pending_copies, []
        return copies

    def take_fresh(self) -> list[int]:
        fresh, self.pending_fresh = self.pending_fresh, []
        return fresh
