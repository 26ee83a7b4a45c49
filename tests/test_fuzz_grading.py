"""Fuzz answer extraction and grading (mrt_engine.grading): malformed answers never raise.

Grading inputs stay short: math-verify on a pathological long answer can take seconds (a
worker-process guard is being added elsewhere); ``grade`` runs with a 1 s timeout.
"""
import pytest
from hypothesis import strategies as st

from mrt_engine.grading import REASONS, Grade, extract_boxed, grade

from test_fuzz_common import fuzz

pytestmark = pytest.mark.slow

LATEX = st.sampled_from(["\\boxed", "\\boxed{", "\\fbox{", "\\boxed ", "\\boxedx", "{", "}", "{{", "}}", "\\{", "\\}",
                         "\\\\", "\\", "5", "-3", "x", "\\frac{1}{2}", "\\sqrt{2}", "^", "_", "$", "$$", "\\left(",
                         "\\right)", "\\text{cm}", "\\,", "\\dfrac", ".", " ", "\n", "é", "∞", "\\pi", "1/2", "0.5"])
LATEX_TEXT = st.one_of(st.lists(LATEX, max_size=14).map("".join), st.text(max_size=30))
SHORT = st.one_of(st.lists(LATEX, max_size=6).map("".join), st.text(max_size=8))


def test_fuzz_extract_boxed():
    def check(text):
        got = extract_boxed(text)
        assert got is None or (isinstance(got, str) and got in text)
        if "\\boxed" not in text and "\\fbox" not in text:
            assert got is None

    fuzz("extract_boxed", check, LATEX_TEXT, max_examples=3000)


def test_fuzz_extract_boxed_nested():
    def check(inner, depth):
        text = "\\boxed{" * depth + inner + "}" * depth
        got = extract_boxed(text)
        # The last \boxed is the innermost one; it holds the inner text when that is balanced.
        if extract_boxed("\\boxed{" + inner + "}") == inner and "\\boxed" not in inner and "\\fbox" not in inner:
            assert got == inner

    fuzz("extract_boxed nested", check, SHORT, st.integers(1, 6), max_examples=700)


def test_fuzz_grade_never_raises_on_a_response():
    def check(response, reference):
        if not str(reference).strip():
            with pytest.raises(ValueError, match="reference answer is empty"):
                grade(response, reference, timeout=1.0)
            return
        g = grade(response, reference, timeout=1.0)
        assert isinstance(g, Grade) and g.reason in REASONS and g.score in (0.0, 1.0)
        assert (g.score == 1.0) == (g.reason == "correct")
        assert g.extracted == extract_boxed(response)

    references = st.one_of(SHORT, st.integers(-1000, 1000), st.just("5"), st.just("\\frac{1}{2}"))
    responses = st.one_of(SHORT, SHORT.map(lambda s: "so \\boxed{" + s + "}"))
    fuzz("grade", check, responses, references, max_examples=600)


def test_fuzz_grade_rejects_wrong_types():
    def check(response, reference):
        with pytest.raises(TypeError, match="grade: (response|reference) must be"):
            grade(response, reference, timeout=1.0)

    not_text = st.one_of(st.none(), st.booleans(), st.floats(), st.lists(st.text(max_size=2), max_size=2), st.binary())
    fuzz("grade: bad response type", check, not_text, st.just("5"), max_examples=150)
    fuzz("grade: bad reference type", check, st.just("\\boxed{5}"), not_text, max_examples=150)
