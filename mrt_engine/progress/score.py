"""Score mode: log-probability of the reference answer at every cut.

``log_j[cut] = logsumexp over accepted forms of sum_t log p(answer_t | prompt, prefix, suffix, answer_<t)``.

Fast path (``score_fast``): per batch of traces, one causal prefill of ``prompt + trace``
captures every layer's K/V (an item equal to or a prefix of another one is prefilled once);
then one packed pass over all cut suffixes ``[suffix + answer]``, each attached at its cut
by ``prefix_suffix_attention`` with positions continuing from the cut; then
``selective_log_prob`` on the answer positions only (the ``[rows, vocab]`` logits are never
built). The index tensors come from ``ops.plan_scoring`` once per pass. Cost: T trace
tokens once plus the suffixes, instead of one re-encoding per cut.

Naive path (``score_naive``): plain transformers, ``model(prompt + prefix + suffix + answer)``
for every cut and form, log-softmax of the answer positions. The reference for tests and the
baseline for benchmarks. It keeps only the logits it needs (``logits_to_keep``), which makes
it a stronger baseline than full logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from mrt_engine.engine.forward import DecoderForward, varlen_causal_attention

from .inputs import TraceInputs
from mrt_engine.ops import plan_scoring, prefix_suffix_attention as prefix_attention, selective_log_prob


# -- planning ---------------------------------------------------------------------------------
def batches_by_tokens(items: list[TraceInputs], max_tokens: int) -> Iterator[list[TraceInputs]]:
    """Consecutive groups whose prefill (prompt + trace) fits ``max_tokens``; a longer item goes alone."""
    batch, used = [], 0
    for item in items:
        size = len(item.prompt_ids) + len(item.trace_ids)
        if batch and used + size > max_tokens:
            yield batch
            batch, used = [], 0
        batch.append(item)
        used += size
    if batch:
        yield batch


@dataclass
class _Suffix:
    item: int       # position in the batch
    cut: int        # cut index
    form: int       # answer form index
    ids: list[int]  # suffix + answer
    num_answer: int
    start: int      # first position (= context length at the cut)


def _suffixes(batch: list[TraceInputs]) -> list[_Suffix]:
    out = []
    for b, item in enumerate(batch):
        for c in range(item.num_cuts):
            for f, ans in enumerate(item.answer_ids):
                out.append(_Suffix(b, c, f, item.suffix_ids[c] + ans, len(ans), item.context_len(c)))
    return out


def _chunks_by_rows(suffixes: list[_Suffix], max_tokens: int) -> Iterator[list[_Suffix]]:
    chunk, used = [], 0
    for s in suffixes:
        if chunk and used + len(s.ids) > max_tokens:
            yield chunk
            chunk, used = [], 0
        chunk.append(s)
        used += len(s.ids)
    if chunk:
        yield chunk


# -- fast -------------------------------------------------------------------------------------
class KVCapture:
    """Prefill of packed sequences that keeps each layer's K/V: ``k[layer] [T, Hkv, D]``."""

    def __init__(self, fwd: DecoderForward, total_tokens: int):
        s = fwd.shape
        shape = (s.num_layers, total_tokens, s.num_kv_heads, s.head_dim)
        self.k = torch.empty(shape, dtype=fwd.dtype, device=fwd.device)  # [layers, T, Hkv, D]
        self.v = torch.empty(shape, dtype=fwd.dtype, device=fwd.device)


def _plan(seqs: list[list[int]], chunk: list[_Suffix]):
    """``ops.plan_scoring`` of one packed pass: ``chunk``'s suffixes attached at their cuts of the
    prefilled ``seqs`` (an item equal to or a prefix of another is served from its rows).

    The plan orders suffixes trace by trace; ``chunk`` is a slice of the item-major
    ``_suffixes`` list, so plan order is chunk order.
    """

    cuts: list[list[int]] = [[] for _ in seqs]
    lens: list[list[int]] = [[] for _ in seqs]
    for s in chunk:
        cuts[s.item].append(s.start)
        lens[s.item].append(len(s.ids))
    return plan_scoring([len(x) for x in seqs], cuts, lens, trace_tokens=seqs)


