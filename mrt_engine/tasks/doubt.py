"""`doubt`: guess and check like `digit`, but a trace that finds x sometimes talks itself out of it.

The first regime built so that progress credit and outcome credit disagree (issue 25 item 3,
preregistered in docs/prereg/doubt_bisect.md, "Regime `doubt`"). The problems are `digit`'s
(``Find the digit x such that 527 * x ends in 5. We need 5.``), and a warm-start trace tries
digits as there (k = 0-9 wrong tries, P(k) proportional to 0.8^k, one try per episode) until
``Yes, x = t.``. Where a `digit` trace re-checks t, a `doubt` trace instead

- closes on t (``The final answer is \\boxed{t}.``) with probability 1 - DOUBT_RATE, or
- doubts, in an episode that misreads the target digit and takes the candidate that reading
  gives (``Wait, maybe I misread the target: we need 4.`` / ``3 * 8 = 24, need 4.`` /
  ``So x = 8.``), and then with probability RECOVERY_RATE recovers in one more episode
  (``But wait, the target is 1.`` / ``3 * 7 = 21, need 1.`` / ``Back to x = 7.``) and closes on
  t, else closes on the wrong candidate (the trace fails: `Task.may_end_wrong`).

``forced_answer`` is the state of the work: the candidate the prefix holds (t after the find,
the wrong candidate after a doubt, t again after the recovery), else a seeded guess among the
digits no failed try has ruled out. So J is 1 after the find, falls to 0 in a doubt episode and
rises again in a recovery: J falls inside traces that still succeed, and rises (at the find)
inside traces that then fail, which is what progress credit needs to say something the outcome
does not (docs/method.md section 10). Outcome credit pays a recovered trace in full, its doubt
included; progress credit charges the doubt episode its fall.

Designed J profile (``design_profile`` over ``make_problems("doubt", 4000, seed=0)``, trace i
with ``seed=i``; designed J at a cut is 1 when the held candidate is the answer, 0 when another,
1/(digits left) for a guess; a fall (rise) is a drop (gain) of at least 0.5 from one forced cut
to a later one, the empty prefix included, as `mrt-engine gates` reads the prereg's gate 2):

| traces | successful with a fall | failed with a rise | pass@1 | doubt | unrecovered | episodes |
|---|---|---|---|---|---|---|
| whole | 0.330 | 1.000 | 0.832 | 0.443 | 0.168 | 4.50 |
| cut at 384 tokens (the rollout budget) | 0.293 | 0.578 | 0.645 | 0.370 | 0.181 | 4.29 |

The gate asks at least 0.20 and 0.10. J at the empty prefix is 0.1 by design (a guess among 10
digits), so gate 4 (J there at least 0.1 below pass@1) needs the warm start's pass@1 at 0.2 or
more. Cut at the budget, a trace that doubts and recovers is among the longest (321 tokens after
2 wrong tries, 375 after 3), and the failed traces include the ones cut off before the find
(no rise).

Where this departs from the prereg draft (docs/prereg/doubt_bisect.md, Deviations, 2026-12-05):
DOUBT_RATE 0.45 and RECOVERY_RATE 0.6 instead of 0.35 and one half, which give 0.219 successful
traces with a fall on whole traces and 0.188 at the budget (below the gate's 0.20); a doubt
misreads the target digit (no switch to an arbitrary candidate); no re-checks after the find.
"""

from __future__ import annotations

import random
import re

from mrt_engine.episodes import segment
from mrt_engine.grading import extract_boxed, verify_integer

from .base import PARAGRAPH, Problem, Task, final_line, register, solution_trace
from .digit import _answer_found, _draw_mistakes, _generate, _product, _try_text

DOUBT_RATE = 0.45      # a trace that found x doubts it
RECOVERY_RATE = 0.6    # a doubt is recovered in a later episode
DOUBT_OPENER = "Wait, maybe I misread the target"

# The paragraphs forced_answer and mechanism read (fixed with the preregistration: they are the
# regime's mechanism metric, so a change here is a Deviations entry, not a refactor).
_TRY = re.compile(r"(?:Wait, t|T)ry (\d)\.")            # a try opens: "Try 3." / "Wait, try 3."
_FAILED = re.compile(r"No, it ends in \d\.")             # the open try failed: that digit is ruled out
_HOLD = re.compile(r"(?:Yes, x = |So x = |Back to x = )(\d)\.")  # a candidate is held
_FIND = re.compile(r"Yes, x = (\d)\.")


def solve(a: int, c: int) -> int:
    """The one digit t with a * t ending in c (a ends in 3, 7 or 9)."""
    return next(t for t in range(10) if a * t % 10 == c)


def trace_text(a: int, c: int, x: int, whole: bool, wrong: list[int], misread: int | None = None,
               recover: bool = False) -> str:
    """The warm-start trace with these draws: the ``wrong`` tries, the find, a doubt that reads
    the target as ``misread`` (None: no doubt), a recovery, then the final line."""
    paragraphs: list[str] = []
    for i, t in enumerate([*wrong, x]):
        paragraphs += _try_text(a, c, t, first=i == 0, whole=whole)
    held = x
    if misread is not None:
        if misread == c:
            raise ValueError(f"misread={misread} is the target itself; a doubt reads another digit")
        held = solve(a, misread)
        paragraphs += [f"{DOUBT_OPENER}: we need {misread}.", _product(a, held, misread, whole), f"So x = {held}."]
        if recover:
            paragraphs += [f"But wait, the target is {c}.", _product(a, x, c, whole), f"Back to x = {x}."]
            held = x
    paragraphs.append(final_line(str(held)))
    return PARAGRAPH.join(paragraphs)


