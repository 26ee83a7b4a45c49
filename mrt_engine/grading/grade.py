"""Grading: `grade(response, reference)` -> `Grade(score, reason, extracted)`.

`grade` never raises on a malformed model response: a missing, empty, over-long,
unreadable or too-slow answer grades 0 with a short `reason` string (see `REASONS`). It does
raise on programming errors (a response that is not a string).

Equivalence: a normalised string comparison first (fast, in-process, no sympy), exact task
verifiers in-process, the cost screen (`too_costly`) in-process, and only then math-verify
(`parse` + `verify`), which runs in a worker process under a hard limit (worker.py): a check
past `timeout` seconds kills the worker and grades 0 as "timeout", whatever sympy was doing,
even inside one C call. `timeout=None` (or <= 0) runs math-verify in-process with no limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .screen import too_costly
from .text import extract_boxed, normalize_answer
from .worker import check_in_worker
from ._child import compare

# Reasons a Grade can carry. Score 1 only with CORRECT.
CORRECT = "correct"
INCORRECT = "incorrect"
NO_BOXED = "no \\boxed{} answer"
EMPTY = "empty answer"
TOO_LONG = "answer too long"
UNPARSEABLE = "unparseable"
TIMEOUT = "timeout"
TOO_COSTLY = "too costly to check"
REASONS = (CORRECT, INCORRECT, NO_BOXED, EMPTY, TOO_LONG, UNPARSEABLE, TIMEOUT, TOO_COSTLY)

# An answer longer than this is not worth a sympy parse (and may hang it).
MAX_ANSWER_CHARS = 1000

Verifier = Callable[[str, str], bool]


@dataclass(frozen=True)
class Grade:
    """score: 1.0 correct, 0.0 otherwise; reason: one of REASONS; extracted: the boxed text."""

    score: float
    reason: str
    extracted: str | None

    @property
    def correct(self) -> bool:
        return self.score > 0.0


# ---------------------------------------------------------------- math-verify


def _check(reference: str, candidate: str, timeout: float | None) -> str:
    """'equal' / 'different' / 'unparseable' / 'timeout' / 'costly'."""
    ref_norm, cand_norm = normalize_answer(reference), normalize_answer(candidate)
    if cand_norm and ref_norm == cand_norm:
        return "equal"
    if not cand_norm:
        return "unparseable"
    if max(len(reference), len(candidate)) > MAX_ANSWER_CHARS:
        return "different"
    if too_costly(candidate) or too_costly(reference):
        return "costly"
    if timeout is None or timeout <= 0:
        return compare(reference, candidate)
    return check_in_worker(reference, candidate, timeout)


def is_equiv(a: str, b: str, *, timeout: float | None = 5.0) -> bool:
    """True when answer `b` is mathematically equivalent to reference `a`.

    Not symmetric in corner cases (math-verify treats `a` as the gold answer, e.g. for
    `x=3` against `3`). Parse failures fall back to normalised string equality; a check
    that runs past `timeout` seconds (worker killed) counts as not equivalent.
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, str):
            raise TypeError(f"is_equiv: {name} must be a str, got {type(value).__name__}")
    return _check(a, b, timeout) == "equal"


# ---------------------------------------------------------------- grading


def grade(
    response: str,
    reference: str | int,
    *,
    verifier: Verifier | None = None,
    timeout: float | None = 5.0,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> Grade:
    """Grade the last `\\boxed{}` answer of `response` against `reference`.

    `verifier(extracted, reference) -> bool` replaces math equivalence (exact task
    verifiers); it signals an unreadable answer by raising ValueError.
    """
    if not isinstance(response, str):
        raise TypeError(f"grade: response must be a str, got {type(response).__name__}")
    if isinstance(reference, bool) or not isinstance(reference, (str, int)):
        raise TypeError(f"grade: reference must be a str or int, got {type(reference).__name__}")
    reference = str(reference)
    if not reference.strip():
        raise ValueError("grade: the reference answer is empty; fix the data set row")
    extracted = extract_boxed(response)
    if extracted is None:
        return Grade(0.0, NO_BOXED, None)
    if not extracted.strip():
        return Grade(0.0, EMPTY, extracted)
    if len(extracted) > max_answer_chars:
        return Grade(0.0, TOO_LONG, extracted)
    if verifier is not None:
        try:
            ok = verifier(extracted, reference)
        except ValueError:
            return Grade(0.0, UNPARSEABLE, extracted)
        return Grade(1.0, CORRECT, extracted) if ok else Grade(0.0, INCORRECT, extracted)
    status = _check(reference, extracted, timeout)
    if status == "equal":
        return Grade(1.0, CORRECT, extracted)
    reason = {
        "different": INCORRECT,
        "unparseable": UNPARSEABLE,
        "timeout": TIMEOUT,
        "costly": TOO_COSTLY,
    }[status]
    return Grade(0.0, reason, extracted)


def grade_batch(
    responses: Sequence[str],
    references: Sequence[str | int],
    *,
    verifier: Verifier | Sequence[Verifier | None] | None = None,
    timeout: float | None = 5.0,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> list[Grade]:
    """`grade` over paired lists; `verifier` is one callable for all or one per item."""
    if len(responses) != len(references):
        raise ValueError(
            f"grade_batch: {len(responses)} responses but {len(references)} references; "
            "pass one reference per response"
        )
    if verifier is None or callable(verifier):
        verifiers: Sequence[Verifier | None] = [verifier] * len(responses)
    else:
        verifiers = list(verifier)
        if len(verifiers) != len(responses):
            raise ValueError(
                f"grade_batch: {len(verifiers)} verifiers for {len(responses)} responses; "
                "pass one callable, or one per response (None for math equivalence)"
            )
    return [
        grade(r, ref, verifier=v, timeout=timeout, max_answer_chars=max_answer_chars)
        for r, ref, v in zip(responses, references, verifiers)
    ]
