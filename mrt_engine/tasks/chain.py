"""`chain`: a short chain of arithmetic steps (multiply, add, subtract, remainder, digit sum).

Natural solution: compute step by step, then check each step by its inverse (a second
method: `56 / 8 = 7`, `9 * 6 + 7 = 61`), and when a check fails go back ("Wait, ...") and
redo from the wrong step.
"""

from __future__ import annotations

import random

from mrt_engine.grading import verify_integer

from .base import PARAGRAPH, Problem, Task, final_line, register

# difficulty -> (number of steps, start range, multiplier range, addend range, modulus range)
_LEVELS = {
    "easy": (2, (2, 20), (2, 9), (1, 20), (3, 9)),
    "medium": (3, (10, 60), (2, 12), (1, 50), (3, 12)),
    "hard": (5, (10, 200), (2, 19), (1, 99), (3, 19)),
}


def apply_step(value: int, op: str, k: int | None) -> int:
    if op == "mul":
        return value * k
    if op == "add":
        return value + k
    if op == "sub":
        return value - k
    if op == "mod":
        return value % k
    if op == "digit_sum":
        return sum(int(d) for d in str(value))
    raise ValueError(f"unknown chain step {op!r}")


def _phrase(op: str, k: int | None) -> str:
    return {
        "mul": f"multiply by {k}",
        "add": f"add {k}",
        "sub": f"subtract {k}",
        "mod": f"take the remainder mod {k}",
        "digit_sum": "take the digit sum",
    }[op]


def _generate(rng: random.Random, difficulty: str):
    num_steps, start_r, mul_r, add_r, mod_r = _LEVELS[difficulty]
    start = rng.randint(*start_r)
    value, steps = start, []
    for i in range(num_steps):
        choices = ["mul", "add"]
        if value > add_r[0]:
            choices.append("sub")
        if value >= 10:
            choices += ["mod", "digit_sum"]
        if i == num_steps - 1 and value >= mod_r[1]:
            choices += ["mod", "mod"]  # end on a remainder more often: small answers
        op = rng.choice([c for c in choices if not steps or c != steps[-1][0]])
        if op == "mul":
            k = rng.randint(*mul_r)
        elif op == "add":
            k = rng.randint(*add_r)
        elif op == "sub":
            k = rng.randint(add_r[0], min(add_r[1], value))
        elif op == "mod":
            k = rng.randint(mod_r[0], min(mod_r[1], value))
        else:
            k = None
        steps.append([op, k])
        value = apply_step(value, op, k)
    phrases = [_phrase(op, k) for op, k in steps]
    text = (
        f"Start with {start}. "
        + phrases[0][0].upper() + phrases[0][1:]
        + "".join(f", then {p}" for p in phrases[1:])
        + ". What is the result?"
    )
    return text, str(value), {"start": start, "steps": steps}


# ---------------------------------------------------------------- trace pieces


def _step_text(v: int, op: str, k: int | None, claimed: int) -> str:
    if op == "mul":
        return f"{v} * {k} = {claimed}."
    if op == "add":
        return f"{v} + {k} = {claimed}."
    if op == "sub":
        return f"{v} - {k} = {claimed}."
    if op == "mod":
        return f"{v} mod {k} = {claimed}."
    return f"The digit sum of {v} is {' + '.join(str(v))} = {claimed}."


def _check_text(v: int, op: str, k: int | None, claimed: int) -> str:
    """Check one step by an inverse computation; says whether `claimed` was right."""
    right = apply_step(v, op, k) == claimed
    verdict = "right" if right else "wrong"
    claim = _step_text(v, op, k, claimed).rstrip(".")
    if op == "mul":
        if right:
            return f"{claimed} / {k} = {v}, so {claim} is right."
        return f"{claimed} / {k} is not {v}, so {claim} is wrong."
    if op in ("add", "sub"):
        back = claimed - k if op == "add" else claimed + k
        sign = "-" if op == "add" else "+"
        if right:
            return f"{claimed} {sign} {k} = {v}, so {claim} is right."
        return f"{claimed} {sign} {k} = {back}, not {v}, so {claim} is wrong."
    if op == "mod":
        q = v // k
        if right:
            return f"{k} * {q} + {claimed} = {v}, so {claim} is right."
        return f"{k} * {q} + {claimed} = {k * q + claimed}, not {v}, so {claim} is wrong."
    digits = " + ".join(reversed(str(v)))
    true = apply_step(v, op, k)
    if right:
        return f"{digits} = {claimed}, so the digit sum {claimed} is right."
    return f"{digits} = {true}, not {claimed}, so the digit sum {claimed} is {verdict}."


