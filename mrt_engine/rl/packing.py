"""Prefix-tree packing of a rollout batch for the policy update: every shared prefix once.

The sequences of a step share prefixes: the prompt of a GRPO group, the prompt and prefix
rollout of an MRT-scalar group (and the termination text of its forced continuations), the
system prompt of every row. :func:`pack_tree` finds them from the token ids alone (so it works
for every algorithm) and packs the rows as one sequence per tree, breadth first::

    [prefix | branch_1 | ... | branch_m]      positions 0..P-1 | P..P+b1-1 | ... | P..P+bm-1

Each *node* is a run of tokens shared by the rows that pass through it; a branch restarts its
position ids at its parent's end and attends its ancestors and itself causally
(:mod:`mrt_engine.ops.attention_tree`). Nested prefixes are nodes under nodes. A run shorter
than ``min_shared`` tokens is not split off (each row below keeps its own copy): one more
attention call per layer costs more than it saves there.

:func:`tree_micro_batches` cuts a batch into contiguous row ranges whose packed trees hold at
most a token budget, cutting between the rollout's groups (``Batch.groups``) where it can.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mrt_engine.ops.attention_tree import MAX_ROWS_PER_CALL, TreeAttentionPlan, plan_tree_attention
from mrt_engine.rl.rollout import Batch

#: Shortest run of tokens split off as a shared node. A node costs one fused attention call per
#: layer (forward and backward); sharing it saves (rows - 1) x its length of whole-model token
#: work, which on SmolLM2-135M is already worth that call at a few tokens.
MIN_SHARED_TOKENS = 8


@dataclass
class Node:
    rows: list[int]                 # the batch rows (local) that pass through this node
    start: int                      # position of its first token in each of those rows
    end: int
    children: list["Node"] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return self.end - self.start


def build_forest(seqs: list[np.ndarray], *, min_shared: int = MIN_SHARED_TOKENS) -> list[Node]:
    """The prefix forest of ``seqs`` (token id arrays): roots in first-seen order.

    A node is the longest run shared by all its rows beyond its parent, kept when it has at least
    ``min_shared`` tokens or is a single row's own tail; a row ends at the end of a node.
    """
    if min_shared < 1:
        raise ValueError(f"min_shared={min_shared}: need >= 1")
    return _grow(seqs, list(range(len(seqs))), 0, min_shared)


def _grow(seqs, rows: list[int], start: int, min_shared: int) -> list[Node]:
    if len(rows) == 1:
        return [Node(rows, start, len(seqs[rows[0]]))]
    end = start + _common_length(seqs, rows, start)
    ending = [r for r in rows if len(seqs[r]) == end]
    going = [r for r in rows if len(seqs[r]) > end]
    if end - start >= min_shared:
        node = Node(rows, start, end)
        for part in _split(seqs, going, end):
            node.children += _grow(seqs, part, end, min_shared)
        return [node]
    # too short to share: each row ending here is its own node, the rest regroup from `start`
    # (every part is smaller than `rows`, so this ends)
    out = [Node([r], start, end) for r in ending if end > start]
    for part in _split(seqs, going, end):
        out += _grow(seqs, part, start, min_shared)
    return out


def _common_length(seqs, rows: list[int], start: int) -> int:
    n = min(len(seqs[r]) for r in rows) - start
    first = seqs[rows[0]][start:start + n]
    same = np.ones(n, dtype=bool)
    for r in rows[1:]:
        same &= seqs[r][start:start + n] == first
    diff = np.flatnonzero(~same)
    return int(diff[0]) if diff.size else n


def _split(seqs, rows: list[int], at: int) -> list[list[int]]:
    parts: dict[int, list[int]] = {}
    for r in rows:
        parts.setdefault(int(seqs[r][at]), []).append(r)
    return list(parts.values())


def packed_tokens(forest: list[Node]) -> int:
    """Tokens of the packed form of ``forest``."""
    total, stack = 0, list(forest)
    while stack:
        node = stack.pop()
        total += node.num_tokens
        stack.extend(node.children)
    return total


@dataclass
class TreeBatch:
    """Rows ``row_start:row_end`` of a :class:`Batch` packed as prefix trees (one sequence).

    The log-probs come back in the padded layout ``[num_rows, width]`` of ``Batch.rows`` (the
    loss and the padded path read the same tensors): ``logp[out_rows[i], out_cols[i]]`` is the
    log-prob of ``targets[i]`` given the hidden state at packed row ``pred_index[i]``.
    """

    input_ids: torch.Tensor         # [L] every node's tokens, breadth first per tree
    position_ids: torch.Tensor      # [L] position of each token in its rows
    node_indptr: list[int]          # node n owns packed rows node_indptr[n]:node_indptr[n + 1]
    node_parent: list[int]          # -1 for a root
    attention: TreeAttentionPlan    # the fused calls (ops.attention_tree), planned once
    pred_index: torch.Tensor        # [M] packed row whose hidden state predicts target i
    targets: torch.Tensor           # [M] the trained tokens
    out_rows: torch.Tensor          # [M] where each log-prob goes in the [num_rows, width] output
    out_cols: torch.Tensor          # [M]
    row_start: int
    row_end: int
    width: int
    padded_tokens: int              # tokens of the same rows padded: num_rows x width

    @property
    def num_rows(self) -> int:
        return self.row_end - self.row_start

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device) -> "TreeBatch":
        t = lambda x: x.to(device)  # noqa: E731
        return TreeBatch(t(self.input_ids), t(self.position_ids), self.node_indptr, self.node_parent,
                         self.attention.to(device), t(self.pred_index), t(self.targets), t(self.out_rows),
                         t(self.out_cols), self.row_start, self.row_end, self.width, self.padded_tokens)


def _row_seqs(batch: Batch, start: int, end: int) -> list[np.ndarray]:
    lens = batch.attention_mask[start:end].sum(dim=1).tolist()
    ids = batch.input_ids[start:end].numpy()
    return [ids[i, :n] for i, n in enumerate(lens)]


def pack_tree(batch: Batch, start: int = 0, end: int | None = None, *, min_shared: int = MIN_SHARED_TOKENS,
              max_rows: int = MAX_ROWS_PER_CALL, device=None) -> TreeBatch:
    """Rows ``start:end`` of ``batch`` (CPU tensors) as a :class:`TreeBatch` on ``device`` (CPU
    when None)."""
    end = batch.num_sequences if end is None else end
    if not 0 <= start < end <= batch.num_sequences:
        raise ValueError(f"rows {start}:{end} of a batch of {batch.num_sequences}")
    seqs = _row_seqs(batch, start, end)
    forest = build_forest(seqs, min_shared=min_shared)
    # breadth first per tree: a parent before its children, the children of a node adjacent
    order: list[Node] = []
    parent: list[int] = []
    for root in forest:
        queue = [(root, -1)]
        while queue:
            node, p = queue.pop(0)
            idx = len(order)
            order.append(node)
            parent.append(p)
            queue.extend((c, idx) for c in node.children)
    indptr = [0]
    for node in order:
        indptr.append(indptr[-1] + node.num_tokens)
    ids = np.concatenate([seqs[n.rows[0]][n.start:n.end] for n in order])
    pos = np.concatenate([np.arange(n.start, n.end) for n in order])
    # packed row of every position of every row: its nodes' ranges, root to leaf
    row_nodes: list[list[int]] = [[] for _ in seqs]
    for i, node in enumerate(order):
        for r in node.rows:
            row_nodes[r].append(i)
    loss = batch.loss_mask[start:end]
    pred, tgt, out_r, out_c = [], [], [], []
    for r, nodes in enumerate(row_nodes):
        packed_of = np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in nodes])  # [len_r]
        cols = np.flatnonzero(loss[r, :len(seqs[r])].numpy())
        if cols.size and cols[0] == 0:
            raise ValueError("loss_mask[:, 0] must be 0: the first token has no context to predict it from")
        pred.append(packed_of[cols - 1])
        tgt.append(seqs[r][cols])
        out_r.append(np.full(cols.size, r))
        out_c.append(cols)
    width = max(len(s) for s in seqs)
    as_long = lambda parts: torch.from_numpy(np.concatenate(parts).astype(np.int64)).to(device)  # noqa: E731
    return TreeBatch(as_long([ids]), as_long([pos]), indptr, parent,
                     plan_tree_attention(indptr, parent, max_rows=max_rows, device=device), as_long(pred),
                     as_long(tgt), as_long(out_r), as_long(out_c), start, end, width, len(seqs) * width)


def tree_micro_batches(batch: Batch, *, max_tokens: int, min_shared: int = MIN_SHARED_TOKENS) -> list[tuple[int, int]]:
    """Contiguous row ranges whose packed trees hold at most ``max_tokens`` tokens each.

    Whole groups (runs of equal ``batch.groups``; single rows when the batch has none) are
    added while they fit; a group that does not fit in a micro-batch of its own is split by
    rows, and a row longer than the budget goes alone.
    """
    n = batch.num_sequences
    seqs = _row_seqs(batch, 0, n)
    groups = batch.groups if batch.groups is not None else list(range(n))
    units, a = [], 0
    for i in range(1, n + 1):
        if i == n or groups[i] != groups[i - 1]:
            units.append((a, i))
            a = i
    size = lambda a, b: packed_tokens(build_forest(seqs[a:b], min_shared=min_shared))  # noqa: E731
    ranges: list[tuple[int, int]] = []
    cur = None
    for u0, u1 in units:
        if cur is not None and size(cur[0], u1) <= max_tokens:
            cur = (cur[0], u1)
            continue
        if cur is not None:
            ranges.append(cur)
        cur = (u0, u1)
        if size(u0, u1) > max_tokens:  # the group alone is too large: by rows
            r0 = u0
            for r in range(u0 + 1, u1):
                if size(r0, r + 1) > max_tokens:
                    ranges.append((r0, r))
                    r0 = r
            cur = (r0, u1)
    if cur is not None:
        ranges.append(cur)
    return ranges


def split_micro_batches(ranges: list[tuple[int, int]], count: int) -> list[tuple[int, int]]:
    """``ranges`` split (the one with most rows, in halves) until there are ``count`` of them:
    under DDP / FSDP2 every rank must run the same number of forwards and backwards."""
    ranges = list(ranges)
    if count > sum(b - a for a, b in ranges):
        raise ValueError(f"cannot split {len(ranges)} micro-batches of {sum(b - a for a, b in ranges)} rows into {count}")
    while len(ranges) < count:
        i = max(range(len(ranges)), key=lambda j: ranges[j][1] - ranges[j][0])
        a, b = ranges[i]
        mid = (a + b) // 2
        ranges[i:i + 1] = [(a, mid), (mid, b)]
    return ranges
