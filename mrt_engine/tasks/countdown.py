"""`countdown`: reach a target with the given numbers, each used once, and + - *.

The answer is an expression, so many answers are right: the exact verifier evaluates the
candidate, and checks it uses the same numbers as the reference (`verify_countdown`).
The reference expression alone fixes both the numbers and the target, so the verifier
keeps the `(extracted, reference)` signature of every other verifier.

Natural solution: try a combination, compute, miss the target, "Wait, try ...", and
double-check the one that hits it.
"""

from __future__ import annotations

import ast
import random
from fractions import Fraction

from .base import PARAGRAPH, Problem, Task, final_line, register

# difficulty -> (count of numbers, number range, max target, wrong tries range)
_LEVELS = {
    "easy": (3, (1, 9), 60, (1, 2)),
    "medium": (4, (1, 12), 150, (1, 3)),
    "hard": (5, (1, 15), 400, (2, 4)),
}
_OPS = ("+", "-", "*")


# ---------------------------------------------------------------- exact verifier


def _eval_node(node: ast.AST, numbers: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        numbers.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _eval_node(node.left, numbers), _eval_node(node.right, numbers)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if b == 0:
            raise ValueError("division by zero")
        return a / b
    raise ValueError(f"not allowed in a countdown answer: {type(node).__name__}")


def evaluate_expression(text: str) -> tuple[Fraction, list[int]]:
    """(exact value, numbers used) of an arithmetic expression with + - * / and brackets.

    Accepts LaTeX `\\times`, `\\cdot`, `\\div`. ValueError for anything else (names,
    powers, calls, more than 200 characters).
    """
    s = text.strip().strip("$").rstrip(".")
    if len(s) > 200:
        raise ValueError("expression too long")
    s = (s.replace("\\times", "*").replace("\\cdot", "*").replace("\\div", "/")
         .replace("\\left", "").replace("\\right", "").replace("{", "(").replace("}", ")"))
    if "=" in s:  # `3 * 7 - 1 = 20`: keep the left side
        s = s.split("=")[0]
    try:
        tree = ast.parse(s, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not an arithmetic expression: {text[:50]!r}") from e
    numbers: list[int] = []
    value = _eval_node(tree.body, numbers)
    return value, numbers


def verify_countdown(answer: str, reference: str) -> bool:
    """True when `answer` uses exactly the reference's numbers (each once) and has the
    reference's value. ValueError when `answer` is not an arithmetic expression."""
    value, numbers = evaluate_expression(answer)
    ref_value, ref_numbers = evaluate_expression(reference)
    return value == ref_value and sorted(numbers) == sorted(ref_numbers)


# ---------------------------------------------------------------- generation


def _random_expression(rng: random.Random, numbers: list[int]) -> tuple[str, int, list[tuple]]:
    """Combine numbers left to right in a random order: ((a op b) op c) op d.
    Returns (expression, value, steps) with steps = (left, op, right, result)."""
    order = numbers[:]
    rng.shuffle(order)
    expr, value, steps = str(order[0]), order[0], []
    for n in order[1:]:
        op = rng.choice(_OPS)
        if op == "-" and value < n:
            op = rng.choice(["+", "*"])
        new = value + n if op == "+" else value - n if op == "-" else value * n
        steps.append((value, op, n, new))
        # brackets only where precedence needs them
        expr = f"({expr}) {op} {n}" if op == "*" and ("+" in expr or "-" in expr) else f"{expr} {op} {n}"
        value = new
    return expr, value, steps


def _generate(rng: random.Random, difficulty: str):
    count, num_r, max_target, _ = _LEVELS[difficulty]
    while True:
        numbers = [rng.randint(*num_r) for _ in range(count)]
        expr, value, _ = _random_expression(rng, numbers)
        if 10 <= value <= max_target:
            break
    shown = ", ".join(str(n) for n in sorted(numbers))
    text = f"Use {shown} once each, with + - and *, to make {value}."
    return text, expr, {"numbers": sorted(numbers), "target": value}


# ---------------------------------------------------------------- trace


def _step_line(left: int, op: str, right: int, result: int) -> str:
    return f"{left} {op} {right} = {result}."


def _trace(problem: Problem, rng: random.Random, num_mistakes: int) -> str:
    numbers, target = problem.meta["numbers"], problem.meta["target"]
    _, _, _, tries_r = _LEVELS[problem.meta["difficulty"]]
    ref_value, _ = evaluate_expression(problem.answer)
    if ref_value != target:
        raise ValueError(f"countdown answer {problem.answer!r} does not make {target}")
    # wrong tries first (real misses, or slips that seem to hit the target)
    num_misses = rng.randint(*tries_r)
    misses = []
    for _ in range(200):
        if len(misses) >= max(num_misses, num_mistakes):
            break
        expr, value, steps = _random_expression(rng, numbers)
        if value != target and expr not in [m[0] for m in misses]:
            misses.append((expr, value, steps))
    slips = set(rng.sample(range(len(misses)), min(num_mistakes, len(misses))))
    openers = ["Wait, try {e}.", "Alternatively, try {e}.", "But wait, what about {e}?"]
    paragraphs = [f"I need {target} from {', '.join(map(str, numbers))}."]
    for j, (expr, value, steps) in enumerate(misses):
        paragraphs.append(f"Try {expr}." if j == 0 else rng.choice(openers).format(e=expr))
        lines = [_step_line(*s) for s in steps]
        if j in slips:  # the last step slips onto the target
            lines[-1] = _step_line(*steps[-1][:3], target)
            paragraphs.append(" ".join(lines))
            paragraphs.append(f"That makes {target}.")
            paragraphs.append(f"But let me double-check {expr}.")
            paragraphs.append(_step_line(*steps[-1]) + f" That is {value}, not {target}.")
            paragraphs.append("So that was a slip.")
        else:
            paragraphs.append(" ".join(lines))
            paragraphs.append(f"That is {value}, not {target}.")
    answer = problem.answer
    _, used = evaluate_expression(answer)
    steps = _steps_of(answer)
    paragraphs.append(f"Try {answer}." if not misses else rng.choice(openers).format(e=answer))
    paragraphs.append(" ".join(_step_line(*s) for s in steps))
    paragraphs.append(f"That makes {target}.")
    paragraphs.append(f"But let me double-check {answer}.")
    paragraphs.append(f"It uses {', '.join(map(str, sorted(used)))} once each and makes {target}.")
    paragraphs.append(final_line(answer))
    return PARAGRAPH.join(paragraphs)


def _steps_of(expr: str) -> list[tuple]:
    """Left-to-right steps of an expression made by `_random_expression`."""
    tree = ast.parse(expr, mode="eval").body
    steps: list[tuple] = []

    def walk(node) -> int:
        if isinstance(node, ast.Constant):
            return node.value
        left = walk(node.left)
        right = walk(node.right)
        op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}[type(node.op)]
        result = left + right if op == "+" else left - right if op == "-" else left * right
        steps.append((left, op, right, result))
        return result

    walk(tree)
    return steps


def _max_mistakes(problem: Problem) -> int:
    # Upper bound: a trace holds fewer when the numbers allow fewer distinct misses
    # (e.g. 1, 1, 1).
    return _LEVELS[problem.meta["difficulty"]][3][1]


COUNTDOWN = register(
    Task(
        name="countdown",
        description="reach a target with given numbers (each once) and + - *; expression answer",
        generate=_generate,
        trace=_trace,
        max_mistakes=_max_mistakes,
        verifier=verify_countdown,
    )
)
