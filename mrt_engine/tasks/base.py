"""Problem record, task registry and the seeded entry points shared by all task families."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from mrt_engine.grading import Verifier

DIFFICULTIES = ("easy", "medium", "hard")

# Characters every synthetic problem and trace is written in (a tiny model learns them
# quickly; the tokenizer never sees rare symbols).
ALLOWED_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;?!()+-*/=<>\\{}\n"
)

PARAGRAPH = "\n\n"


@dataclass
class Problem:
    """One problem. `answer` is the reference answer text; `meta` holds what a task needs
    to verify or solve it (JSON-serialisable) or, for loaded data, the row's other fields."""

    id: str
    problem: str
    answer: str
    task: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("id", "problem", "answer", "task"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(
                    f"Problem.{name} must be a str, got {type(getattr(self, name)).__name__}"
                )

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "problem": self.problem, "answer": self.answer,
                "task": self.task, "meta": self.meta}


@dataclass(frozen=True)
class Task:
    """A procedurally generated task family.

    generate(rng, difficulty) -> (problem text, answer text, meta)
    trace(problem, rng, num_mistakes) -> reasoning text (num_mistakes already capped)
    max_mistakes(problem) -> how many caught mistakes a trace of this problem can hold
    verifier(extracted, reference) -> bool, exact; ValueError for an unreadable answer
    draw_mistakes(problem, rng) -> how many mistakes a solution trace makes when the caller
        does not say; None = 0, 1 or 2 (weights 0.4 / 0.4 / 0.2)
    answer_found(problem, prefix) -> whether a trace prefix has already found the answer (the
        SFT warm start teaches a forced answer only there); None = the answer appears as a word
    forced_answer(problem, prefix) -> the answer a trace stopped after ``prefix`` would give: the
        candidate the prefix holds (the last one it committed to and has not withdrawn), else a
        guess among the answers the prefix has not ruled out, deterministic in (problem, prefix).
        With it the SFT warm start teaches a forced answer at *every* cut, so J follows the state
        of the work and can fall; it reads the reference answer only through the prefix's text.
        None = forced answers only where ``answer_found`` (the paper's setting: never a guess)
    mechanism(problem, completion) -> per-trace counts parsed from the text by code fixed before a
        comparison (e.g. ``{"doubt": 1.0, "unrecovered_doubt": 0.0}``); `mrt-engine compare` sums
        them over the held-out samples (docs/compare.md). None = the task has no mechanism metric
    may_end_wrong -> some warm-start traces end on a wrong answer by design (``doubt``: a doubt
        that is never recovered), so `solution_trace` checks only that a trace ends in a final
        line with a boxed answer; False (every other task) = it must end in the reference answer
    """

    name: str
    description: str
    generate: Callable[[random.Random, str], tuple[str, str, dict]]
    trace: Callable[[Problem, random.Random, int], str]
    max_mistakes: Callable[[Problem], int]
    verifier: Verifier
    draw_mistakes: Callable[[Problem, random.Random], int] | None = None
    answer_found: Callable[[Problem, str], bool] | None = None
    forced_answer: Callable[[Problem, str], str] | None = None
    mechanism: Callable[[Problem, str], dict[str, float]] | None = None
    may_end_wrong: bool = False


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; registered tasks: {sorted(TASKS)}")
    return TASKS[name]


def verifier_for(problem: Problem) -> Verifier | None:
    """The exact verifier of a synthetic problem's task; None (math equivalence) for
    loaded data sets. Pass it to `grade(..., verifier=...)`."""
    task = TASKS.get(problem.task)
    return task.verifier if task is not None else None


def make_problems(task: str, n: int, *, seed: int, difficulty: str = "easy") -> list[Problem]:
    """`n` problems of `task`, reproducible from `seed`.

    Problem i depends only on (task, difficulty, seed, i), so the first k problems of a
    larger batch are the k problems of a smaller one. Duplicates are possible (small
    spaces at the easy level); use different seeds for train and eval and dedupe on
    `problem` if overlap matters.
    """
    spec = get_task(task)
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {DIFFICULTIES}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    problems = []
    for i in range(n):
        rng = random.Random(f"{task}:{difficulty}:{seed}:{i}")
        text, answer, meta = spec.generate(rng, difficulty)
        meta = {"difficulty": difficulty, **meta}
        problems.append(Problem(f"{task}-{difficulty}-{seed}-{i}", text, answer, task, meta))
    return problems


def solution_trace(problem: Problem, *, seed: int = 0, num_mistakes: int | None = None) -> str:
    """A multi-episode reasoning text for `problem` in the R1 style, ending with
    `The final answer is \\boxed{ANSWER}.`

    Paragraphs are separated by a blank line; later episodes open with `Wait,`,
    `But wait,`, `Alternatively,` or `But let me double-check`, and each episode has at
    least three paragraphs where the problem allows, so the R1 segmenter (which skips a
    boundary 0-2 paragraphs after the previous one) cuts there. With mistakes, an early
    episode commits to a wrong value and a later check catches and fixes it, so the
    chance of a correct forced answer rises across episodes.

    num_mistakes: None draws from `seed` (the task's `draw_mistakes`, else 0-2); an int asks
    for that many, capped at what the problem allows (`Task.max_mistakes`).

    A task with `may_end_wrong` (`doubt`) may end a trace on another boxed answer by design;
    every other task's trace must end in the reference answer (a RuntimeError otherwise).
    """
    spec = get_task(problem.task)
    rng = random.Random(f"trace:{problem.task}:{problem.problem}:{seed}")
    cap = spec.max_mistakes(problem)
    if num_mistakes is None and spec.draw_mistakes is not None:
        num_mistakes = spec.draw_mistakes(problem, rng)
    elif num_mistakes is None:
        num_mistakes = rng.choices([0, 1, 2], weights=[0.4, 0.4, 0.2])[0]
    elif isinstance(num_mistakes, bool) or not isinstance(num_mistakes, int) or num_mistakes < 0:
        raise ValueError(f"num_mistakes must be None or a non-negative int, got {num_mistakes!r}")
    text = spec.trace(problem, rng, min(num_mistakes, cap))
    if spec.may_end_wrong:
        last = text.rsplit(PARAGRAPH, 1)[-1]
        head, tail = final_line("\0").split("\0")
        if not (last.startswith(head) and last.endswith(tail) and len(last) > len(head) + len(tail)):
            raise RuntimeError(f"trace of {problem.id} does not end in a final line {final_line('...')!r}")
    elif not text.endswith(final_line(problem.answer)):
        raise RuntimeError(
            f"trace of {problem.id} does not end in its reference answer {problem.answer!r}; "
            "was problem.meta edited?"
        )
    return text


def final_line(answer: str) -> str:
    return "The final answer is \\boxed{" + answer + "}."
