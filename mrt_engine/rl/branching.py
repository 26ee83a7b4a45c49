"""Forced-termination branches on the live policy: J at each episode boundary of a trace.

This is the dense MRT variant's estimator (mrt.md section 5: fork termination branches at up
to 6 episode boundaries, 4 branches each): for every cut, ``prompt + prefix + termination``
is continued ``num_branches`` times and graded; J = fraction correct. It runs through the
rollout backend, so it always sees the current weights. (The standalone
:class:`mrt_engine.progress.ProgressEstimator` computes the same quantity with shared-prefix
kernels and a deterministic scoring mode; ``algo.progress_estimator: score`` trains on that
instead, see :mod:`mrt_engine.rl.score_progress`.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mrt_engine.rl.generation import Sampling
from mrt_engine.rl.rollout import Sample, _strip_eos, grade_samples


@dataclass
class TraceProgress:
    j: list[float]                        # [L+1]: empty prefix, after episodes 1..L-1, natural end (= outcome)
    episode_spans: list[tuple[int, int]]  # [L] token spans in the completion (last one covers EOS)
    cut_tokens: list[int]                 # [L] token offsets of the forced cuts (0 first)
    tokens_at_cut: list[float]            # [L+1] tokens spent when answering at each cut (see below)

    @property
    def progress(self) -> torch.Tensor:
        from mrt_engine.rl.rewards import episode_progress

        return episode_progress(torch.tensor(self.j))


def estimate_trace_progress(backend, tokenizer, samples: list[Sample], *, template, scheme: str,
                            segment_options: dict, max_cuts: int, num_branches: int, answer_max_tokens: int,
                            temperature: float, top_p: float = 1.0, seed: int | None = None) -> list[TraceProgress]:
    """J at the empty prefix and after each episode (at most ``max_cuts`` boundaries) of every
    sample's completion; the natural end is the sample's own graded outcome.

    Departures from the paper's estimator: J at the natural end is the trace's own outcome (one
    sample) rather than ``num_branches`` fresh answers after a closing tag (our synthetic
    models have no think block to close). ``tokens_at_cut`` counts prompt + prefix + mean
    answer length, without the termination text (a constant per cut that the model did not
    choose to spend), and the natural end counts prompt + the whole completion; a running
    maximum keeps the curve's token axis non-decreasing.
    """
    from mrt_engine.episodes import segment_ids
    from mrt_engine.prompts import encode

    term_ids = encode(tokenizer, template.text)
    opts = dict(segment_options)
    opts["max_steps"] = min(max_cuts, opts.get("max_steps") or max_cuts)
    contexts, owners, per_trace = [], [], []
    for i, s in enumerate(samples):
        ids = _strip_eos(s.completion_ids, tokenizer)
        episodes = segment_ids(tokenizer, ids, scheme, **opts)
        cuts = [0] + [e.token_end for e in episodes[:-1]]
        spans = [(e.token_start, e.token_end) for e in episodes]
        spans[-1] = (spans[-1][0], len(s.completion_ids))
        per_trace.append((cuts, spans))
        for c in cuts:
            contexts.append(s.context_ids + ids[:c] + term_ids)
            owners.append(i)
    outs = backend.generate(contexts, Sampling(n=num_branches, max_tokens=answer_max_tokens, temperature=temperature,
                                               top_p=top_p, seed=seed))
    branch_samples, answer_lens = [], []
    for i, group in zip(owners, outs):
        answer_lens.append(sum(len(c.token_ids) for c in group) / len(group))
        for c in group:
            branch_samples.append(Sample(samples[i].problem, i, [], list(c.token_ids), template.text + c.text))
    grade_samples(branch_samples)
    results, pos = [], 0
    for i, (cuts, spans) in enumerate(per_trace):
        j, tokens = [], []
        for c in cuts:
            group = branch_samples[pos * num_branches:(pos + 1) * num_branches]
            j.append(sum(b.reward for b in group) / num_branches)
            tokens.append(len(samples[i].context_ids) + c + answer_lens[pos])
            pos += 1
        j.append(samples[i].reward)
        tokens.append(len(samples[i].context_ids) + len(samples[i].completion_ids))
        for k in range(1, len(tokens)):
            tokens[k] = max(tokens[k], tokens[k - 1])
        results.append(TraceProgress(j, spans, cuts, tokens))
    return results
