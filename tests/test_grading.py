import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrt_engine.grading import (
    CORRECT,
    EMPTY,
    INCORRECT,
    NO_BOXED,
    REASONS,
    TIMEOUT,
    TOO_COSTLY,
    TOO_LONG,
    UNPARSEABLE,
    Grade,
    answer_forms,
    extract_boxed,
    grade,
    grade_batch,
    is_equiv,
    normalize_answer,
    parse_integer,
    parse_integer_set,
    run_with_timeout,
    too_costly,
    verify_integer,
    verify_integer_set,
)

# An answer sympy works on for minutes in Python code: the timeout path.
SLOW = r"\prod_{k=1}^{2000}(x+k)"


# ---------------------------------------------------------------- extract_boxed


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{42}.", "42"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{a \\ b}", r"a \\ b"),
        (r"\fbox{7}", "7"),
        (r"\boxed{3} and \fbox{4}", "4"),
        (r"\fbox{4} and \boxed{3}", "3"),
        (r"\boxed {5}", "5"),
        (r"$\boxed 5$", "5"),
        (r"\boxed{}", ""),
        (r"\boxed{{x}}", "{x}"),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "no answer here", r"\boxed{12", r"\boxed{1} and \boxed{2", r"\boxed", r"\boxedx{3}",
     r"\boxed{\}", r"\boxed{a{b}"],
)
def test_extract_boxed_none(text):
    assert extract_boxed(text) is None


def test_extract_boxed_huge_input_is_linear():
    text = "x " * 500_000 + r"\boxed{" + "{" * 2000 + "1" + "}" * 2000 + "}"
    t = time.perf_counter()
    assert extract_boxed(text) == "{" * 2000 + "1" + "}" * 2000
    assert extract_boxed(text[:-1]) is None
    assert time.perf_counter() - t < 5.0  # generous: guards against quadratic scans only


def test_extract_boxed_rejects_non_string():
    with pytest.raises(TypeError, match="str"):
        extract_boxed(None)


# ---------------------------------------------------------------- is_equiv


@pytest.mark.parametrize(
    "a, b",
    [
        ("1/2", r"\frac{1}{2}"),
        (r"\frac{1}{2}", "0.5"),
        (r"\dfrac{1}{2}", "1/2"),
        ("0.25", r"\frac14"),
        ("3", "3.0"),
        ("-3", r"-\frac{6}{2}"),
        (r"\sqrt{2}", r"2^{1/2}"),
        (r"2\sqrt{2}", r"\sqrt{8}"),
        ("[0,1)", r"\left[0,1\right)"),
        ("(0, 1)", r"\left(0,1\right)"),
        (r"\{1,2,3\}", r"\{3, 2, 1\}"),
        ("x+1", "1+x"),
        (r"\text{Yes}", "yes"),
        ("42", "42."),
    ],
)
def test_is_equiv_true(a, b):
    assert is_equiv(a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("1/2", "0.51"),
        ("-3", "3"),
        ("[0,1)", "[0,1]"),
        ("[0,1)", "(0,1)"),
        (r"\{1,2,3\}", r"\{1,2\}"),
        (r"\sqrt{2}", "2"),
        ("1", ""),
        ("1", "???"),
    ],
)
def test_is_equiv_false(a, b):
    assert not is_equiv(a, b)


def test_is_equiv_agrees_with_math_verify():
    from math_verify import parse, verify

    pairs = [("1/2", "0.5"), (r"\frac{3}{4}", "0.75"), ("[0,1)", "[0,1]"), (r"\sqrt{3}", "1.7320508"),
             ("-2", "2"), (r"\{1,2\}", r"\{2,1\}"), ("10", "1e1"), (r"\pi", "3.14159265")]
    for a, b in pairs:
        expected = verify(parse("\\boxed{" + a + "}"), parse("\\boxed{" + b + "}"))
        assert is_equiv(a, b) == expected, (a, b)


def test_is_equiv_type_error():
    with pytest.raises(TypeError, match="b must be a str"):
        is_equiv("1", 1)


def test_normalize_answer():
    assert normalize_answer(r" $\left[ 0, 1 \right)$ ") == "[0,1)"
    assert normalize_answer(r"\dfrac{1}{2}.") == r"\frac{1}{2}"
    assert normalize_answer(r"\text{Yes}") == "yes"


# ---------------------------------------------------------------- grade


def test_grade_correct_and_incorrect():
    g = grade(r"I think... The final answer is \boxed{\frac{1}{2}}.", "0.5")
    assert g == Grade(1.0, CORRECT, r"\frac{1}{2}")
    assert g.correct
    g = grade(r"The final answer is \boxed{0.4}.", "1/2")
    assert g == Grade(0.0, INCORRECT, "0.4")
    assert grade(r"\boxed{7}", 7).score == 1.0


