"""The `doubt` regime's task: traces that find x, sometimes doubt it and sometimes recover; its
forced answers (the state of the work), its preregistered mechanism metric and its designed J
profile (docs/prereg/doubt_bisect.md, "Regime `doubt`")."""
import dataclasses
import re

import pytest

from mrt_engine.episodes import segment
from mrt_engine.grading import extract_boxed
from mrt_engine.tasks import ALLOWED_CHARS, TASKS, Problem, get_task, make_problems, solution_trace
from mrt_engine.tasks import doubt
from mrt_engine.tasks.base import final_line
from mrt_engine.tasks.doubt import DOUBT_OPENER, design_profile, solve, trace_text

pytestmark = pytest.mark.usefixtures("one_thread")
TASK = get_task("doubt")


def _problem(a=3, c=1, *, id="doubt-easy-0-0", answer=None):
    """Find x with a * x ending in c (easy: the try multiplies a's last digit)."""
    x = solve(a, c) if answer is None else answer
    return Problem(id, f"Find the digit x such that {a} * x ends in {c}. We need {c}.", str(x), "doubt",
                   {"a": a, "c": c, "whole": False, "difficulty": "easy"})


def _cuts(trace):
    return [e.char_end for e in segment(trace, "r1")[:-1]]


# ---------------------------------------------------------------- generator


def test_problems_are_digit_problems_and_reproducible():
    problems = make_problems("doubt", 200, seed=0)
    assert [p.to_dict() for p in problems] == [p.to_dict() for p in make_problems("doubt", 200, seed=0)]
    assert [p.problem for p in problems] != [p.problem for p in make_problems("doubt", 200, seed=1)]
    for p in problems:
        a, c = p.meta["a"], p.meta["c"]
        assert sum(a * d % 10 == c for d in range(10)) == 1 and a * int(p.answer) % 10 == c
        assert set(p.problem) <= ALLOWED_CHARS
    traces = [solution_trace(p, seed=i) for i, p in enumerate(problems)]
    assert traces == [solution_trace(p, seed=i) for i, p in enumerate(problems)]  # deterministic in the seed
    assert traces != [solution_trace(p, seed=i + 1) for i, p in enumerate(problems)]


def test_traces_end_on_the_candidate_they_hold():
    """A trace ends on the reference unless it doubted and never recovered; then it ends on the
    wrong candidate its doubt took, which is what its forced answer held just before the end."""
    kinds = {"no doubt": 0, "recovered": 0, "unrecovered": 0}
    for i, p in enumerate(make_problems("doubt", 400, seed=3)):
        trace = solution_trace(p, seed=i)
        assert set(trace) <= ALLOWED_CHARS
        body, last = trace.rsplit("\n\n", 1)
        boxed = extract_boxed(last)
        assert last == final_line(boxed) and TASK.forced_answer(p, body + "\n\n") == boxed
        mech = TASK.mechanism(p, trace)
        if mech["unrecovered_doubt"]:
            misread = int(re.search(r"we need (\d)\.", trace).group(1))
            assert boxed == str(solve(p.meta["a"], misread)) != p.answer
            kinds["unrecovered"] += 1
        else:
            assert boxed == p.answer
            kinds["recovered" if mech["doubt"] else "no doubt"] += 1
    assert min(kinds.values()) > 40, kinds  # every kind is common enough to learn


def test_solution_trace_keeps_the_reference_check_for_every_other_task(monkeypatch):
    p = make_problems("digit", 1, seed=0)[0]
    wrong = str((int(p.answer) + 1) % 10)
    monkeypatch.setitem(TASKS, "digit", dataclasses.replace(TASKS["digit"], trace=lambda *a: final_line(wrong)))
    with pytest.raises(RuntimeError, match="does not end in its reference answer"):
        solution_trace(p)
    q = make_problems("doubt", 1, seed=0)[0]
    monkeypatch.setitem(TASKS, "doubt", dataclasses.replace(TASK, trace=lambda *a: final_line(wrong)))
    assert solution_trace(q) == final_line(wrong)  # a wrong ending is allowed by design here
    for bad in ("Try 3.", "The final answer is \\boxed{}.", final_line("3") + "\n\nWait, try 4."):
        monkeypatch.setitem(TASKS, "doubt", dataclasses.replace(TASK, trace=lambda *a, bad=bad: bad))
        with pytest.raises(RuntimeError, match="does not end in a final line"):
            solution_trace(q)


