"""The cost screen: answers whose check would be one giant integer computation grade 0 as
"too costly to check" at once, without starting math-verify (a fast path; the worker's
hard limit, worker.py, catches what the screen misses)."""

from __future__ import annotations

import re

_BIG_FACTORIAL = re.compile(r"\d{5,}\s*!")


def _exponents(text: str):
    """Yield the exponent text after each `^` / `**`: a `{}` or `()` group, or one token."""
    for m in re.finditer(r"\^|\*\*", text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] in "{(":
            opener, closer = text[i], "}" if text[i] == "{" else ")"
            depth, j = 0, i
            while j < len(text):
                if text[j] == opener:
                    depth += 1
                elif text[j] == closer:
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            yield text[i + 1 : j]
        else:
            tok = re.match(r"[+-]?(?:\d+|\\?[A-Za-z]+|.)", text[i:])
            yield tok.group(0) if tok else ""


def too_costly(answer: str) -> bool:
    """Answers whose check can hang inside one C call (a giant integer power), where no
    in-process timeout can interrupt it: power towers (`9^{9^{9^9}}`), exponents of six or
    more digits, factorials of five-digit numbers. Screened out before sympy sees them."""
    if _BIG_FACTORIAL.search(answer):
        return True
    for exp in _exponents(answer):
        if "^" in exp or "**" in exp or re.search(r"\d{6,}", exp):
            return True
    return False