@pytest.mark.parametrize(
    "response, reason",
    [
        ("", NO_BOXED),
        ("the answer is 5", NO_BOXED),
        (r"\boxed{5", NO_BOXED),
        (r"\boxed{5} but then \boxed{6", NO_BOXED),
        (r"\boxed{}", EMPTY),
        (r"\boxed{   }", EMPTY),
        (r"\boxed{???}", UNPARSEABLE),
        (r"\boxed{" + "1+" * 2000 + "1}", TOO_LONG),
        ("\x00\x01" * 1000 + r"\boxed{\x00}", UNPARSEABLE),
    ],
)
def test_grade_malformed_scores_zero_with_reason(response, reason):
    g = grade(response, "5")
    assert g.score == 0.0
    assert g.reason == reason
    assert g.reason in REASONS


def test_grade_huge_response_small_answer():
    response = "Wait, " * 200_000 + r"The final answer is \boxed{12}."
    assert grade(response, "12").score == 1.0


def test_grade_timeout_main_thread():
    handler_before = signal.getsignal(signal.SIGALRM)
    t = time.perf_counter()
    g = grade(r"\boxed{" + SLOW + "}", "3", timeout=0.5)
    assert time.perf_counter() - t < 10.0
    assert g == Grade(0.0, TIMEOUT, SLOW)
    # the timer and handler are restored
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == handler_before


def test_grade_timeout_with_foreign_timer_uses_thread_guard():
    # A timer someone else armed (pytest-timeout, the caller) must survive our check.
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        assert grade(r"\boxed{" + SLOW + "}", "3", timeout=0.5).reason == TIMEOUT
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0.0 < remaining < 30.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, old)
    assert not fired


def test_grade_in_worker_threads_with_timeout():
    responses = [r"\boxed{1/2}", r"\boxed{" + SLOW + "}", r"\boxed{0.3}", "oops"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        grades = list(pool.map(lambda r: grade(r, "0.5", timeout=0.5), responses))
    assert [g.reason for g in grades] == [CORRECT, TIMEOUT, INCORRECT, NO_BOXED]
    # the abandoned check is asked to stop; it must not run on in the background
    deadline = time.time() + 10.0
    while time.time() < deadline and any(t.name == "mrt-answer-check" for t in threading.enumerate()):
        time.sleep(0.05)
    assert not any(t.name == "mrt-answer-check" for t in threading.enumerate())


@pytest.mark.parametrize("answer", [r"9^{9^{9^9}}", r"2^{1000000}", "99999!", r"3**(3**3)", r"10^{ 2^{40} }"])
def test_grade_power_towers_are_screened(answer):
    t = time.perf_counter()
    assert too_costly(answer)
    assert grade(r"\boxed{" + answer + "}", "3") == Grade(0.0, TOO_COSTLY, answer)
    assert time.perf_counter() - t < 2.0


@pytest.mark.parametrize("answer", [r"2^{10}", "9^9^9^9", r"x^{2}+1", "120!", r"10^{12}", r"e^{i\pi}"])
def test_ordinary_powers_pass_the_screen(answer):
    assert not too_costly(answer)


def _busy(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


@pytest.mark.parametrize("in_thread", [False, True])
def test_run_with_timeout_mechanism(in_thread):
    from mrt_engine.grading import AnswerCheckTimeout

    def body():
        assert run_with_timeout(lambda: 7, 1.0) == 7
        with pytest.raises(ZeroDivisionError):
            run_with_timeout(lambda: 1 / 0, 1.0)
        t = time.perf_counter()
        with pytest.raises(AnswerCheckTimeout):
            run_with_timeout(lambda: _busy(30.0), 0.2)
        return time.perf_counter() - t

    if in_thread:
        with ThreadPoolExecutor(max_workers=1) as pool:
            elapsed = pool.submit(body).result()
    else:
        elapsed = body()
    assert elapsed < 5.0


def test_grade_with_verifier():
    assert grade(r"\boxed{12}", "12", verifier=verify_integer).reason == CORRECT
    assert grade(r"\boxed{12.0}", "12", verifier=verify_integer).reason == CORRECT
    assert grade(r"\boxed{13}", "12", verifier=verify_integer).reason == INCORRECT
    assert grade(r"\boxed{twelve}", "12", verifier=verify_integer).reason == UNPARSEABLE
    # exact: 24/2 is equivalent but not an integer literal
    assert grade(r"\boxed{24/2}", "12", verifier=verify_integer).reason == UNPARSEABLE
    assert grade(r"\boxed{24/2}", "12").reason == CORRECT


def test_grade_type_errors():
    with pytest.raises(TypeError, match="response must be a str"):
        grade(None, "1")
    with pytest.raises(TypeError, match="reference must be"):
        grade(r"\boxed{1}", None)
    with pytest.raises(ValueError, match="reference answer is empty"):
        grade(r"\boxed{1}", " ")


def test_grade_batch():
    grades = grade_batch([r"\boxed{1}", r"\boxed{2}", "x"], ["1", "3", "1"])
    assert [g.score for g in grades] == [1.0, 0.0, 0.0]
    grades = grade_batch([r"\boxed{1.0}", r"\boxed{1.0}"], ["1", "1"], verifier=[verify_integer, None])
    assert [g.reason for g in grades] == [CORRECT, CORRECT]
    with pytest.raises(ValueError, match="2 responses but 1 references"):
        grade_batch(["a", "b"], ["1"])
    with pytest.raises(ValueError, match="1 verifiers for 2 responses"):
        grade_batch(["a", "b"], ["1", "2"], verifier=[None])


# ---------------------------------------------------------------- answer forms


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("1/2", ["1/2", r"\frac{1}{2}", r"\dfrac{1}{2}", "0.5"]),
        ("0.5", ["0.5", "1/2", r"\frac{1}{2}", r"\dfrac{1}{2}"]),
        (r"\dfrac{2}{6}", [r"\dfrac{2}{6}", "1/3", r"\frac{1}{3}", r"\dfrac{1}{3}"]),
        ("-0.125", ["-0.125", "-1/8", r"-\frac{1}{8}", r"-\dfrac{1}{8}"]),
        ("24", ["24"]),
        ("-3/1", ["-3/1", "-3"]),
        ("1/1099511627776", ["1/1099511627776", r"\frac{1}{1099511627776}",
                             r"\dfrac{1}{1099511627776}", "0.0000000000009094947017729282379150390625"]),
        (r"\sqrt{2}", [r"\sqrt{2}"]),
        ("[0,1)", ["[0,1)"]),
        ("1/0", ["1/0"]),
    ],
)
def test_answer_forms(answer, expected):
    forms = answer_forms(answer)
    assert forms == expected
    assert len(set(forms)) == len(forms)
    for f in forms[:4]:
        assert is_equiv(answer, f), f