def test_episodes_are_cut_where_designed():
    # a = 3, c = 1: x = 7; tries 1 and 2 fail; the doubt reads 4 (x = 8); the recovery goes back to 7
    trace = trace_text(3, 1, 7, False, [1, 2], misread=4, recover=True)
    heads = [e.text.split("\n\n")[0] for e in segment(trace, "r1")]
    assert heads == ["Try 1.", "Wait, try 2.", "Wait, try 7.", f"{DOUBT_OPENER}: we need 4.", "But wait, the target is 1."]
    assert segment(trace, "r1")[3].text == f"{DOUBT_OPENER}: we need 4.\n\n3 * 8 = 24, need 4.\n\nSo x = 8.\n\n"
    assert segment(trace, "r1")[-1].text.endswith("Back to x = 7.\n\n" + final_line("7"))
    unrecovered = trace_text(3, 1, 7, False, [], misread=4)
    assert [e.text.split("\n\n")[0] for e in segment(unrecovered, "r1")] == ["Try 7.", f"{DOUBT_OPENER}: we need 4."]
    assert unrecovered.endswith("So x = 8.\n\n" + final_line("8"))
    with pytest.raises(ValueError, match="misread=1 is the target"):
        trace_text(3, 1, 7, False, [], misread=1)
    # generated traces: one episode per try, one per doubt, one per recovery
    for i, p in enumerate(make_problems("doubt", 300, seed=4)):
        trace = solution_trace(p, seed=i)
        tries = len(re.findall(r"(?:^|\n\n)(?:Wait, t|T)ry \d\.", trace))
        expected = tries + trace.count(DOUBT_OPENER) + trace.count("But wait, the target is")
        assert len(segment(trace, "r1")) == expected


# ---------------------------------------------------------------- forced answers


def test_forced_answer_is_a_guess_over_all_digits_at_the_empty_prefix():
    guesses = [TASK.forced_answer(_problem(id=f"doubt-easy-0-{i}"), "") for i in range(300)]
    assert set(guesses) == {str(d) for d in range(10)}
    assert guesses == [TASK.forced_answer(_problem(id=f"doubt-easy-0-{i}"), "") for i in range(300)]  # seeded


def test_forced_answer_never_guesses_a_digit_a_failed_try_ruled_out():
    trace = trace_text(3, 1, 7, False, [1, 2, 5], misread=4, recover=True)
    cuts = _cuts(trace)
    for n_failed, cut in enumerate(cuts[:3], start=1):
        ruled_out = set("125"[:n_failed])
        guesses = {TASK.forced_answer(_problem(id=f"p{i}"), trace[:cut]) for i in range(200)}
        assert guesses and not guesses & ruled_out and len(guesses) == 10 - n_failed


def test_forced_answer_is_the_held_candidate():
    trace = trace_text(3, 1, 7, False, [1], misread=4, recover=True)
    find, after_doubt = _cuts(trace)[1:3]
    p = _problem()
    assert TASK.forced_answer(p, trace[:find]) == "7"          # after "Yes, x = 7."
    assert TASK.forced_answer(p, trace[:after_doubt]) == "8"   # the doubt's candidate: 3 * 8 ends in 4
    assert TASK.forced_answer(p, trace.rsplit("\n\n", 1)[0] + "\n\n") == "7"  # after "Back to x = 7."
    # a cut inside the paragraph that commits holds nothing yet: a guess among the 9 digits left
    mid = trace.index("Yes, x = 7") + len("Yes, x = 7")
    assert TASK.forced_answer(p, trace[:mid]) != "1"


