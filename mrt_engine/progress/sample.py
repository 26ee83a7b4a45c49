"""Sample mode: n answers per cut, graded; J = mean grade (the paper's estimator).

Fast path (``sample_fast``): one ``Generator.branch_many`` call for all traces prefills each
``prompt + trace`` once and forks n continuations at every cut (``prefix[:cut] + suffix``),
the prefix KV blocks shared by all branches. Naive path (``sample_naive``): ``model.generate`` on the
re-encoded ``prompt + prefix + suffix`` of every cut with ``num_return_sequences=n``.

Seeds: both paths are reproducible for the same settings and seed, and an item's result does
not depend on the other items. The naive path draws every cut from its own seed
``cut_seed(seed, item, cut)``; the fast path seeds all cuts of a trace alike (see
``sample_fast``). Fast and naive use different random
streams, so they agree in distribution (within standard errors), not sample by sample.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .inputs import TraceInputs
from mrt_engine.grading import grade
from mrt_engine.engine import SamplingParams


def cut_seed(seed: int, item: int, cut: int) -> int:
    return (seed * 1_000_003 + item * 10_007 + cut) % (2 ** 31 - 1)


def item_seed(config, it: TraceInputs, cut: int) -> int:
    """The seed of cut ``cut`` of ``it``: from ``(config.seed, item index)``, or the item's own key."""
    seed, item = it.seed_key if it.seed_key is not None else (config.seed, it.index)
    return cut_seed(seed, item, cut)


def mean_and_stderr(scores: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std with n-1 / sqrt(n)); NaN error for one sample."""
    n = len(scores)
    mean = sum(scores) / n
    if n < 2:
        return mean, float("nan")
    var = sum((x - mean) ** 2 for x in scores) / (n - 1)
    return mean, math.sqrt(var / n)


def _grade_cut(tokenizer, it: TraceInputs, cut: int, answers: list[str]):
    """(texts, scores, extracted answers) of one cut's samples.

    The suffix ends where the answer begins (e.g. ``\\boxed{``): each sample is graded as
    suffix text + sample text, against every accepted reference form (best grade counts),
    with the item's exact verifier when it has one.
    """

    head = tokenizer.decode(it.suffix_ids[cut], skip_special_tokens=False)
    scores, extracted = [], []
    for a in answers:
        grades = [grade(head + a, r, verifier=it.verifier) for r in it.references]
        scores.append(max(float(g.score) for g in grades))
        extracted.append(grades[0].extracted)
    return answers, scores, extracted


def sample_fast(generator, tokenizer, items: list[TraceInputs], *, config, stop_ids: list[int],
                on_cuts: Callable[[int], None] | None = None):
    """Per item, per cut: (answer texts, scores, extracted answers, mean answer tokens).

    One ``Generator.branch_many`` call forks ``num_branches`` continuations at every cut of
    every trace (prefix blocks shared, one decode batch of traces x cuts x samples: more rows
    per weight read than a call per trace). Seeds: the engine seeds sample i of a request from
    ``(seed, i)``; every cut of a trace gets the same request seed ``cut_seed(seed, item, 0)``,
    so cuts share their random numbers (common random numbers: J at each cut is unbiased, and
    progress J_k - J_{k-1} has lower variance than with independent draws), and a trace's
    draws do not depend on the other traces of the call.
    """

    traces, params = [], []
    for it in items:
        params.append(SamplingParams(n=config.num_branches, temperature=config.temperature, top_p=config.top_p,
                                     max_tokens=config.max_answer_tokens, stop_token_ids=tuple(stop_ids),
                                     seed=item_seed(config, it, 0)))
        cuts = [it.context_len(c) for c in range(it.num_cuts)]
        traces.append((it.prompt_ids + it.trace_ids, cuts, it.suffix_ids))
    outputs = generator.branch_many(traces, params) if traces else []  # [trace][cut][sample]
    out = []
    for it, per_trace in zip(items, outputs):
        per_cut = []
        for c, outs in enumerate(per_trace):
            texts, scores, extracted = _grade_cut(tokenizer, it, c, [o.text for o in outs])
            per_cut.append((texts, scores, extracted, sum(len(o.token_ids) for o in outs) / len(outs)))
        out.append(per_cut)
        if on_cuts is not None:
            on_cuts(it.num_cuts)
    return out


def sample_naive(model, tokenizer, items: list[TraceInputs], *, config, stop_ids: list[int],
                 on_cuts: Callable[[int], None] | None = None):
    """Same output as ``sample_fast`` with plain ``model.generate`` on every re-encoded prefix."""
    dev = next(model.parameters()).device
    out = []
    greedy = config.temperature == 0
    for it in items:
        per_cut = []
        for c in range(it.num_cuts):
            context = it.prompt_ids + it.trace_ids[:it.cut_tokens[c]] + it.suffix_ids[c]
            ids = torch.tensor([context], device=dev)  # [1, L]
            torch.manual_seed(item_seed(config, it, c))
            gen = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=not greedy,
                temperature=config.temperature if not greedy else None, top_p=config.top_p if not greedy else None,
                top_k=0 if not greedy else None,
                max_new_tokens=config.max_answer_tokens, num_return_sequences=config.num_branches,
                eos_token_id=list(stop_ids), pad_token_id=tokenizer.pad_token_id)
            new = gen[:, ids.shape[1]:].tolist()
            texts, lens = [], []
            for row in new:
                cut_at = next((k + 1 for k, t in enumerate(row) if t in stop_ids), len(row))
                row = row[:cut_at]
                lens.append(len(row))
                texts.append(tokenizer.decode([t for t in row if t not in stop_ids], skip_special_tokens=False))
            texts, scores, extracted = _grade_cut(tokenizer, it, c, texts)
            per_cut.append((texts, scores, extracted, sum(lens) / len(lens)))
            if on_cuts is not None:
                on_cuts(1)
        out.append(per_cut)
    return out
