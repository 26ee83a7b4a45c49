"""Sample mode: n answers per cut, graded; J = mean grade (the paper's estimator).

Fast path (``sample_fast``): the engine's ``Generator.branch`` prefills ``prompt + trace``
once and forks n continuations at every cut (``prefix[:cut] + suffix``), the prefix KV
blocks shared by all branches. Naive path (``sample_naive``): ``model.generate`` on the
re-encoded ``prompt + prefix + suffix`` of every cut with ``num_return_sequences=n``.

Seeds: every cut draws from its own seed ``cut_seed(seed, item, cut)``, so a result does not
depend on how items are batched. Fast and naive use different random streams, so they agree
in distribution (within standard errors), not sample by sample.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from . import _compat
from .inputs import TraceInputs


def cut_seed(seed: int, item: int, cut: int) -> int:
    return (seed * 1_000_003 + item * 10_007 + cut) % (2 ** 31 - 1)


def mean_and_stderr(scores: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std with n-1 / sqrt(n)); NaN error for one sample."""
    n = len(scores)
    mean = sum(scores) / n
    if n < 2:
        return mean, float("nan")
    var = sum((x - mean) ** 2 for x in scores) / (n - 1)
    return mean, math.sqrt(var / n)


def _grade_cut(tokenizer, grade, suffix_ids, answers, references) -> tuple[list[str], list[float]]:
    # The suffix ends where the answer begins (e.g. "\boxed{"): grade suffix text + sample.
    head = tokenizer.decode(suffix_ids, skip_special_tokens=False)
    scores = [max(float(grade(head + a, r).score) for r in references) for a in answers]
    return answers, scores


def sample_fast(generator, tokenizer, items: list[TraceInputs], *, config, stop_ids: list[int],
                on_cuts: Callable[[int], None] | None = None):
    """Per item, per cut: (answer texts, scores, mean answer tokens)."""
    from mrt_engine.engine import SamplingParams

    grade = _compat.grade_fn()
    out = []
    for it in items:
        prefix = it.prompt_ids + it.trace_ids
        cuts = [it.context_len(c) for c in range(it.num_cuts)]
        per_cut = []
        # One branch call per cut keeps the per-cut seed contract; the engine still shares the
        # trace's prefix blocks across calls through its prefix cache.
        params = [SamplingParams(n=config.num_samples, temperature=config.temperature, top_p=config.top_p,
                                 max_tokens=config.max_answer_tokens, stop_token_ids=tuple(stop_ids),
                                 seed=cut_seed(config.seed, it.index, c)) for c in range(it.num_cuts)]
        outputs = _branch(generator, prefix, cuts, it.suffix_ids, params)
        for c, outs in enumerate(outputs):
            texts = [o.text for o in outs]
            texts, scores = _grade_cut(tokenizer, grade, it.suffix_ids[c], texts, it.references)
            per_cut.append((texts, scores, sum(len(o.token_ids) for o in outs) / len(outs)))
        if on_cuts is not None:
            on_cuts(it.num_cuts)
        out.append(per_cut)
    return out


def _branch(generator, prefix, cuts, suffixes, params):
    """All cuts of one trace in one engine call when the engine takes per-cut params."""
    if len({(p.seed) for p in params}) == 1 or not getattr(generator, "branch_accepts_param_list", False):
        return [generator.branch(prefix, [c], [s], p)[0] for c, s, p in zip(cuts, suffixes, params)]
    return generator.branch(prefix, cuts, suffixes, params)


def sample_naive(model, tokenizer, items: list[TraceInputs], *, config, stop_ids: list[int],
                 on_cuts: Callable[[int], None] | None = None):
    """Same output as ``sample_fast`` with plain ``model.generate`` on every re-encoded prefix."""
    grade = _compat.grade_fn()
    dev = next(model.parameters()).device
    out = []
    greedy = config.temperature == 0
    for it in items:
        per_cut = []
        for c in range(it.num_cuts):
            context = it.prompt_ids + it.trace_ids[:it.cut_tokens[c]] + it.suffix_ids[c]
            ids = torch.tensor([context], device=dev)  # [1, L]
            torch.manual_seed(cut_seed(config.seed, it.index, c))
            gen = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=not greedy,
                temperature=config.temperature if not greedy else None, top_p=config.top_p if not greedy else None,
                top_k=0 if not greedy else None,
                max_new_tokens=config.max_answer_tokens, num_return_sequences=config.num_samples,
                eos_token_id=list(stop_ids), pad_token_id=tokenizer.pad_token_id)
            new = gen[:, ids.shape[1]:].tolist()
            texts, lens = [], []
            for row in new:
                cut_at = next((k + 1 for k, t in enumerate(row) if t in stop_ids), len(row))
                row = row[:cut_at]
                lens.append(len(row))
                texts.append(tokenizer.decode([t for t in row if t not in stop_ids], skip_special_tokens=False))
            texts, scores = _grade_cut(tokenizer, grade, it.suffix_ids[c], texts, it.references)
            per_cut.append((texts, scores, sum(lens) / len(lens)))
            if on_cuts is not None:
                on_cuts(1)
        out.append(per_cut)
    return out
