"""Synthetic task families with exact verifiers, solution traces, and data set loaders."""

from .base import (
    ALLOWED_CHARS,
    DIFFICULTIES,
    TASKS,
    Problem,
    Task,
    get_task,
    make_problems,
    register,
    solution_trace,
    verifier_for,
)
from .loaders import load_problems, save_problems
from . import bisect, chain, countdown, digit, doubt, search  # noqa: F401  (register the task families)

__all__ = [
    "ALLOWED_CHARS",
    "DIFFICULTIES",
    "TASKS",
    "Problem",
    "Task",
    "get_task",
    "load_problems",
    "make_problems",
    "register",
    "save_problems",
    "solution_trace",
    "verifier_for",
]
