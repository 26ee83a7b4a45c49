"""The pieces the estimator takes from other parts, in one place.

The estimator codes against the internal contracts (docs/interfaces.md): segmenters from
``mrt_engine.episodes``, templates from ``mrt_engine.prompts``, grading from
``mrt_engine.grading``, and the ops from ``mrt_engine.ops``. Imports are lazy so importing
``mrt_engine.progress`` stays cheap (math-verify, Triton and the engine load on first use).
"""
from __future__ import annotations


def ops():
    """(prefix_suffix_attention, selective_log_prob): dispatch (CUDA -> Triton, CPU -> torch)."""
    from mrt_engine.ops import prefix_suffix_attention, selective_log_prob

    return prefix_suffix_attention, selective_log_prob


def grade_fn():
    """``grade(response, reference) -> Grade(score, reason, extracted)``."""
    from mrt_engine.grading import grade

    return grade


def segment_fn():
    """``segment(text, scheme, *, tokenizer=None, **opts) -> list[Episode]``."""
    from mrt_engine.episodes import segment

    return segment


def prompts():
    import mrt_engine.prompts as prompts

    return prompts
