"""`search`: find the one integer x in a range that meets several rules.

Natural solution: list candidates from the first rule (a remainder), try them in order,
reject one that breaks a rule, move on ("Wait, try x = ..."), and double-check the one
that works. A mistake accepts a wrong candidate through a slip in one check; the
double-check catches it and the search goes on.
"""

from __future__ import annotations

import random

from mrt_engine.grading import verify_integer

from .base import PARAGRAPH, Problem, Task, final_line, register

# difficulty -> (range width, low end range, modulus range, max rules, tries before x)
_LEVELS = {
    "easy": ((20, 30), (10, 40), (3, 6), 2, (1, 2)),
    "medium": ((40, 60), (10, 100), (3, 9), 3, (1, 3)),
    "hard": ((80, 120), (10, 300), (3, 12), 4, (2, 5)),
}


def digit_sum(x: int) -> int:
    return sum(int(d) for d in str(abs(x)))


def satisfies(x: int, rule: list) -> bool:
    kind, a, b = rule
    if kind == "mod":
        return x % a == b
    if kind == "parity":
        return x % 2 == a
    if kind == "gt":
        return x > a
    if kind == "lt":
        return x < a
    if kind == "digit_sum":
        return digit_sum(x) == a
    raise ValueError(f"unknown search rule {kind!r}")


def _rule_text(rule: list) -> str:
    kind, a, b = rule
    return {
        "mod": f"x mod {a} = {b}",
        "parity": "x is even" if a == 0 else "x is odd",
        "gt": f"x > {a}",
        "lt": f"x < {a}",
        "digit_sum": f"the digit sum of x is {a}",
    }[kind]


def _random_rule(rng: random.Random, x: int, lo: int, hi: int, mod_r) -> list:
    kind = rng.choice(["mod", "mod", "parity", "gt", "lt", "digit_sum"])
    if kind == "mod":
        m = rng.randint(*mod_r)
        return ["mod", m, x % m]
    if kind == "parity":
        return ["parity", x % 2, None]
    if kind == "gt":
        return ["gt", rng.randint(lo, max(lo, x - 1)), None]
    if kind == "lt":
        return ["lt", rng.randint(min(hi, x + 1), hi), None]
    return ["digit_sum", digit_sum(x), None]


def _solutions(lo: int, hi: int, rules: list) -> list[int]:
    return [c for c in range(lo, hi + 1) if all(satisfies(c, r) for r in rules)]


def _candidates(lo: int, hi: int, rule: list) -> list[int]:
    return [c for c in range(lo, hi + 1) if satisfies(c, rule)]


def _generate(rng: random.Random, difficulty: str):
    width_r, lo_r, mod_r, max_rules, tries_r = _LEVELS[difficulty]
    while True:  # rejection sampling; a handful of draws on average
        lo = rng.randint(*lo_r)
        hi = lo + rng.randint(*width_r)
        x = rng.randint(lo, hi)
        m = rng.randint(*mod_r)
        rules = [["mod", m, x % m]]
        cands = _candidates(lo, hi, rules[0])
        tries = cands.index(x)
        if not tries_r[0] <= tries <= tries_r[1]:
            continue
        while len(rules) < max_rules:
            rule = _random_rule(rng, x, lo, hi, mod_r)
            if not satisfies(x, rule) or rule in rules:
                continue  # e.g. "x > lo" drawn when x == lo
            if all(satisfies(c, rule) for c in cands):
                continue  # a rule that removes nothing only lengthens the problem
            rules.append(rule)
            if _solutions(lo, hi, rules) == [x]:
                break
        if _solutions(lo, hi, rules) != [x]:
            continue
        texts = [_rule_text(r) for r in rules]
        joined = " and ".join(texts) if len(texts) == 2 else (
            ", ".join(texts[:-1]) + f", and {texts[-1]}")
        text = f"Find the integer x with {lo} <= x <= {hi} such that {joined}."
        return text, str(x), {"lo": lo, "hi": hi, "rules": rules}


# ---------------------------------------------------------------- trace pieces


