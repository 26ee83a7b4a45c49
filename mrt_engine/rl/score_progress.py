"""J at episode cuts from :class:`mrt_engine.progress.ProgressEstimator` in score mode.

The alternative to :func:`mrt_engine.rl.branching.estimate_trace_progress` selected by
``algo.progress_estimator: score``: instead of sampling ``num_branches`` forced answers per
cut, J at each cut is the exact probability that the policy, forced to answer there, writes
the problem's reference answer (teacher-forced, shared-prefix fast path). It runs on the
live policy (the estimator holds the model's own parameter tensors), in eval mode under
``no_grad``, restoring the model's mode afterwards (``integrations._common.ProgressScorer``).

Mapping onto the trainer's tokens: each sample's completion is handed to the estimator as
token ids (prompt = the sample's ``context_ids`` used as given, trace = the completion without
its trailing EOS), so the estimator segments exactly those ids with ``segment_ids`` and its
``cut_tokens`` are already offsets into the completion. No char -> token mapping is needed
(``_common.episode_token_spans`` maps ``cut_chars`` for frameworks that hand over text; the
test checks that it gives the same spans here).

Departures from the branch estimator (both documented in docs/training.md): J at the last cut
is the probability of the reference answer after the natural close (not the trace's graded
outcome), and ``tokens_at_cut`` includes the termination text (the estimator's convention).
"""
from __future__ import annotations

from mrt_engine.rl.branching import TraceProgress
from mrt_engine.rl.rollout import Sample, _strip_eos


def score_segment_options(segment_options: dict, max_cuts: int) -> dict:
    """The segmenter options both estimators use: at most ``max_cuts`` episodes per trace."""
    opts = dict(segment_options)
    opts["max_steps"] = min(max_cuts, opts.get("max_steps") or max_cuts)
    return opts


def build_score_estimator(model, tokenizer, *, template, scheme: str, segment_options: dict, max_cuts: int,
                          generator=None):
    """``ProgressEstimator(model, tokenizer, mode="score", method="fast", ...)`` on the live policy.

    ``generator``: the rollout engine's Generator, whose ``DecoderForward`` (over the same
    parameter tensors) is then reused instead of building a second one.
    """
    from mrt_engine.progress import ProgressEstimator

    return ProgressEstimator(model, tokenizer, generator=generator, template=template, mode="score", method="fast",
                             scheme=scheme, segment_options=score_segment_options(segment_options, max_cuts),
                             show_progress=False)


def score_inputs(tokenizer, samples: list[Sample]) -> tuple[list[list[int]], list[list[int]], list]:
    """(prompt ids, trace ids, reference answers) of every sample, as the estimator takes them."""
    from mrt_engine.integrations._common import reference_answer

    prompts, traces, answers = [], [], []
    for i, s in enumerate(samples):
        answer = getattr(s.problem, "answer", None)
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            raise ValueError(f"sample {i}: algo.progress_estimator='score' needs the problem's reference answer, "
                             f"but problem {getattr(s.problem, 'problem', s.problem)!r:.80} has none; give every "
                             "problem an answer (data.answer_field) or use algo.progress_estimator: branch")
        prompts.append([int(t) for t in s.context_ids])
        traces.append([int(t) for t in _strip_eos(s.completion_ids, tokenizer)])
        answers.append(reference_answer(answer, index=i))
    return prompts, traces, answers


def score_trace_progress(scorer, tokenizer, samples: list[Sample]) -> list[TraceProgress]:
    """J per cut of every sample's completion, from ``scorer.estimate`` (a ProgressScorer).

    Returns the same :class:`TraceProgress` the branch estimator does: ``j`` [L+1] (empty
    prefix, after episodes 1..L-1, natural end), ``episode_spans`` [L] in completion tokens
    (the last one extended over the EOS and anything after a ``</think>``, as the branch
    estimator does), ``cut_tokens`` [L] (the forced cuts) and ``tokens_at_cut`` [L+1]
    (non-decreasing). A trace with no tokens has one cut and no episode.
    """
    from mrt_engine.progress.result import token_curve

    prompts, traces, answers = score_inputs(tokenizer, samples)
    results = scorer.estimate(prompts, traces, answers)
    out = []
    for s, res in zip(samples, results):
        cuts = [int(c) for c in res.cut_tokens]
        spans = list(zip(cuts[:-1], cuts[1:]))
        if spans:
            spans[-1] = (spans[-1][0], len(s.completion_ids))
        out.append(TraceProgress([float(x) for x in res.j], spans, cuts[:-1], token_curve(res)[0]))
    return out
