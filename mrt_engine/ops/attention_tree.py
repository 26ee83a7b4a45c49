"""Prefix-tree attention: the attention of a packed prefix tree, forward and backward (autograd).

A packed tree holds every token of a set of sequences once: each *node* is a run of tokens
shared by the sequences that pass through it, packed back to back in an order where a parent
comes before its children and the children of one node are adjacent (breadth-first per tree).
``node_indptr [num_nodes + 1]``: node n owns packed rows ``node_indptr[n]:node_indptr[n+1]``;
``node_parent [num_nodes]``: its parent node, -1 for a root. A token sees the tokens of its
node's ancestors (all of them) and those of its own node up to itself::

    one GRPO group packed: prompt P (root), completions b1, b2 (children of P)
    rows      P P P b1 b1 b2 b2 b2
    P  P  P   x . . .  .  .  .  .
              x x . .  .  .  .  .
              x x x .  .  .  .  .
    b1        x x x x  .  .  .  .
              x x x x  x  .  .  .
    b2        x x x .  .  x  .  .
              x x x .  .  x  x  .
              x x x .  .  x  x  x

Two paths with one contract (``q [Hq, L, D]``, ``k, v [Hkv, L, D]`` head-major, the layout of a
transformers attention call without its batch axis; query head h reads KV head
``h // (Hq // Hkv)``; returns ``[Hq, L, D]`` in q's dtype):

- :func:`tree_attention_reference`: the dense ``[L, L]`` mask above and an fp32 softmax (the
  test oracle; O(L^2) memory).
- :func:`tree_attention_sdpa`: fused ``scaled_dot_product_attention`` calls planned once per
  packed batch by :func:`plan_tree_attention` and run per layer: a root attends itself causally
  (``is_causal``, no mask); the children of a node are taken in calls of consecutive siblings
  (at most ``max_rows`` query rows, a longer child alone), each over the keys of the node's
  path from its root (every query sees them all) followed by the call's own rows (a
  block-diagonal causal mask). The path is attended once per call rather than once per
  sequence below it, and no call attends another call's rows. Autograd-correct: slices, cat
  and SDPA (whose CPU flash kernel has a backward with a boolean mask).

CUDA runs the SDPA path too (no Triton kernel yet): SDPA takes a boolean mask there with a
backward (memory-efficient kernel).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._dispatch import check

#: Query rows per call when siblings are merged. A call attends its whole key list, so merged
#: siblings also compute each other's (masked) rows: merge only short ones (MRT's forced answers),
#: leave long completions each in a call of its own.
MAX_ROWS_PER_CALL = 64


@dataclass(frozen=True)
class TreeCall:
    """One fused call: queries ``q_start:q_end``; keys the rows of nodes ``key_nodes``
    concatenated (the node's path from its root, then the call's own nodes); ``mask``
    [rows, keys] bool (True = attend), or None for a root attending itself causally."""

    q_start: int
    q_end: int
    key_nodes: tuple[int, ...]
    mask: torch.Tensor | None


@dataclass(frozen=True)
class TreeAttentionPlan:
    """A packed tree (``node_indptr``, ``node_parent``) and the fused calls of
    :func:`tree_attention_sdpa` over it, in query order (they tile ``[0, num_tokens)``)."""

    node_indptr: tuple[int, ...]
    node_parent: tuple[int, ...]
    calls: tuple[TreeCall, ...]

    @property
    def num_tokens(self) -> int:
        return self.node_indptr[-1]

    def to(self, device) -> "TreeAttentionPlan":
        """On ``device`` (itself when already there; plan on the device to keep the band masks
        views of one tensor)."""
        if all(c.mask is None or c.mask.device == torch.device(device) for c in self.calls):
            return self
        calls = tuple(TreeCall(c.q_start, c.q_end, c.key_nodes, None if c.mask is None else c.mask.to(device))
                      for c in self.calls)
        return TreeAttentionPlan(self.node_indptr, self.node_parent, calls)


def check_tree(node_indptr: list[int], node_parent: list[int]) -> None:
    """A valid packed tree: nodes tile the rows, a parent precedes its children, siblings adjacent."""
    n = len(node_parent)
    check(n >= 1 and len(node_indptr) == n + 1 and node_indptr[0] == 0,
          f"node_indptr must be [num_nodes + 1 = {n + 1}] starting at 0; got {len(node_indptr)} entries")
    check(all(a < b for a, b in zip(node_indptr[:-1], node_indptr[1:])), "every node needs at least one token")
    last_child: dict[int, int] = {}
    for i, p in enumerate(node_parent):
        check(-1 <= p < i, f"node_parent[{i}]={p}: a parent must come before its child (or be -1 for a root)")
        if p >= 0:
            check(last_child.get(p, i - 1) == i - 1,
                  f"node {i}: the children of node {p} must be adjacent in the packed order")
            last_child[p] = i


def tree_mask(node_indptr: list[int], node_parent: list[int], device=None) -> torch.Tensor:
    """Dense ``[L, L]`` bool mask of a packed tree (True = attend): ancestors' tokens, and the
    own node's tokens up to the query."""
    n = len(node_parent)
    lens = torch.tensor([b - a for a, b in zip(node_indptr[:-1], node_indptr[1:])], device=device)
    node_of = torch.repeat_interleave(torch.arange(n, device=device), lens)  # [L]
    sees = torch.eye(n, dtype=torch.bool, device=device)  # sees[a, b]: node a's tokens see node b's
    for i, p in enumerate(node_parent):
        if p >= 0:
            sees[i] |= sees[p]
    rows = torch.arange(int(lens.sum()), device=device)
    same = node_of[:, None] == node_of[None, :]
    return sees[node_of][:, node_of] & (~same | (rows[None, :] <= rows[:, None]))