def prefill(fwd: DecoderForward, seqs: list[list[int]], max_tokens: int) -> KVCapture:
    """Causal prefill of ``seqs``, packed back to back; returns the K/V capture.

    Sequences that fit ``max_tokens`` together run in one varlen pass; a longer sequence runs
    in chunks, each chunk planned (``ops.plan_scoring``) as a suffix at cut ``c0`` of its own
    rows, so it attends the K/V already captured (memory stays bounded).
    """

    lens = [len(s) for s in seqs]
    offsets = [0]
    for n in lens:
        offsets.append(offsets[-1] + n)
    cap = KVCapture(fwd, offsets[-1])
    dev = fwd.device
    scale = fwd.shape.scale
    groups = [(0, len(seqs))] if offsets[-1] <= max_tokens else [(i, i + 1) for i in range(len(seqs))]
    for g0, g1 in groups:
        base = offsets[g0]
        if offsets[g1] - base <= max_tokens:
            ids = torch.tensor([t for s in seqs[g0:g1] for t in s], device=dev)
            pos = torch.cat([torch.arange(n, device=dev) for n in lens[g0:g1]])
            inner = varlen_causal_attention(torch.tensor([o - base for o in offsets[g0:g1 + 1]]), scale)

            def attend(i, q, k, v, _base=base, _inner=inner):
                cap.k[i, _base:_base + k.shape[0]] = k
                cap.v[i, _base:_base + v.shape[0]] = v
                return _inner(i, q, k, v)

            fwd.hidden_states(ids, pos, attend)
            continue
        for c0 in range(0, lens[g0], max_tokens):  # one long sequence: chunked prefill
            c1 = min(lens[g0], c0 + max_tokens)
            chunk_plan = plan_scoring(lens, [[c0] if t == g0 else [] for t in range(len(seqs))],
                                      [[c1 - c0] if t == g0 else [] for t in range(len(seqs))]).to(dev)

            def attend(i, q, k, v, _c0=c0, _c1=c1, _plan=chunk_plan):
                cap.k[i, base + _c0:base + _c1] = k
                cap.v[i, base + _c0:base + _c1] = v
                return prefix_attention(q, k, v, cap.k[i], cap.v[i], **_plan.attention_args(), scale=scale)

            fwd.hidden_states(torch.tensor(seqs[g0][c0:c1], device=dev), chunk_plan.suffix_positions, attend)
    return cap


def score_fast(fwd: DecoderForward, items: list[TraceInputs], *, max_tokens: int,
               on_cuts: Callable[[int], None] | None = None) -> list[list[list[float]]]:
    """Log-prob of every answer form at every cut: ``out[item][cut][form]`` (natural log).

    Per packed pass, one plan (``ops.plan_scoring``: index tensors, moved to the device once)
    and per layer one ``prefix_suffix_attention`` call that reads it.
    """

    dev = fwd.device
    scale = fwd.shape.scale
    bias = getattr(fwd.lm_head, "bias", None)
    results: list[list[list[float]]] = [[[0.0] * len(it.answer_ids) for _ in range(it.num_cuts)] for it in items]
    pos_in_items = {id(it): n for n, it in enumerate(items)}
    for batch in batches_by_tokens(items, max_tokens):
        seqs = [it.prompt_ids + it.trace_ids for it in batch]
        chunks = list(_chunks_by_rows(_suffixes(batch), max_tokens))
        plans = [_plan(seqs, chunk) for chunk in chunks]
        if not plans:
            continue
        # Every plan of the batch lays out the same prefix rows: prefill its unique traces once.
        cap = prefill(fwd, [seqs[u] for u in plans[0].unique_traces.tolist()], max_tokens)
        for chunk, plan in zip(chunks, plans):
            ends = plan.suffix_indptr.tolist()[1:]
            run = plan.to(dev).attention_args()
            ids = torch.tensor([t for s in chunk for t in s.ids], device=dev)  # [S]

            def attend(i, q, k, v, _run=run):
                return prefix_attention(q, k, v, cap.k[i], cap.v[i], **_run, scale=scale)

            hidden = fwd.hidden_states(ids, plan.suffix_positions.to(dev), attend)  # [S, H]
            # Row predicting answer token t of suffix s: its own row just before that token.
            rows = [r for s, end in zip(chunk, ends) for r in range(end - s.num_answer - 1, end - 1)]
            targets = [t for s in chunk for t in s.ids[-s.num_answer:]]
            logp = selective_log_prob(hidden[torch.tensor(rows, device=dev)], fwd.lm_head.weight,
                                      torch.tensor(targets, device=dev), bias=bias)  # [num_answer_tokens] fp32
            sums = torch.split(logp, [s.num_answer for s in chunk])
            for s, part in zip(chunk, sums):
                results[pos_in_items[id(batch[s.item])]][s.cut][s.form] = float(part.double().sum())
            if on_cuts is not None:
                on_cuts(sum(1 for s in chunk if s.form == 0))
        del cap
    return results


# -- naive ------------------------------------------------------------------------------------
def score_naive(model, items: list[TraceInputs], *, on_cuts: Callable[[int], None] | None = None) -> list[list[list[float]]]:
    """Same output as ``score_fast``, by re-encoding ``prompt + prefix + suffix + answer`` per cut."""
    dev = next(model.parameters()).device
    results = []
    for it in items:
        per_cut = []
        for c in range(it.num_cuts):
            context = it.prompt_ids + it.trace_ids[:it.cut_tokens[c]] + it.suffix_ids[c]
            forms = []
            for ans in it.answer_ids:
                ids = torch.tensor([context + ans], device=dev)  # [1, L]
                logits = model(input_ids=ids, logits_to_keep=len(ans) + 1).logits[0, :-1]  # [A, V]
                logp = torch.log_softmax(logits.float(), dim=-1)
                forms.append(float(logp.gather(1, torch.tensor(ans, device=dev)[:, None]).double().sum()))
            per_cut.append(forms)
            if on_cuts is not None:
                on_cuts(1)
        results.append(per_cut)
    return results