# ---------------------------------------------------------------- exact verifiers


def test_parse_integer():
    assert parse_integer(" 42 ") == 42
    assert parse_integer("-7") == -7
    assert parse_integer("+3") == 3
    assert parse_integer("$12.$") == 12
    assert parse_integer(r"\text{8}") == 8
    for bad in ["", "1.5", "1/2", "x", "1 2 3x", "--1"]:
        with pytest.raises(ValueError, match="not an integer"):
            parse_integer(bad)


def test_integer_sets():
    assert parse_integer_set(r"\{1, 2, 3\}") == frozenset({1, 2, 3})
    assert parse_integer_set("3,2,1,1") == frozenset({1, 2, 3})
    assert parse_integer_set(r"\emptyset") == frozenset()
    assert verify_integer_set("{2, 1}", r"\{1,2\}")
    assert not verify_integer_set("{2}", r"\{1,2\}")
    with pytest.raises(ValueError):
        verify_integer_set("{a, b}", "{1}")


# ---------------------------------------------------------------- fuzz

_PIECES = st.sampled_from(
    ["\\boxed{", "\\fbox{", "{", "}", "\\", "\\frac", "\\sqrt", "^", "1", "2", "x", "/",
     ",", "(", ")", "[", "]", "\\{", "\\}", " ", "-", ".", "$", "\\left", "\\right", "a", "!"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=30).map("".join), st.sampled_from(["1", "1/2", "[0,1)", "x+1"]))
def test_grade_never_crashes_on_garbage(response, reference):
    g = grade(response, reference, timeout=1.0)
    assert g.reason in REASONS
    assert g.score in (0.0, 1.0)
    assert (g.score == 1.0) == (g.reason == CORRECT)
    assert g.extracted == extract_boxed(response)


_MATH_PIECES = st.sampled_from(
    ["\\frac", "\\sqrt", "^", "{", "}", "1", "2", "x", "/", ",", "(", ")", "[", "]", "\\{", "\\}",
     " ", "-", ".", "\\left", "\\right", "\\pi", "\\infty", "=", "<", "\\cup", "\\text{", "_",
     "\\%", "&", "\\\\", "9", "\\dfrac", "\\log", "|", "'"]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_MATH_PIECES, min_size=1, max_size=12).map("".join))
def test_grade_never_crashes_inside_math_verify(body):
    # braces may be unbalanced, so the box may be unclosed: either way a Grade comes back
    g = grade("\\boxed{" + body + "}", "1/2", timeout=1.0)
    assert g.reason in REASONS
    assert (g.score == 1.0) == (g.reason == CORRECT)
