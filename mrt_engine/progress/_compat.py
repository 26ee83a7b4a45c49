"""The pieces the estimator takes from other parts, in one place.

The estimator codes against the internal contracts (docs/interfaces.md): segmenters from
``mrt_engine.episodes``, templates from ``mrt_engine.prompts``, grading from
``mrt_engine.grading``, and the ops from ``mrt_engine.ops``. Imports are lazy so importing
``mrt_engine.progress`` stays cheap.

TRANSITIONAL: until ``mrt_engine.grading`` is merged, a missing module falls back to exact
string match of the last ``\boxed{}`` (used only when the module itself is absent, never to
hide an error inside it).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


# -- ops --------------------------------------------------------------------------------------
def ops():
    """(prefix_suffix_attention, selective_log_prob): dispatch (CUDA -> Triton, CPU -> torch)."""
    from mrt_engine.ops import prefix_suffix_attention, selective_log_prob

    return prefix_suffix_attention, selective_log_prob


# -- grading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Grade:
    score: float
    reason: str
    extracted: str | None


def _extract_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    begin = i
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:i]
        i += 1
    return None


def _grade_exact(response: str, reference: str, *, verifier=None):
    got = _extract_boxed(response)
    if got is None:
        return _Grade(0.0, "no boxed answer", None)
    ok = got.strip() == reference.strip()
    return _Grade(float(ok), "exact match" if ok else "mismatch", got)


def grade_fn():
    """``grade(response, reference) -> Grade(score, reason, extracted)``."""
    mod = _optional("mrt_engine.grading")
    return mod.grade if mod is not None else _grade_exact


# -- episodes / prompts -------------------------------------------------------------------------
def segment_fn():
    """``segment(text, scheme, *, tokenizer=None, **opts) -> list[Episode]``."""
    from mrt_engine.episodes import segment

    return segment


def prompts():
    import mrt_engine.prompts as prompts

    return prompts