def _fact(c: int, rule: list) -> str:
    """A true statement of rule for a candidate that meets it (for the double-check)."""
    kind, a, b = rule
    if kind == "mod":
        return f"{c} mod {a} = {b}"
    if kind == "parity":
        return f"{c} is {'even' if a == 0 else 'odd'}"
    if kind in ("gt", "lt"):
        return f"{c} {'>' if kind == 'gt' else '<'} {a}"
    return f"{' + '.join(str(c))} = {a}"


def _check_text(c: int, rule: list, honest: bool = True) -> str:
    """One rule checked for candidate c; `honest=False` writes a slip that passes it."""
    kind, a, b = rule
    ok = satisfies(c, rule) or not honest
    mark = "good" if ok else "no"
    if kind == "mod":
        r = c % a if honest else b
        tail = "good" if r == b else f"not {b}"
        return f"{c} mod {a} = {r}, {tail}."
    if kind == "parity":
        word = ("even" if c % 2 == 0 else "odd") if honest else ("even" if a == 0 else "odd")
        return f"{c} is {word}, {mark}."
    if kind in ("gt", "lt"):
        sym = ">" if kind == "gt" else "<"
        if ok:
            return f"{c} {sym} {a}, good."
        return f"{c} is not {sym} {a}, no."
    s = digit_sum(c) if honest else a
    tail = "good" if s == a else f"not {a}"
    return f"The digit sum of {c} is {s}, {tail}."


def _solution(meta: dict) -> int:
    lo, hi, rules = meta["lo"], meta["hi"], meta["rules"]
    found = _solutions(lo, hi, rules)
    if len(found) != 1:
        raise ValueError(f"search problem has {len(found)} solutions in [{lo}, {hi}], not one")
    return found[0]


def _trace(problem: Problem, rng: random.Random, num_mistakes: int) -> str:
    lo, hi, rules = problem.meta["lo"], problem.meta["hi"], problem.meta["rules"]
    x = _solution(problem.meta)  # from meta, not the answer: base checks the two agree
    cands = _candidates(lo, hi, rules[0])
    tried = cands[: cands.index(x) + 1]
    slips = set(rng.sample(range(len(tried) - 1), num_mistakes))
    shown = ", ".join(str(c) for c in cands[:3])
    paragraphs = [f"From {_rule_text(rules[0])}, x is one of {shown}, ..."]
    openers = ["Wait, try x = {c}.", "Alternatively, try x = {c}.", "But wait, what about x = {c}?"]
    for j, c in enumerate(tried):
        paragraphs.append(f"Try x = {c}." if j == 0 else rng.choice(openers).format(c=c))
        if c == x or j in slips:
            # every rule passes (honestly for x, through a slip for a wrong candidate)
            paragraphs += [_check_text(c, r, honest=satisfies(c, r)) for r in rules[1:]]
            paragraphs.append(f"So x = {c} works.")
            bad = next((r for r in rules[1:] if not satisfies(c, r)), None)
            paragraphs.append(f"But let me double-check x = {c}.")
            if bad is None:
                facts = [_fact(c, r) for r in rules]
                paragraphs.append(", ".join(facts[:-1]) + f" and {facts[-1]}.")
                paragraphs.append(f"So x = {c} is right.")
            else:
                paragraphs.append(_check_text(c, bad))
                paragraphs.append(f"So {c} fails after all.")
        else:
            for r in rules[1:]:
                paragraphs.append(_check_text(c, r))
                if not satisfies(c, r):
                    break
            paragraphs.append(f"So {c} fails.")
    paragraphs.append(final_line(str(x)))
    return PARAGRAPH.join(paragraphs)


def _max_mistakes(problem: Problem) -> int:
    cands = _candidates(problem.meta["lo"], problem.meta["hi"], problem.meta["rules"][0])
    return cands.index(_solution(problem.meta))


SEARCH = register(
    Task(
        name="search",
        description="find the unique integer in a range meeting several rules; integer answer",
        generate=_generate,
        trace=_trace,
        max_mistakes=_max_mistakes,
        verifier=verify_integer,
    )
)
