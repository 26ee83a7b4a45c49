"""Answer extraction and grading: `\\boxed{}` extraction, math equivalence, exact verifiers.

`grade(response, reference)` never raises on a malformed model response: a missing,
empty, over-long, unreadable or too-slow answer grades 0 with a short `reason` string
(see `REASONS`). It does raise on programming errors (a response that is not a string).

Equivalence goes through math-verify (`parse` + `verify`) with a normalised string
comparison first (fast, no sympy) and as the fallback when math-verify cannot read an
answer. math-verify's own timeouts use `signal.alarm`, which works only in the main thread
and only in whole seconds; we switch them off and guard the whole check ourselves:
`signal.setitimer` (float seconds) in the main thread, and a watchdog thread elsewhere
(the grade comes back on time; the abandoned check is asked to stop through
`PyThreadState_SetAsyncExc`, which takes effect at its next Python bytecode). Neither
guard can interrupt one long C call (sympy computing 9^(9^9) as an integer holds the GIL),
so `too_costly` screens such answers out first and they grade 0 as "too costly to check".
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

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


# ---------------------------------------------------------------- extraction

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def _last_box_command(text: str) -> int:
    """Index just past the last `\\boxed` / `\\fbox` command name, or -1."""
    best = -1
    for cmd in _BOX_COMMANDS:
        start = len(text)
        while True:
            i = text.rfind(cmd, 0, start)
            if i < 0:
                break
            end = i + len(cmd)
            # `\boxedfoo` is another macro, not \boxed.
            if end < len(text) and text[end].isalpha():
                start = i
                continue
            best = max(best, end)
            break
    return best


def extract_boxed(text: str) -> str | None:
    """Content of the LAST `\\boxed{...}` or `\\fbox{...}` in `text`, braces balanced.

    Escaped braces (`\\{`, `\\}`) do not open or close groups, so `\\boxed{\\{1,2\\}}` gives
    `\\{1,2\\}`. The space form `\\boxed 5` (used in the MATH data set) gives `5`. An unclosed
    last box gives None: the answer was cut off, and an earlier box is not the final answer.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_boxed expects a str, got {type(text).__name__}")
    pos = _last_box_command(text)
    if pos < 0:
        return None
    n = len(text)
    i = pos
    while i < n and text[i] == " ":
        i += 1
    if i >= n:
        return None
    if text[i] != "{":
        if i == pos:  # `\boxed5` is not a box either.
            return None
        m = re.match(r"[^\s$]+", text[i:])
        return m.group(0).rstrip(".") if m else None
    depth = 0
    j = i
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2  # skip the escaped character (\{, \}, \\)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
        j += 1
    return None


# ---------------------------------------------------------------- normalisation

_SPACING = re.compile(r"\\[,;:! ]|\\left|\\right|\\displaystyle|~")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\{([^{}]*)\}")


def normalize_answer(text: str) -> str:
    """Cheap canonical form for string comparison: no spacing macros, no `$`, no blanks.

    `\\dfrac`/`\\tfrac` become `\\frac`, `\\text{..}` wrappers are dropped, a trailing period
    goes, case is folded. Used before math-verify (equal strings need no sympy) and as the
    fallback when math-verify cannot read an answer.
    """
    s = text.strip().strip("$")
    s = _SPACING.sub("", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _TEXT_WRAP.sub(r"\1", s)
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    return s.lower()


# ---------------------------------------------------------------- timeout guard


class AnswerCheckTimeout(BaseException):
    """Raised inside a guarded check when it runs past its time.

    A BaseException on purpose: math-verify and sympy catch `Exception` broadly, and the
    timeout must get through them.
    """


def _raise_timeout(signum, frame):
    raise AnswerCheckTimeout()


def _can_use_itimer() -> bool:
    # Only the main thread receives signals, and we must not clobber a timer someone else
    # armed (pytest-timeout, a caller's own alarm).
    if threading.current_thread() is not threading.main_thread():
        return False
    if not hasattr(signal, "setitimer"):
        return False
    if signal.getsignal(signal.SIGALRM) is None:  # a handler set from C: cannot restore it
        return False
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def _interrupt_thread(worker: threading.Thread) -> None:
    # Best effort: raise AnswerCheckTimeout inside the worker at its next bytecode, so an
    # abandoned sympy computation stops instead of burning a core (CPython API; a long
    # call inside C code still finishes first).
    import ctypes

    if worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(AnswerCheckTimeout)
        )


def run_with_timeout(fn: Callable[[], object], timeout: float | None):
    """fn() or AnswerCheckTimeout after `timeout` seconds (None or <= 0: no limit)."""
    if timeout is None or timeout <= 0:
        return fn()
    if _can_use_itimer():
        old_handler = signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return fn()
        finally:
            try:  # the alarm may fire right here; the handler is restored regardless
                signal.setitimer(signal.ITIMER_REAL, 0.0)
            finally:
                signal.signal(signal.SIGALRM, old_handler)
    box: dict[str, object] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, name="mrt-answer-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _interrupt_thread(worker)
        raise AnswerCheckTimeout()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


# ---------------------------------------------------------------- cost screen

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


# ---------------------------------------------------------------- math-verify


class _DropTimeoutWarning(logging.Filter):
    # math-verify warns once that its timeout is off; we guard it ourselves.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutWarning())


def _math_verify_compare(reference: str, candidate: str) -> str:
    """'equal' / 'different' / 'unparseable' (candidate not readable as math)."""
    from math_verify import parse, verify

    gold = parse("\\boxed{" + reference + "}", parsing_timeout=None)
    pred = parse("\\boxed{" + candidate + "}", parsing_timeout=None)
    if not gold or not pred:
        return "unparseable" if not pred else "different"
    if verify(gold, pred, timeout_seconds=None):
        return "equal"
    # parse() falls back to the raw string when sympy fails: no math object -> unreadable.
    if all(isinstance(p, str) for p in pred):
        return "unparseable"
    return "different"


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
    # Import outside the guard: the first import of sympy takes ~1 s and is not the
    # answer's fault.
    import math_verify  # noqa: F401

    try:
        return run_with_timeout(lambda: _math_verify_compare(reference, candidate), timeout)
    except AnswerCheckTimeout:
        return "timeout"


def is_equiv(a: str, b: str, *, timeout: float | None = 5.0) -> bool:
    """True when answer `b` is mathematically equivalent to reference `a`.

    Not symmetric in corner cases (math-verify treats `a` as the gold answer, e.g. for
    `x=3` against `3`). Parse failures fall back to normalised string equality; a check
    that runs past `timeout` seconds counts as not equivalent.
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, str):
            raise TypeError(f"is_equiv: {name} must be a str, got {type(value).__name__}")
    return _check(a, b, timeout) == "equal"


# ---------------------------------------------------------------- surface forms

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


# ---------------------------------------------------------------- exact verifiers

_INT = re.compile(r"[+-]?\d+(?:\.0*)?")


def _strip_answer(text: str) -> str:
    s = _TEXT_WRAP.sub(r"\1", text.strip().strip("$"))
    s = _SPACING.sub("", s)
    return re.sub(r"\s+", "", s).rstrip(".")


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
