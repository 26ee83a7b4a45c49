"""Exact verifiers (integers, sets of integers) and the surface forms of a numeric answer."""

from __future__ import annotations

import re

from .text import _strip_answer

_FRACTION = re.compile(r"([+-]?)(?:\\[dt]?frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))")
_DECIMAL = re.compile(r"[+-]?\d*\.\d+|[+-]?\d+")


def answer_forms(answer: str) -> list[str]:
    """Common surface forms of a numeric answer, the given one first, for estimators
    that sum the probability of each accepted form (scoring mode, docs/method.md 3).

    Integers and rationals get `a/b`, `\\frac{a}{b}`, `\\dfrac{a}{b}` and a terminating
    decimal; anything else comes back alone. Every form is `is_equiv` to `answer`.
    """
    from fractions import Fraction

    s = _strip_answer(answer)
    m = _FRACTION.fullmatch(s)
    if m:
        sign, num, den = m.group(1), m.group(2) or m.group(4), m.group(3) or m.group(5)
        if int(den) == 0:
            return [answer]
        value = Fraction(int(num), int(den)) * (-1 if sign == "-" else 1)
    elif _DECIMAL.fullmatch(s):
        value = Fraction(s)
    else:
        return [answer]
    forms = [answer]
    if value.denominator == 1:
        forms.append(str(value.numerator))
    else:
        p, q = abs(value.numerator), value.denominator
        neg = "-" if value < 0 else ""
        forms += [f"{neg}{p}/{q}", f"{neg}\\frac{{{p}}}{{{q}}}", f"{neg}\\dfrac{{{p}}}{{{q}}}"]
        q2, powers = q, []
        for f in (2, 5):
            count = 0
            while q2 % f == 0:
                q2 //= f
                count += 1
            powers.append(count)
        if q2 == 1:  # terminating decimal: at most len(p) + max(powers) digits, exact
            from decimal import Decimal, localcontext

            with localcontext() as ctx:
                ctx.prec = len(str(p)) + max(powers) + 2
                forms.append(f"{neg}{format(Decimal(p) / Decimal(q), 'f')}")
    seen, out = set(), []
    for f in forms:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out



_INT = re.compile(r"[+-]?\d+(?:\.0*)?")


def parse_integer(text: str) -> int:
    """An integer literal (`42`, `-7`, `+3`, `12.0`); ValueError for anything else."""
    s = _strip_answer(text)
    if not _INT.fullmatch(s):
        raise ValueError(f"not an integer: {text[:50]!r}")
    return int(s.split(".")[0])


def parse_integer_set(text: str) -> frozenset[int]:
    """`{1, 2, 3}`, `\\{1,2,3\\}`, `1, 2, 3` or `\\emptyset` -> frozenset; ValueError else."""
    s = _strip_answer(text)
    if s in ("\\emptyset", "\\varnothing", "{}", "\\{\\}", "\\{}", "\u2205"):
        return frozenset()
    s = s.replace("\\{", "{").replace("\\}", "}")
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    if not s:
        return frozenset()
    return frozenset(parse_integer(part) for part in s.split(","))


def verify_integer(answer: str, reference: str) -> bool:
    """Exact integer compare; ValueError if `answer` is not an integer literal."""
    return parse_integer(answer) == parse_integer(reference)


def verify_integer_set(answer: str, reference: str) -> bool:
    """Exact set-of-integers compare (order and repeats ignored)."""
    return parse_integer_set(answer) == parse_integer_set(reference)

