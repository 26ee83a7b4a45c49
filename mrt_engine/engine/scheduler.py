"""Continuous batching: which sequences run in the next step, and how many tokens each.

A step is either a prefill step (prompt chunks, under the token budget) or a decode step
(one token for every running sequence). Prefill goes first whenever a waiting sequence fits,
so new and preempted sequences join the decode batch as soon as there is room. When a
decode step runs out of KV blocks the newest running sequence is preempted: its blocks are
freed and it goes back to the front of the queue to be recomputed later (its full blocks
often still sit in the prefix cache). Nothing is ever dropped.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .block_manager import BlockManager
from .sequence import Sequence, Status


@dataclass
class ScheduledBatch:
    seqs: list[Sequence]
    is_prefill: bool
    num_new_tokens: list[int]  # per sequence: tokens computed this step


class Scheduler:
    def __init__(self, block_manager: BlockManager, *, max_num_seqs: int, max_num_batched_tokens: int):
        self.block_manager = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: deque[Sequence] = deque()
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _num_slots(self, seq: Sequence) -> int:
        return seq.num_samples  # a parent still to fork holds a decode slot for each sample

    def schedule(self) -> ScheduledBatch:
        batch = self._schedule_prefill()
        if batch is not None:
            return batch
        return self._schedule_decode()

    # -- prefill --------------------------------------------------------------------------
    def _schedule_prefill(self) -> ScheduledBatch | None:
        bm = self.block_manager
        budget = self.max_num_batched_tokens
        seqs, counts = [], []
        # Sequences mid-prefill (chunked) continue first.
        for seq in self.running:
            if budget == 0:
                break
            if not seq.prefilled:
                n = min(len(seq) - seq.num_computed_tokens, budget)
                bm.commit(seq, seq.num_computed_tokens + n)
                seqs.append(seq)
                counts.append(n)
                budget -= n
        num_slots = sum(self._num_slots(s) for s in self.running)
        # Leave a few blocks for the running sequences to grow into, so a newcomer does not
        # get preempted (and recomputed) by the very next decode step.
        reserve = max(1, bm.num_blocks // 100) if self.running else 0
        while self.waiting and budget > 0:
            seq = self.waiting[0]
            if num_slots + self._num_slots(seq) > self.max_num_seqs and num_slots > 0:
                break
            if not bm.can_allocate(seq, reserve):
                break
            bm.allocate(seq)
            self.waiting.popleft()
            seq.status = Status.RUNNING
            self.running.append(seq)
            num_slots += self._num_slots(seq)
            n = min(len(seq) - seq.num_computed_tokens, budget)
            # Register its blocks now: a sequence admitted later in this same step may hit them.
            bm.commit(seq, seq.num_computed_tokens + n)
            seqs.append(seq)
            counts.append(n)
            budget -= n
        if not seqs:
            if self.waiting and not self.running:
                seq = self.waiting[0]
                raise RuntimeError(
                    f"{seq} cannot be admitted: it needs more KV blocks than the cache holds "
                    f"({bm.num_blocks} blocks of {bm.block_size} tokens); raise num_blocks or kv_cache_bytes")
            return None
        return ScheduledBatch(seqs, True, counts)

    # -- decode ---------------------------------------------------------------------------
    def _schedule_decode(self) -> ScheduledBatch:
        bm = self.block_manager
        scheduled: list[Sequence] = []
        while self.running:
            seq = self.running.popleft()
            while bm.needs_block(seq) and bm.num_free_blocks == 0:
                if self.running:
                    self.preempt(self.running.pop())
                else:
                    self.preempt(seq)
                    break
            else:
                if bm.needs_block(seq):
                    bm.append_block(seq)
                scheduled.append(seq)
        assert scheduled, "no sequence can decode: the KV cache is too small for a single sequence"
        self.running.extend(scheduled)
        for seq in scheduled:
            bm.commit(seq, len(seq))
        return ScheduledBatch(scheduled, False, [1] * len(scheduled))

    def preempt(self, seq: Sequence) -> None:
        """Free ``seq``'s blocks and queue it (first) to be recomputed from its tokens."""
        self.block_manager.free_seq(seq)
        seq.status = Status.WAITING
        seq.prefilled = False
        seq.group_id = seq.seq_id
        self.waiting.appendleft(seq)
        self.num_preemptions += 1

    def add_running(self, seq: Sequence) -> None:
        """Admit an already-prefilled sequence (a fork child sharing its parent's blocks)."""
        self.running.append(seq)

    def finish(self, seq: Sequence) -> None:
        """Retire ``seq`` from whichever queue holds it, freeing its blocks if it has any."""
        if seq.block_table or seq in self.running:
            self.block_manager.free_seq(seq)
            self.running.remove(seq)
        else:
            self.waiting.remove(seq)
        seq.status = Status.FINISHED

    def abort_all(self) -> None:
        """Drop every queued and running sequence, freeing their blocks (after an error)."""
        for seq in self.running:
            self.block_manager.free_seq(seq)
        self.running.clear()
        self.waiting.clear()
