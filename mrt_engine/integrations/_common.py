"""Pieces shared by the TRL, verl and OpenRLHF adapters.

Every adapter does the same four things: pull the problem text, the completion text and the
reference answer out of the framework's batch; run :class:`mrt_engine.progress.ProgressScorer`
(the estimator bound to the policy, or a copy of it); turn each :class:`ProgressResult` into a scalar bonus or into
per-token rewards on the framework's own completion tokens. Those pieces live here, free of
any framework import, so they can be tested and reused on their own.

The code here must also run inside the verl virtualenv (transformers < 5.11): it uses only
``tokenizer.decode`` and plain torch.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Sequence

import torch

from mrt_engine.episodes import char_to_token_offsets
from mrt_engine.progress import EstimatorConfig, ProgressScorer, reference_answer  # noqa: F401 (re-exported)
from mrt_engine.rl.rewards import dense_progress_rewards

FORMS = ("progress", "termination_baseline", "dense")


# -- clear failures ---------------------------------------------------------------------------

def require(module: str, *, package: str, purpose: str) -> None:
    """Raise a ModuleNotFoundError that says what to install when ``module`` is missing."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ValueError, ImportError):  # e.g. sys.modules[module] is None: import blocked
        found = False
    if not found:
        raise ModuleNotFoundError(
            f"{purpose} needs the package {package!r}, which is not installed; install it with: "
            f"pip install {package}")


def column(values: dict, name: str, num: int, *, what: str, holds: str = "reference answer",
           option: str = "answer_column") -> list:
    """``values[name]`` as a list of length ``num``, or a clear error naming the missing column."""
    if name not in values or values[name] is None:
        raise KeyError(
            f"{what} needs the {holds} of every example in the column {name!r}, but the batch has only the "
            f"columns {sorted(values)}. Add that column to the data set, or pass {option}=<the column that "
            f"holds the {holds}s>.")
    col = list(values[name])
    if len(col) != num:
        raise ValueError(f"column {name!r} has {len(col)} entries for {num} completions")
    missing = [i for i, a in enumerate(col) if a is None or (isinstance(a, str) and not a.strip())]
    if missing:
        raise ValueError(f"column {name!r} has no {holds} for examples {missing[:10]}; "
                         "every example needs one to score progress")
    return col


def answer_column(values: dict, name: str, num: int, *, what: str) -> list:
    """The reference answers of a batch, checked and normalised (see :func:`reference_answer`)."""
    return [reference_answer(a, index=i) for i, a in enumerate(column(values, name, num, what=what))]


# -- text of prompts and completions ----------------------------------------------------------

def message_text(item: Any, *, role: str | None = None) -> str:
    """Text of a plain string or of a chat (list of ``{"role", "content"}`` messages).

    For a chat, the content of the last message with ``role`` (any role when None). Content
    given as a list of typed parts keeps its text parts.
    """
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        item = [item]
    if isinstance(item, (list, tuple)) and all(isinstance(m, dict) for m in item):
        chosen = [m for m in item if role is None or m.get("role") == role]
        if not chosen:
            raise ValueError(f"conversation has no {role!r} message: {item!r}")
        content = chosen[-1].get("content", "")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    raise TypeError(f"expected a string or a list of chat messages, got {type(item).__name__}")


# -- token spans of a completion --------------------------------------------------------------

def token_char_ends(tokenizer, token_ids: Sequence[int]) -> list[int]:
    """``ends[t]`` = length of ``decode(token_ids[:t+1], skip_special_tokens=True)``.

    Decoding growing prefixes (not single tokens) keeps multi-byte characters split over
    tokens right. This is what maps the estimator's episode char spans onto the framework's
    own completion tokens, which need not equal a re-tokenisation of the decoded text.
    Cost O(T^2) characters, fine at completion lengths.
    """
    ends, ids = [], list(int(t) for t in token_ids)
    for t in range(len(ids)):
        ends.append(len(tokenizer.decode(ids[: t + 1], skip_special_tokens=True)))
    return ends


def first_token_past(char_offset: int, ends: Sequence[int]) -> int:
    """Index of the first token whose last character lies past ``char_offset`` (len(ends) if none).

    The segmenter's rule (``mrt_engine.episodes.char_to_token_offsets``), applied to the
    framework's own tokens.
    """
    spans, prev = [], 0
    for end in ends:  # a running max: a prefix decode may end in a replacement char that later merges
        end = max(prev, int(end))
        spans.append((prev, end))
        prev = end
    return char_to_token_offsets([char_offset], spans)[0]


