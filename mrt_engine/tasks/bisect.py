"""`bisect`: find x among a range of candidates; each clue halves what is left.

The second regime built so that progress credit can say what the outcome does not (issue 25
item 3, preregistered in docs/prereg/doubt_bisect.md, "Regime `bisect`").

> Find x among the 4 numbers from 1174 to 1177. Clue 1: x >= 1176. Clue 2: x <= 1176.

The clues are the steps of a binary search for x, stated in the problem in the order they
apply: each one, applied in turn, halves the range. A warm-start trace restates the range and
its size, then applies one clue per episode (three paragraphs, so the R1 segmenter cuts before
every later one):

    Wait, clue 2: x <= 1176.
    x is from 1176 to 1176.
    1 left.

After each clue, with probability REPEAT_RATE (at most MAX_REPEATS times in a row) the next
episode re-applies the clue just applied: the same three paragraphs again, the range unchanged.
That episode is redundant (nothing ruled out, J unchanged) and costs 60 tokens; the text shows
it as a clue number already used. Once one candidate is left the trace closes with
``The final answer is \\boxed{x}.``

Learnability (the warm start is a 0.8M-parameter byte-level model, one token per character):
every paragraph is a copy or a one-step choice. The clue is copied from the problem ("Clue 2:"
is found and what follows copied); the new range copies one bound from the clue (">=" sets the
lower, "<=" the upper) and the other from the previous range, so no arithmetic is written (a
clue says ``x >= 1176`` rather than ``x > 1175``); the count halves (16, 8, 4, 2, 1: a lookup)
or is copied; the next clue is the last one's number plus one, or the same number again (the
redundant choice, one token). The range is written as two bounds, not as a list: a list of 16
numbers costs 80 tokens per episode and asks the model to filter it. Numbers have four digits
(1000-9999), so every episode of a stratum costs the same tokens, and there are enough problem
texts (about 36,000 easy, 144,000 hard) that held-out problems are new texts in both strata.

Strata (``meta["stratum"]``, drawn per problem): ``easy`` (share 1 - HARD_SHARE = 0.6), 4
candidates and 2 clues; ``hard`` (0.4), 16 candidates and 4 clues. At the rollout budget
(ROLLOUT_MAX_TOKENS = 330, compare_bisect.yaml) an easy trace (182 tokens without a redundant
episode) finishes with up to two redundant episodes; a hard trace (303 tokens without one)
finishes only with none, so most groups of 4 hard samples all fail: GRPO's advantage is 0
there, while J moves within them (a coin at two left, 1 at the answer, and whenever the lowest
candidate left is x).

``forced_answer(problem, prefix)``: from the candidates the prefix has not ruled out (the last
range it wrote, ``x is from A to B.``, else the problem's range): the lowest of them; of two, a
coin (``random.Random`` seeded by the problem text and len(prefix)); the one, once one is left.
So a forced answer is a copy of a number the prefix wrote, and J at a cut is 0 or 1 except with
two left (1/2); over problems it is 1/(candidates left) on average, as in the prereg draft
(x is uniform over the range that is left). Why not the draft's uniform guess among all left:
its J is a binomial fraction of the 8 forced answers at every cut, whose noise swamps steps of
1/16 to 1/4; on designed traces its progress reliability is Spearman-Brown 0.47 against the
gate's 0.8, this rule's 0.91 (``python scripts/simulate_bisect_gates.py [--rule uniform]``).

``mechanism(problem, completion)`` -> ``{"episodes": n, "redundant": k}``: n R1 episodes, k of
them applying a clue (``clue N:``) and no clue not already applied earlier in the completion.
The regime's mechanism metric is the redundant fraction, sum(k) / sum(n) over held-out samples.

Design fractions (:func:`design_fractions`, over ``make_problems("bisect", 4000, seed=0)``,
trace i with ``seed=i``; designed J as ``forced_answer`` gives it; tokens = characters + EOS):

| traces | problems | episodes | redundant fraction | median tokens | finished within 330 tokens | median J before -> after episodes 1, 2, 3 (cut at the budget) |
|---|---|---|---|---|---|---|
| easy | 2370 | 3.54 | 0.434 | 242 | 0.750 | 0.00 -> 0.50, 0.50 -> 0.50, 0.50 -> 1.00 |
| hard | 1630 | 6.92 | 0.422 | 483 | 0.086 | 0.00 -> 0.00, 0.00 -> 0.00, 0.00 -> 0.00 |
| all | 4000 | 4.91 | 0.427 | 362 | 0.479 | 0.00 -> 0.50, 0.50 -> 0.50, 0.50 -> 0.50 |

Hard problems whose 4 designed traces all overrun 330 tokens: 0.680.

With the exact J the median sits on the 1/2 plateau after episode 1 (easy traces at two left,
or at one left, hard ones at 0): it rises in episode 1 only. The gate reads J sampled from 8
forced answers, whose spread moves the median up as traces move from 1/2 to 1: in the
simulation of that measurement on designed traces (scripts/simulate_bisect_gates.py, 500
held-out problems x 4) it rises in 3 of the first 3 episodes, and in 2 of 3 for one of four
problem seeds; pass@1 0.49, J at the empty prefix 0.17, Spearman-Brown 0.90, hard groups all
failing 0.66, redundant fraction 0.38.

Where this departs from the prereg draft (docs/prereg/doubt_bisect.md, Deviations 2026-12-05):
a range narrowed by threshold clues stated in the problem, not a written list filtered by rules;
4 and 16 candidates, not 8 and 64; the forced answer above, not a uniform guess; a redundant
episode re-applies the clue just applied.
"""

