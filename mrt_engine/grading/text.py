"""`\\boxed{}` extraction and the cheap normal form used for string comparison."""

from __future__ import annotations

import re

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



def _strip_answer(text: str) -> str:
    s = _TEXT_WRAP.sub(r"\1", text.strip().strip("$"))
    s = _SPACING.sub("", s)
    return re.sub(r"\s+", "", s).rstrip(".")

