"""`digit`: find the digit x for which ``a * x`` ends in a given digit (guess and check).

The regime where progress can carry signal (docs/compare.md). Nothing short of trying tells
a small model the answer, but each try is cheap to check, so:

- a first try is usually wrong, and a check catches it ("Wait, try 7.") and a retry may fix
  it: J, the chance of a right forced answer, jumps in the episode that finds x;
- the warm-start traces find x after k = 0-9 wrong tries, P(k) proportional to 0.8^k (a weak
  prior for the right digit: it comes first in 22% of traces), so within a token budget the
  base model solves only some problems, and a policy that tries the right digit earlier solves
  more with fewer tokens;
- after finding x a trace may re-check it ("But let me double-check 3."): tokens spent for no
  progress, the waste MRT's credit is meant to remove.

``a`` (10-999) ends in 3, 7 or 9, so exactly one digit works, and only a's last digit
matters: 30 answer classes behind 2,970 problem texts (held-out problems are new texts, not
new classes). Levels differ in the arithmetic a try writes: easy multiplies the last digit
(``7 * 4 = 28.``), medium and hard the whole of ``a`` (``37 * 4 = 148.``).
"""

from __future__ import annotations

import random

from mrt_engine.grading import verify_integer

from .base import PARAGRAPH, Problem, Task, final_line, register

_MULTIPLIERS = tuple(a for a in range(10, 1000) if a % 10 in (3, 7, 9))
# How often a warm-start trace re-checks the digit it found (0, 1 or 2 times).
_RECHECK_WEIGHTS = (0.5, 0.35, 0.15)


def _generate(rng: random.Random, difficulty: str):
    a = rng.choice(_MULTIPLIERS)
    x = rng.randint(0, 9)
    c = a * x % 10
    # "We need c." gives every later "need c" a phrase to copy (a small model copies a digit
    # after the same words far more reliably than it finds c inside "99 * x ends in 9")
    text = f"Find the digit x such that {a} * x ends in {c}. We need {c}."
    return text, str(x), {"a": a, "c": c, "whole": difficulty != "easy"}


def _product(a: int, t: int, c: int, whole: bool) -> str:
    # The target digit is restated right beside the product: the check is then a comparison
    # of two nearby digits, which a small model learns, not a look back into the prompt.
    m = a if whole else a % 10
    return f"{m} * {t} = {m * t}, need {c}."


def _try_text(a: int, c: int, t: int, first: bool, whole: bool) -> list[str]:
    """One episode: try t, multiply, compare the last digit (three paragraphs, so the R1
    segmenter cuts before every later try)."""
    d = a * t % 10
    head = f"Try {t}." if first else f"Wait, try {t}."
    verdict = f"Yes, x = {t}." if d == c else f"No, it ends in {d}."
    return [head, _product(a, t, c, whole), verdict]


def _trace(problem: Problem, rng: random.Random, num_mistakes: int) -> str:
    a, c, x, whole = problem.meta["a"], problem.meta["c"], int(problem.answer), problem.meta["whole"]
    wrong = rng.sample([d for d in range(10) if d != x], num_mistakes)
    paragraphs: list[str] = []
    for i, t in enumerate(wrong + [x]):
        paragraphs += _try_text(a, c, t, first=i == 0, whole=whole)
    for _ in range(rng.choices(range(len(_RECHECK_WEIGHTS)), weights=_RECHECK_WEIGHTS)[0]):
        paragraphs += [f"But let me double-check {x}.", _product(a, x, c, whole), f"Yes, x = {x}."]
    paragraphs.append(final_line(str(x)))
    return PARAGRAPH.join(paragraphs)


_MISTAKE_WEIGHTS = tuple(0.8 ** k for k in range(10))


def _draw_mistakes(problem: Problem, rng: random.Random) -> int:
    return rng.choices(range(10), weights=_MISTAKE_WEIGHTS)[0]


def _answer_found(problem: Problem, prefix: str) -> bool:
    return f"Yes, x = {problem.answer}." in prefix


DIGIT = register(
    Task(
        name="digit",
        description="guess and check: the digit x with a * x ending in c; integer answer",
        generate=_generate,
        trace=_trace,
        max_mistakes=lambda problem: 9,
        verifier=verify_integer,
        draw_mistakes=_draw_mistakes,
        answer_found=_answer_found,
    )
)