def tree_attention_reference(q, k, v, *, plan: TreeAttentionPlan, scale: float):
    """Prefix-tree attention by the dense mask of ``plan``'s tree, fp32 softmax -> ``[Hq, L, D]``
    (dtype of q). Natural-log domain; no LSE returned."""
    _check_qkv(q, k, v, plan)
    group = q.shape[0] // k.shape[0]
    kf = k.float().repeat_interleave(group, dim=0)
    vf = v.float().repeat_interleave(group, dim=0)
    s = torch.einsum("hqd,hkd->hqk", q.float(), kf) * scale
    s = s.masked_fill(~tree_mask(list(plan.node_indptr), list(plan.node_parent), q.device), float("-inf"))
    return torch.einsum("hqk,hkd->hqd", torch.softmax(s, dim=-1), vf).to(q.dtype)


def plan_tree_attention(node_indptr: list[int], node_parent: list[int], *, max_rows: int = MAX_ROWS_PER_CALL,
                        device=None) -> TreeAttentionPlan:
    """The fused calls of :func:`tree_attention_sdpa` (host side, once per packed batch)."""
    check_tree(node_indptr, node_parent)
    check(max_rows >= 1, f"max_rows={max_rows} must be at least 1")
    children: dict[int, list[int]] = {}
    path: list[tuple[int, ...]] = []  # the nodes from the root down to node i
    calls = []
    for i, p in enumerate(node_parent):
        path.append((i,) if p < 0 else path[p] + (i,))
        if p < 0:
            calls.append(TreeCall(node_indptr[i], node_indptr[i + 1], (i,), None))
        else:
            children.setdefault(p, []).append(i)
    runs = []  # (path_len, node lengths, key nodes) of every call below a root
    for p, kids in children.items():
        path_len = sum(node_indptr[n + 1] - node_indptr[n] for n in path[p])
        for run in _sibling_runs(kids, node_indptr, max_rows):
            runs.append((path_len, [node_indptr[c + 1] - node_indptr[c] for c in run], path[p] + tuple(run)))
    # A call of one child attends [path | itself causally]: its mask is a view of one shared
    # band (row i sees key j when j - i <= path_len), so a plan holds one mask, not one per branch.
    single = [(pl, lens[0]) for pl, lens, _ in runs if len(lens) == 1]
    band = _band(max(pl for pl, _ in single), max(n for _, n in single), device) if single else None
    for path_len, lens, nodes in runs:
        q0 = node_indptr[nodes[len(nodes) - len(lens)]]
        q1 = q0 + sum(lens)
        if len(lens) == 1:
            width = band.shape[1] - band.shape[0]
            mask = band[:lens[0], width - path_len:width + lens[0]]
        else:
            mask = _call_mask(path_len, lens, device)
        calls.append(TreeCall(q0, q1, nodes, mask))
    calls.sort(key=lambda c: c.q_start)
    return TreeAttentionPlan(tuple(node_indptr), tuple(node_parent), tuple(calls))