def _trace(problem: Problem, rng: random.Random, num_mistakes: int) -> str:
    a, c, x, whole = problem.meta["a"], problem.meta["c"], int(problem.answer), problem.meta["whole"]
    wrong = rng.sample([d for d in range(10) if d != x], num_mistakes)
    misread, recover = None, False
    if rng.random() < DOUBT_RATE:
        misread = rng.choice([d for d in range(10) if d != c])
        recover = rng.random() < RECOVERY_RATE
    return trace_text(a, c, x, whole, wrong, misread, recover)


def held_state(prefix: str) -> tuple[str | None, list[str]]:
    """(the candidate ``prefix`` holds or None, the digits no failed try in it has ruled out).

    Whole paragraphs only: a cut inside ``Yes, x = 7.`` has not committed to 7 yet."""
    held, open_try, ruled_out = None, None, set()
    for paragraph in prefix.split(PARAGRAPH):
        if m := _TRY.fullmatch(paragraph):
            open_try = m.group(1)
        elif _FAILED.fullmatch(paragraph) and open_try is not None:
            ruled_out.add(open_try)
            open_try = None
        elif m := _HOLD.fullmatch(paragraph):
            held = m.group(1)
    left = [str(d) for d in range(10) if str(d) not in ruled_out]
    return held, left or [str(d) for d in range(10)]


def _forced_answer(problem: Problem, prefix: str) -> str:
    held, left = held_state(prefix)
    if held is not None:
        return held
    # Seeded by a string (random.Random hashes it with sha512, not Python's salted hash), so the
    # guess is the same in every process; never from problem.answer.
    return random.Random(f"doubt:{problem.id}:{len(prefix)}").choice(left)


def _mechanism(problem: Problem, completion: str) -> dict[str, float]:
    """The preregistered mechanism metric of one completion.

    doubt: after the first ``Yes, x = t.`` a paragraph opens a doubt (``Wait, maybe I misread
    the target``) or holds another candidate than t. unrecovered_doubt: a doubt, and the last
    ``\\boxed{...}`` is not the reference (a missing or unreadable one counts as not).
    """
    find = _FIND.search(completion)
    after = completion[find.end():] if find else ""
    opens = any(p.startswith(DOUBT_OPENER) for p in after.split(PARAGRAPH))
    switches = any(m.group(1) != find.group(1) for m in _HOLD.finditer(after)) if find else False
    doubt = opens or switches
    return {"doubt": float(doubt), "unrecovered_doubt": float(doubt and not ends_right(problem, completion))}


def ends_right(problem: Problem, text: str) -> bool:
    """Whether the last boxed answer of `text` is the reference (False when none or unreadable)."""
    boxed = extract_boxed(text)
    try:
        return boxed is not None and verify_integer(boxed, problem.answer)
    except ValueError:
        return False


def designed_j(problem: Problem, prefix: str) -> float:
    """The chance that ``forced_answer`` is right after ``prefix``, over its guess: 1 or 0 for a
    held candidate, 1 / (digits left) for a guess that can still hit the answer."""
    held, left = held_state(prefix)
    if held is not None:
        return float(held == problem.answer)
    return 1.0 / len(left) if problem.answer in left else 0.0


def design_profile(problems: list[Problem], *, max_tokens: int | None = None, jump: float = 0.5) -> dict:
    """The designed J profile of the warm-start traces (trace i of ``problems`` with ``seed=i``).

    With ``max_tokens`` each trace is cut at that many characters (one byte token each, as the
    demo tokenizer counts): what a rollout at that budget would hold. A trace succeeds when its
    last boxed answer is the reference. Forced cuts are the empty prefix and every episode end but
    the last (R1 segmenter); a fall (rise) is a drop (gain) of designed J of at least ``jump``
    from one forced cut to any later one, as `mrt-engine gates` reads the prereg. Returns the
    shares its gate 2 reads, pass@1, the mechanism rates and episodes per trace.
    """
    if not problems:
        raise ValueError("design_profile needs at least one problem")
    rows = []
    for i, problem in enumerate(problems):
        trace = solution_trace(problem, seed=i)
        if max_tokens is not None:
            trace = trace[:max_tokens]
        episodes = segment(trace, "r1")
        j = [designed_j(problem, trace[:cut]) for cut in [0] + [e.char_end for e in episodes[:-1]]]
        falls = [a - b for k, a in enumerate(j) for b in j[k + 1:]]  # every pair of forced cuts a < b
        mech = _mechanism(problem, trace)
        success = ends_right(problem, trace)
        rows.append((success, any(f >= jump for f in falls), any(-f >= jump for f in falls), len(episodes), mech))
    wins = [r for r in rows if r[0]]
    fails = [r for r in rows if not r[0]]
    return {
        "traces": len(rows),
        "success_with_fall": sum(r[1] for r in wins) / len(wins) if wins else float("nan"),
        "failed_with_rise": sum(r[2] for r in fails) / len(fails) if fails else float("nan"),
        "pass@1": len(wins) / len(rows),
        "doubt": sum(r[4]["doubt"] for r in rows) / len(rows),
        "unrecovered_doubt": sum(r[4]["unrecovered_doubt"] for r in rows) / len(rows),
        "episodes": sum(r[3] for r in rows) / len(rows),
    }


DOUBT = register(
    Task(
        name="doubt",
        description="guess and check with doubts: the digit x with a * x ending in c, found, sometimes "
                    "talked out of and sometimes recovered; integer answer",
        generate=_generate,
        trace=_trace,
        max_mistakes=lambda problem: 9,
        verifier=verify_integer,
        draw_mistakes=_draw_mistakes,
        answer_found=_answer_found,
        forced_answer=_forced_answer,
        mechanism=_mechanism,
        may_end_wrong=True,
    )
)