from __future__ import annotations

import random
import re
import statistics
import warnings

from mrt_engine.episodes import SingleEpisodeWarning, segment
from mrt_engine.grading import verify_integer

from .base import (
    PARAGRAPH,
    Problem,
    Task,
    final_line,
    make_problems,
    register,
    solution_trace,
)

STRATA = {"easy": 4, "hard": 16}  # stratum -> number of candidates (a power of two)
HARD_SHARE = 0.4
REPEAT_RATE = 0.45     # after each clue, the next episode re-applies it (again with this rate)
MAX_REPEATS = 3        # at most this many redundant episodes in a row
ROLLOUT_MAX_TOKENS = 330  # compare_bisect.yaml rollout.max_tokens (the design numbers below are at it)
LOWEST, HIGHEST = 1000, 9999  # four-digit numbers only: the same token cost in every trace

# The texts forced_answer and mechanism read (fixed with the preregistration: they are the
# regime's mechanism metric, so a change here is a Deviations entry, not a refactor).
_RANGE = re.compile(r"x is from (\d+) to (\d+)\.")
_APPLY = re.compile(r"\b[Cc]lue (\d+):")
_PROBLEM_RANGE = re.compile(r"numbers from (\d+) to (\d+)\.")


def _clues(lo: int, hi: int, x: int) -> list[str]:
    """The binary-search clues that take [lo, hi] (a power of two long) to x, in order."""
    clues = []
    while lo < hi:
        mid = (lo + hi + 1) // 2  # first number of the upper half
        if x >= mid:
            clues.append(f"x >= {mid}.")
            lo = mid
        else:
            clues.append(f"x <= {mid - 1}.")
            hi = mid - 1
    return clues


def _generate(rng: random.Random, difficulty: str):
    # difficulty does not change the problem: both strata are drawn at every level
    stratum = "hard" if rng.random() < HARD_SHARE else "easy"
    n = STRATA[stratum]
    lo = rng.randint(LOWEST, HIGHEST - n + 1)
    hi = lo + n - 1
    x = rng.randint(lo, hi)
    clues = " ".join(f"Clue {i}: {c}" for i, c in enumerate(_clues(lo, hi, x), 1))
    text = f"Find x among the {n} numbers from {lo} to {hi}. {clues}"
    return text, str(x), {"stratum": stratum, "lo": lo, "hi": hi}


def _apply(lo: int, hi: int, clue: str) -> tuple[int, int]:
    op, value = clue[2:4], int(clue[5:-1])
    return (max(lo, value), hi) if op == ">=" else (lo, min(hi, value))