def _stays_non_negative(v: int, rest: list) -> bool:
    for op, k in rest:
        v = apply_step(v, op, k)
        if v < 0:
            return False
    return True


def _wrong_options(v: int, op: str, k: int | None, rest: list) -> list[int]:
    """Plausible slips for one step after which the later steps (`rest`) stay >= 0."""
    true = apply_step(v, op, k)
    if op == "mod":
        options = [r for r in range(k) if r != true]
    else:
        options = [true + d for d in (-10, -2, -1, 1, 2, 10) if true + d >= 0]
    return [w for w in options if _stays_non_negative(w, rest)]


def _true_inputs(problem: Problem) -> list[int]:
    """inputs[i] = the true value before step i (inputs[-1] = the answer)."""
    inputs = [problem.meta["start"]]
    for op, k in problem.meta["steps"]:
        inputs.append(apply_step(inputs[-1], op, k))
    return inputs


def _slip_steps(problem: Problem) -> list[int]:
    # A slip at step s always happens on the true input (earlier slips are fixed by then).
    steps, inputs = problem.meta["steps"], _true_inputs(problem)
    return [s for s, (op, k) in enumerate(steps) if _wrong_options(inputs[s], op, k, steps[s + 1:])]


def _run(rng: random.Random, steps: list, first: int, v: int, slip_at: int | None) -> list[int]:
    """Values claimed while computing steps first.. from v: [v, after first, ...].
    Step `slip_at` gets a wrong value; later steps are right given the value in hand."""
    values = [v]
    for i in range(first, len(steps)):
        op, k = steps[i]
        if i == slip_at:
            values.append(rng.choice(_wrong_options(values[-1], op, k, steps[i + 1 :])))
        else:
            values.append(apply_step(values[-1], op, k))
    return values


def _trace(problem: Problem, rng: random.Random, num_mistakes: int) -> str:
    """Episodes: attempt; check (inverse operations) until a wrong step or the end; on a
    wrong step "Wait, so ..." fixes it and computes on, then checks the rest; repeat."""
    start, steps = problem.meta["start"], problem.meta["steps"]
    inputs = _true_inputs(problem)
    pending = sorted(rng.sample(_slip_steps(problem), num_mistakes))
    paragraphs = [f"Start with {start}."]
    first, v = 0, start
    while True:
        slip_at = pending.pop(0) if pending else None
        values = _run(rng, steps, first, v, slip_at)
        for j, i in enumerate(range(first, len(steps))):
            paragraphs.append(_step_text(values[j], *steps[i], values[j + 1]))
        paragraphs.append(f"So I get {values[-1]}.")
        paragraphs.append(
            "But let me double-check each step." if first == 0 else "But let me double-check the rest."
        )
        last_checked = len(steps) - 1 if slip_at is None else slip_at
        for j, i in enumerate(range(first, last_checked + 1)):
            paragraphs.append(_check_text(values[j], *steps[i], values[j + 1]))
        if slip_at is None:
            paragraphs.append("All steps are right.")
            break
        paragraphs.append("So I made a mistake there.")
        fixed = inputs[slip_at + 1]  # the check found the slip: redo that step right
        paragraphs.append("Wait, so " + _step_text(inputs[slip_at], *steps[slip_at], fixed))
        first, v = slip_at + 1, fixed
        if first == len(steps):
            paragraphs.append(f"So I get {fixed}.")
            break
    paragraphs.append(final_line(str(inputs[-1])))  # from meta: base checks it vs answer
    return PARAGRAPH.join(paragraphs)


def _max_mistakes(problem: Problem) -> int:
    return len(_slip_steps(problem))


CHAIN = register(
    Task(
        name="chain",
        description="arithmetic chain (multiply, add, subtract, remainder, digit sum); integer answer",
        generate=_generate,
        trace=_trace,
        max_mistakes=_max_mistakes,
        verifier=verify_integer,
    )
)
