"""Answer extraction and grading: `\\boxed{}` extraction, math equivalence, exact verifiers.

- text.py: `extract_boxed`, `normalize_answer`.
- grade.py: `grade`, `grade_batch`, `is_equiv`, `Grade` and the reasons it carries.
- worker.py / _child.py: math-verify in a worker process under a hard time limit.
- screen.py: `too_costly`, the in-process screen for giant integer computations.
- verifiers.py: exact verifiers and `answer_forms`.
- guard.py: `run_with_timeout`, the in-process (soft) time guard.
"""

from .grade import (
    CORRECT,
    EMPTY,
    INCORRECT,
    MAX_ANSWER_CHARS,
    NO_BOXED,
    REASONS,
    TIMEOUT,
    TOO_COSTLY,
    TOO_LONG,
    UNPARSEABLE,
    Grade,
    Verifier,
    grade,
    grade_batch,
    is_equiv,
)
from .guard import AnswerCheckTimeout, run_with_timeout
from .screen import too_costly
from .text import extract_boxed, normalize_answer
from .verifiers import answer_forms, parse_integer, parse_integer_set, verify_integer, verify_integer_set
from .worker import WorkerError, num_workers, shutdown_workers

__all__ = [
    "CORRECT", "EMPTY", "INCORRECT", "MAX_ANSWER_CHARS", "NO_BOXED", "REASONS", "TIMEOUT", "TOO_COSTLY", "TOO_LONG",
    "UNPARSEABLE", "Grade", "Verifier", "grade", "grade_batch", "is_equiv", "AnswerCheckTimeout",
    "run_with_timeout", "too_costly", "extract_boxed", "normalize_answer", "answer_forms", "parse_integer",
    "parse_integer_set", "verify_integer", "verify_integer_set", "WorkerError", "num_workers", "shutdown_workers",
]