def trace_text(lo: int, hi: int, x: int, repeats: list[int]) -> str:
    """The warm-start trace for range [lo, hi] and answer x, re-applying clue i (from 1)
    ``repeats[i - 1]`` more times right after applying it."""
    clues = _clues(lo, hi, x)
    if len(repeats) != len(clues):
        raise ValueError(f"repeats has {len(repeats)} entries; the range {lo}-{hi} has {len(clues)} clues")
    paragraphs = [f"x is from {lo} to {hi}.", f"{hi - lo + 1} left."]
    for i, clue in enumerate(clues, 1):
        lo, hi = _apply(lo, hi, clue)
        state = [f"x is from {lo} to {hi}.", f"{hi - lo + 1} left."]
        paragraphs += [f"Clue 1: {clue}" if i == 1 else f"Wait, clue {i}: {clue}", *state]
        for _ in range(repeats[i - 1]):  # the same episode again: nothing new is ruled out
            paragraphs += [f"Wait, clue {i}: {clue}", *state]
    paragraphs.append(final_line(str(x)))
    return PARAGRAPH.join(paragraphs)


def _draw_repeats(rng: random.Random, num_clues: int) -> list[int]:
    repeats = []
    for _ in range(num_clues):
        k = 0
        while k < MAX_REPEATS and rng.random() < REPEAT_RATE:
            k += 1
        repeats.append(k)
    return repeats


def _trace(problem: Problem, rng: random.Random, num_mistakes: int) -> str:
    lo, hi = problem.meta["lo"], problem.meta["hi"]
    return trace_text(lo, hi, int(problem.answer), _draw_repeats(rng, (hi - lo + 1).bit_length() - 1))


def _problem_range(problem: Problem) -> tuple[int, int]:
    match = _PROBLEM_RANGE.search(problem.problem)
    if match is None:
        raise ValueError(f"problem {problem.id}: no 'from A to B.' range in its text {problem.problem[:80]!r}")
    return int(match.group(1)), int(match.group(2))


def candidates_left(problem: Problem, prefix: str) -> tuple[int, int]:
    """(lo, hi): the last range ``prefix`` wrote that lies inside the problem's range, else the
    problem's range. Read from the texts only (never ``problem.answer``)."""
    lo, hi = _problem_range(problem)
    for match in reversed(list(_RANGE.finditer(prefix))):
        a, b = int(match.group(1)), int(match.group(2))
        if lo <= a <= b <= hi:
            return a, b
    return lo, hi


def _forced_answer(problem: Problem, prefix: str) -> str:
    lo, hi = candidates_left(problem, prefix)
    if hi - lo + 1 == 2:
        # a coin between the last two, seeded by the problem text (not its id or answer) and the
        # prefix length: the same text and prefix give the same guess
        return str(random.Random(f"bisect:{problem.problem}:{len(prefix)}").choice((lo, hi)))
    return str(lo)  # the lowest candidate left (the one candidate, once one is left)


def _answer_found(problem: Problem, prefix: str) -> bool:
    lo, hi = candidates_left(problem, prefix)
    return lo == hi == int(problem.answer)


def _mechanism(problem: Problem, completion: str) -> dict[str, float]:
    applied: set[str] = set()
    with warnings.catch_warnings():  # a sampled completion may hold a keyword too early to cut: counted as is
        warnings.simplefilter("ignore", SingleEpisodeWarning)
        episodes = segment(completion, "r1") if completion else []
    redundant = 0
    for episode in episodes:
        numbers = {m.group(1) for m in _APPLY.finditer(episode.text)}
        if numbers and numbers <= applied:  # applies clues, all of them applied before
            redundant += 1
        applied.update(numbers)
    return {"episodes": float(len(episodes)), "redundant": float(redundant)}


BISECT = register(
    Task(
        name="bisect",
        description="find x in a range: each clue halves it, some episodes re-apply a clue; integer answer",
        generate=_generate,
        trace=_trace,
        max_mistakes=lambda problem: 0,
        verifier=verify_integer,
        draw_mistakes=lambda problem, rng: 0,
        answer_found=_answer_found,
        forced_answer=_forced_answer,
        mechanism=_mechanism,
    )
)


