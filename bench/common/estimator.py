"""Every option the bench passes to ``mrt_engine.progress.ProgressEstimator``, in one place.

The score and sample stages build their estimators from :func:`estimator_options` alone,
so a renamed estimator option is one line here.
"""
from __future__ import annotations

SAMPLE_TEMPERATURE = 0.7  # the vLLM baseline of the sample stage samples at the same temperature


def estimator_options(mode: str, method: str, *, num_branches: int = 1, max_answer_tokens: int = 1) -> dict:
    """Keyword arguments of ``ProgressEstimator(model, tokenizer, **options)``.

    ``mode="score"`` teacher-forces the reference answer (estimator defaults otherwise);
    ``mode="sample"`` samples ``num_branches`` answers of at most ``max_answer_tokens``
    tokens per cut under the ``boxed`` template (the embedded models have no think tag).
    """
    if mode == "score":
        return dict(mode="score", method=method, show_progress=False)
    return dict(
        mode="sample", method=method, template="boxed",
        num_branches=num_branches,
        max_answer_tokens=max_answer_tokens, temperature=SAMPLE_TEMPERATURE, seed=0, show_progress=False)