def test_forced_answer_reads_the_reference_only_through_the_prefix():
    """The same prefix of a problem with another reference gives the same forced answer."""
    trace = trace_text(3, 1, 7, False, [1, 2], misread=4, recover=True)
    for x in range(10):
        other = _problem(answer=x)
        for cut in [0, *_cuts(trace), len(trace) // 2]:
            assert TASK.forced_answer(other, trace[:cut]) == TASK.forced_answer(_problem(), trace[:cut])


# ---------------------------------------------------------------- mechanism metric


@pytest.mark.parametrize("text, doubt_, unrecovered", [
    (trace_text(3, 1, 7, False, [2], misread=4, recover=True), 1.0, 0.0),       # recovered
    (trace_text(3, 1, 7, False, [2], misread=4), 1.0, 1.0),                     # ends on 8
    (trace_text(3, 1, 7, False, [2, 5]), 0.0, 0.0),                             # no doubt
    (trace_text(3, 1, 7, False, [2], misread=4)[:-60], 1.0, 1.0),               # truncated inside the doubt
    (trace_text(3, 1, 7, False, [2], misread=4).replace("{8}", "{seven}"), 1.0, 1.0),  # an unreadable answer
    (trace_text(3, 1, 7, False, [2, 5])[:40], 0.0, 0.0),                        # truncated before the find
    ("Try 7.\n\n3 * 7 = 21, need 1.\n\nYes, x = 7.\n\nWait, try 3.\n\n3 * 3 = 9, need 1.\n\nYes, x = 3.\n\n"
     + final_line("3"), 1.0, 1.0),                                              # switches without the opener
    ("Try 7.\n\n3 * 7 = 21, need 1.\n\nYes, x = 7.\n\nBut let me double-check 7.\n\nYes, x = 7.\n\n"
     + final_line("7"), 0.0, 0.0),                                              # a re-check is no doubt
    ("Try 4.\n\n3 * 4 = 12, need 1.\n\nNo, it ends in 2.\n\n" + final_line("4"), 0.0, 0.0),  # wrong, no find
])
def test_mechanism(text, doubt_, unrecovered):
    assert TASK.mechanism(_problem(), text) == {"doubt": doubt_, "unrecovered_doubt": unrecovered}


# ---------------------------------------------------------------- designed J profile


def test_designed_profile_passes_the_prereg_gates_with_margin_and_is_the_documented_one():
    problems = make_problems("doubt", 4000, seed=0)
    whole, at_budget = design_profile(problems), design_profile(problems, max_tokens=384)
    assert whole["success_with_fall"] >= 0.25 and whole["failed_with_rise"] >= 0.5
    assert at_budget["success_with_fall"] >= 0.2 and at_budget["failed_with_rise"] >= 0.3
    assert abs(whole["doubt"] - doubt.DOUBT_RATE) < 0.03
    assert abs(whole["unrecovered_doubt"] - doubt.DOUBT_RATE * (1 - doubt.RECOVERY_RATE)) < 0.03
    assert whole["pass@1"] == pytest.approx(1 - whole["unrecovered_doubt"])  # only unrecovered doubts fail
    for name, p in (("whole", whole), ("cut at 384 tokens (the rollout budget)", at_budget)):
        row = (f"| {name} | {p['success_with_fall']:.3f} | {p['failed_with_rise']:.3f} | {p['pass@1']:.3f} | "
               f"{p['doubt']:.3f} | {p['unrecovered_doubt']:.3f} | {p['episodes']:.2f} |")
        assert row in doubt.__doc__, f"the module docstring's design table is stale; now: {row}"


def test_designed_profile_counts_falls_and_rises_between_forced_cuts(monkeypatch):
    # one trace of each kind, by the problem's id: a recovered doubt falls (J 1 -> 0) and succeeds;
    # an unrecovered one rises at the find (J 1/9 -> 1) and fails; one without a doubt never falls
    draws = {"recovered": dict(misread=4, recover=True), "unrecovered": dict(misread=4), "plain": {},
             "slow": dict(wrong=[0, 1, 2, 3, 4, 5, 6, 8])}
    monkeypatch.setitem(TASKS, "doubt", dataclasses.replace(
        TASK, trace=lambda p, rng, n: trace_text(3, 1, 7, False, **{"wrong": [1], **draws[p.id]})))
    problems = [_problem(id=kind) for kind in ("recovered", "unrecovered", "plain")]
    p = design_profile(problems)
    assert (p["success_with_fall"], p["failed_with_rise"], p["pass@1"]) == (0.5, 1.0, pytest.approx(2 / 3))
    assert (p["doubt"], p["unrecovered_doubt"], p["episodes"]) == (pytest.approx(2 / 3), pytest.approx(1 / 3), 3.0)
    # at a budget that cuts the recovery off, the recovered trace fails and no success falls
    cut = trace_text(3, 1, 7, False, [1], misread=4, recover=True).index("Back to")
    p = design_profile(problems, max_tokens=cut)
    assert (p["success_with_fall"], p["failed_with_rise"], p["pass@1"]) == (0.0, 1.0, pytest.approx(1 / 3))
    assert design_profile(problems, jump=1.01)["failed_with_rise"] == 0.0
    # a rise spread over many cuts counts too: cut off before the find, 8 failed tries give forced
    # cuts with J 0.1, 1/9, ..., 1/3 (the 8th is the last episode): a rise of 0.23, no step above 0.09
    slow = trace_text(3, 1, 7, False, draws["slow"]["wrong"])
    for jump, rises in ((0.2, 1.0), (0.25, 0.0)):
        p = design_profile([_problem(id="slow")], max_tokens=slow.index("Wait, try 7."), jump=jump)
        assert (p["pass@1"], p["failed_with_rise"]) == (0.0, rises)
    with pytest.raises(ValueError, match="at least one problem"):
        design_profile([])
    trace = trace_text(3, 1, 7, False, [1], misread=4, recover=True)
    assert [doubt.designed_j(_problem(), trace[:c]) for c in [0, *_cuts(trace)]] == [0.1, pytest.approx(1 / 9), 1.0, 0.0]


# ---------------------------------------------------------------- SFT warm start


def test_sft_examples_answer_with_the_state_of_the_work_and_digit_still_never_guesses():
    from mrt_engine.config.presets import shipped_config
    from mrt_engine.models import demo_tokenizer
    from mrt_engine.prompts import get_template
    from mrt_engine.rl.rollout import encode_prompts
    from mrt_engine.trainer.sft import build_examples

    tok = demo_tokenizer()
    template = get_template(shipped_config("compare")["algo"]["progress"]["template"])
    kinds = set()
    for task in ("doubt", "digit"):
        problems = make_problems(task, 300 if task == "doubt" else 80, seed=5)
        meta = build_examples(problems, tok, seed=0, template=template, termination_fraction=0.3)[len(problems):]
        assert meta
        for e in meta:
            prompt = tok.decode(encode_prompts(tok, [e.problem])[0], skip_special_tokens=True)
            context = tok.decode(e.context_ids, skip_special_tokens=True)
            assert context.startswith(prompt) and context.endswith(template.text)
            prefix = context[len(prompt):-len(template.text)]
            answer = tok.decode(e.completion_ids, skip_special_tokens=True)
            found = TASKS[task].answer_found(e.problem, prefix)
            if task == "digit":
                assert found and answer == e.problem.answer + "}"  # never a guess before the right try
                continue
            assert answer == TASK.forced_answer(e.problem, prefix) + "}"
            kinds.add("guess" if not found else "doubted" if DOUBT_OPENER in prefix and "Back to" not in prefix
                      else "held")
    assert kinds == {"guess", "held", "doubted"}  # forced examples before the find, and after a doubt