# -- the design, computed from the generator ------------------------------------------------
def exact_j(problem: Problem, trace: str) -> list[float]:
    """Designed J at the empty prefix and after each R1 episode but the last, with forced answers
    drawn as ``forced_answer`` draws them: 1 when one is left, 1/2 when two are, else 1 or 0 as
    the lowest candidate left is or is not x."""
    cuts = [0] + [e.char_end for e in segment(trace, "r1")[:-1]]
    x = int(problem.answer)
    out = []
    for c in cuts:
        lo, hi = candidates_left(problem, trace[:c])
        out.append(1.0 if lo == hi else 0.5 if hi - lo + 1 == 2 else float(lo == x))
    return out


def median_steps(curves: list[list[float]], num_episodes: int = 3) -> list[tuple[float, float]]:
    """For episode k = 1..num_episodes, (median J at cut k - 1, median J at cut k) over the curves
    that reach cut k (the warm-start gate's reading: median J rises in episode k when the second
    is larger); (nan, nan) where none does."""
    out = []
    for k in range(1, num_episodes + 1):
        reach = [j for j in curves if len(j) > k]
        out.append((statistics.median(j[k - 1] for j in reach), statistics.median(j[k] for j in reach))
                   if reach else (float("nan"), float("nan")))
    return out


def design_fractions(num_problems: int = 4000, *, seed: int = 0, max_tokens: int = ROLLOUT_MAX_TOKENS) -> dict:
    """The designed traces' numbers, per stratum and overall: redundant fraction, episodes per
    trace, tokens per trace (median, and the share within ``max_tokens``, i.e. finished at the
    budget), median designed J before and after each of the first 3 episodes (traces cut at the
    budget, see :func:`median_steps`), and the share of hard problems whose 4 designed
    traces (seeds 4i..4i+3) all overrun the budget."""
    problems = make_problems("bisect", num_problems, seed=seed)
    rows: dict[str, dict[str, list]] = {s: {"tokens": [], "episodes": [], "redundant": [], "j": []} for s in STRATA}
    all_fail = []
    for i, p in enumerate(problems):
        row = rows[p.meta["stratum"]]
        trace = solution_trace(p, seed=i)
        mech = _mechanism(p, trace)
        row["tokens"].append(len(trace) + 1)  # byte tokenizer: one token per character, plus EOS
        row["episodes"].append(mech["episodes"])
        row["redundant"].append(mech["redundant"])
        row["j"].append(exact_j(p, trace[:max_tokens - 1]))  # as sampled: cut at the budget (EOS aside)
        if p.meta["stratum"] == "hard":
            all_fail.append(all(len(solution_trace(p, seed=4 * i + k)) + 1 > max_tokens for k in range(4)))
    out: dict = {}
    for name, row in [*rows.items(), ("all", {k: rows["easy"][k] + rows["hard"][k] for k in rows["easy"]})]:
        n = len(row["tokens"])
        out[name] = {
            "problems": n,
            "redundant_fraction": sum(row["redundant"]) / sum(row["episodes"]),
            "episodes": sum(row["episodes"]) / n,
            "median_tokens": statistics.median(row["tokens"]),
            "within_budget": sum(t <= max_tokens for t in row["tokens"]) / n,
            "median_j": median_steps(row["j"]),
        }
    out["hard_all_fail"] = sum(all_fail) / len(all_fail)
    out["max_tokens"] = max_tokens
    return out


def design_table(d: dict) -> str:
    """The docstring's table of :func:`design_fractions`."""
    head = ("| traces | problems | episodes | redundant fraction | median tokens | finished within "
            f"{d['max_tokens']} tokens | median J before -> after episodes 1, 2, 3 (cut at the budget) |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for name in (*STRATA, "all"):
        r = d[name]
        lines.append(f"| {name} | {r['problems']} | {r['episodes']:.2f} | {r['redundant_fraction']:.3f} | "
                     f"{r['median_tokens']:.0f} | {r['within_budget']:.3f} | "
                     + ", ".join(f"{a:.2f} -> {b:.2f}" for a, b in r["median_j"]) + " |")
    lines.append(f"\nHard problems whose 4 designed traces all overrun {d['max_tokens']} tokens: {d['hard_all_fail']:.3f}.")
    return "\n".join(lines)