def _sibling_runs(kids: list[int], node_indptr: list[int], max_rows: int) -> list[list[int]]:
    runs, rows = [], 0
    for c in kids:
        size = node_indptr[c + 1] - node_indptr[c]
        if runs and rows + size <= max_rows:
            runs[-1].append(c)
            rows += size
        else:
            runs.append([c])
            rows = size
    return runs


def _band(max_path: int, max_rows: int, device) -> torch.Tensor:
    """[max_rows, max_path + max_rows] bool: True where ``col - row <= max_path``."""
    rows = torch.arange(max_rows, device=device)[:, None]
    cols = torch.arange(max_path + max_rows, device=device)[None, :]
    return cols - rows <= max_path


def _call_mask(path_len: int, lens: list[int], device) -> torch.Tensor:
    """[rows, path_len + rows] bool: the whole path, then causal within each child's own rows."""
    rows = sum(lens)
    seg = torch.repeat_interleave(torch.arange(len(lens), device=device), torch.tensor(lens, device=device))
    pos = torch.arange(rows, device=device)
    own = (seg[:, None] == seg[None, :]) & (pos[None, :] <= pos[:, None])
    return torch.cat([torch.ones(rows, path_len, dtype=torch.bool, device=device), own], dim=1)


def tree_attention_sdpa(q, k, v, *, plan: TreeAttentionPlan, scale: float):
    """Prefix-tree attention on fused SDPA calls -> ``[Hq, L, D]`` (dtype of q); see the module doc."""
    _check_qkv(q, k, v, plan)
    group = q.shape[0] // k.shape[0]
    # Split once into nodes (and q into calls): the backward of one split is one cat, where a
    # slice per call would write a zero-filled gradient of the whole sequence per call.
    node_lens = [b - a for a, b in zip(plan.node_indptr[:-1], plan.node_indptr[1:])]
    k_nodes, v_nodes = k.split(node_lens, dim=1), v.split(node_lens, dim=1)
    q_calls = q.split([c.q_end - c.q_start for c in plan.calls], dim=1)
    outs = []
    for c, qc in zip(plan.calls, q_calls):
        qc = qc[None]  # [1, Hq, rows, D]
        kc = _gather(k_nodes, c.key_nodes, group)  # [1, Hq, keys, D]
        vc = _gather(v_nodes, c.key_nodes, group)
        if c.mask is None:
            o = F.scaled_dot_product_attention(qc, kc, vc, is_causal=True, scale=scale)
        else:
            o = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=c.mask, scale=scale)
        outs.append(o[0])
    return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]


def _gather(pieces: tuple[torch.Tensor, ...], nodes, group: int) -> torch.Tensor:
    """The node ``pieces`` [H, n_i, D] of ``nodes``, concatenated, heads repeated ``group`` times
    -> [1, H*group, n, D] (SDPA's fused CPU kernel is slower with ``enable_gqa`` than with the repeat)."""
    parts = [pieces[i] for i in nodes]
    out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    if group > 1:
        out = out.repeat_interleave(group, dim=0)
    return out[None]


def _check_qkv(q, k, v, plan: TreeAttentionPlan) -> None:
    check(q.dim() == 3 and k.dim() == 3 and v.dim() == 3,
          f"q, k, v must be [heads, L, D]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    check(k.shape == v.shape and k.shape[1:] == q.shape[1:] and q.shape[0] % k.shape[0] == 0,
          f"k {tuple(k.shape)} and v {tuple(v.shape)} must be [Hkv, L, D] with Hkv dividing q's heads "
          f"{tuple(q.shape)}")
    check(q.shape[1] == plan.num_tokens, f"q has {q.shape[1]} tokens but the plan's tree has {plan.num_tokens}")


def tree_attention(q, k, v, *, plan: TreeAttentionPlan, scale: float, backend: str | None = None):
    """Prefix-tree attention -> ``[Hq, L, D]``: the fused SDPA calls on every device (no Triton
    kernel yet), ``backend="torch"`` the dense fp32 reference."""
    if backend == "triton":
        raise NotImplementedError("tree_attention has no Triton kernel yet: use backend=None (fused SDPA) or 'torch'")
    if backend == "torch":
        return tree_attention_reference(q, k, v, plan=plan, scale=scale)
    check(backend in (None, "auto"), f"backend={backend!r}; expected 'auto', 'torch' or None")
    return tree_attention_sdpa(q, k, v, plan=plan, scale=scale)