def episode_char_spans(result) -> list[tuple[int, int]]:
    """Char span ``[start, end)`` of each episode in the trace, from ``result.cut_chars``.

    ``cut_chars`` holds the empty prefix (0) and the end of every episode, so episode k spans
    ``cut_chars[k] : cut_chars[k+1]``. Text after the thinking (past ``</think>``) belongs to
    no episode.
    """
    cuts = [int(c) for c in result.cut_chars]
    num_episodes = len(result.progress)
    if len(cuts) != num_episodes + 1:
        raise ValueError(f"ProgressResult has {len(cuts)} cut offsets for {num_episodes} episodes; expected one more")
    return list(zip(cuts[:-1], cuts[1:]))


def episode_token_spans(result, ends: Sequence[int]) -> list[tuple[int, int]]:
    """Token span ``[start, end)`` of each episode of ``result`` within the completion tokens.

    ``ends`` are the tokens' char ends (:func:`token_char_ends`). A token belongs to the
    episode its last character falls in (``cut_chars[k] < ends[t] <= cut_chars[k+1]``), so a
    token straddling a boundary goes to the later episode, tokens that decode to nothing join
    the token before them, and tokens past the thinking (after ``</think>``) belong to none.
    """
    return [(first_token_past(a, ends), first_token_past(b, ends)) for a, b in episode_char_spans(result)]


# -- rewards from estimator results -----------------------------------------------------------

def total_progress(result) -> float:
    """Sum of per-episode progress: ``J(last cut) - J(empty prefix)`` (0 for an empty trace)."""
    return float(sum(float(p) for p in result.progress))


def outcome_of(result) -> float:
    if result.outcome is None:
        raise ValueError("the estimator returned no outcome grade for a trace; MRT rewards need it "
                         "(the estimator grades traces by default)")
    return float(result.outcome)


def scalar_reward(result, *, form: str, alpha: float, include_outcome: bool) -> float:
    """One number per completion.

    - ``"progress"``: ``alpha * sum_j r_prg(z_j)`` (+ outcome when ``include_outcome``).
    - ``"termination_baseline"``: ``R - J(empty prefix)``, the paper's scalar MRT advantage
      ``R - mean(R_terminate)`` with the forced-termination success estimated by the
      estimator instead of sampled terminating continuations (our departure: TRL, verl and
      OpenRLHF roll out from the prompt only, so the prefix is the empty one).
    - ``"dense"``: the outcome only; the progress goes onto the tokens (see :func:`dense_rewards`).
    """
    if form not in FORMS:
        raise ValueError(f"form={form!r}; use one of {FORMS}")
    outcome = outcome_of(result)
    if form == "progress":
        return alpha * total_progress(result) + (outcome if include_outcome else 0.0)
    if form == "termination_baseline":
        return outcome - float(result.j[0])
    return outcome


def dense_rewards(result, spans: Sequence[tuple[int, int]], num_tokens: int, *, alpha: float) -> torch.Tensor:
    """``[num_tokens]`` fp32: ``alpha * progress_k`` on every token of episode k, 0 elsewhere.

    The trainer's own ``mrt_engine.rl.rewards.dense_progress_rewards`` (each token carries its
    own episode's progress, added to the sequence's outcome advantage), with spans clipped to
    the framework's completion length (it may truncate the completion we segmented).
    """

    clipped = [(min(start, num_tokens), min(end, num_tokens)) for start, end in spans]
    progress = torch.tensor([float(p) for p in result.progress], dtype=torch.float32)
    return dense_progress_rewards([progress], [clipped], num_tokens, alpha=alpha)[0]


def last_token_rewards(result, spans: Sequence[tuple[int, int]], num_tokens: int, *,
                       alpha: float, outcome_index: int) -> torch.Tensor:
    """``[num_tokens]`` fp32 for frameworks that sum token rewards (verl's token_level_scores).

    ``alpha * progress_k`` on the last token of episode k and the outcome on ``outcome_index``
    (the last response token), so the sum over tokens is ``outcome + alpha * total progress``.
    """
    prg = [float(p) for p in result.progress]
    if len(prg) != len(spans):
        raise ValueError(f"{len(prg)} progress values for {len(spans)} episodes")
    if not 0 <= outcome_index < num_tokens:
        raise ValueError(f"outcome_index {outcome_index} outside [0, {num_tokens})")
    out = torch.zeros(num_tokens, dtype=torch.float32)  # [T]
    for k, (start, end) in enumerate(spans):
        last = min(max(end - 1, start), outcome_index)
        out[last] += alpha * prg[k]
    out[outcome_index] += outcome_of(result)
    return out
