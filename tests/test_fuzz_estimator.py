"""Fuzz the estimator's input checks: ``ProgressEstimator(tiny).prepare(problems, traces, answers)``.

Property (the promise of ``prepare``): bad input raises ValueError/TypeError that names the
argument (not a list), the three lengths (they differ), or ``item <i>`` and its field: the
first item with a bad problem, trace or answer, and one of that item's bad fields; any other
exception type fails the test. Good input gives one ``TraceInputs`` per item whose cuts and
episodes fit the trace. Bugs the fuzzer found (OverflowError on huge ids, bare "not
iterable" and "has no len()" TypeErrors, the tokenizer's TextEncodeInput error for a trace and,
found when the property stopped tolerating it, for a reference answer; ids outside the
vocabulary accepted) are fixed; their smallest cases are regression tests below.
"""
import re

import pytest
from hypothesis import strategies as st

from mrt_engine.progress import ProgressEstimator

from test_fuzz_common import fuzz

pytestmark = pytest.mark.slow

TRACE_TEXT = st.sampled_from(["", "Wait", "2 < 3 & 3 > 2", "So \\boxed{5}.", "a\n\nb\n\nc\n\nWait, no.\n\nd",
                              "x</think>\\boxed{5}", "\x00", "🙂" * 5, "a\ud800b"])
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(), st.binary(max_size=3),
                 st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


def mostly(good, bad):
    return st.integers(0, 5).flatmap(lambda k: bad if k == 0 else good)


def token_ids(vocab: int):
    edges = st.sampled_from([-1, 0, vocab - 1, vocab, vocab + 7, True, 2**63])
    return st.lists(st.one_of(st.integers(0, vocab - 1), st.integers(0, vocab - 1), edges, st.integers(-2**70, 2**70)),
                    max_size=8)


@st.composite
def arguments(draw, vocab: int):
    """(problems, traces, answers): mostly lists of one length, with wrong types mixed in."""
    # Good values five times out of six, so that one bad field is often the only one.
    problem = mostly(st.one_of(st.text(max_size=20), st.just("What is 2 + 3?"), token_ids(vocab)), JUNK)
    trace = mostly(st.one_of(st.text(max_size=40), TRACE_TEXT, token_ids(vocab)), JUNK)
    answer = mostly(st.one_of(st.text(max_size=6), st.just("5"), st.lists(st.text(max_size=4), max_size=3)),
                    st.one_of(JUNK, st.sampled_from(["", "  ", "\ud800"])))
    n = draw(st.sampled_from([0, 1, 1, 1, 2, 3]))
    lengths = [n] * 3 if draw(st.integers(0, 4)) else [draw(st.integers(0, 3)) for _ in range(3)]
    args = [draw(st.lists(s, min_size=k, max_size=k)) for s, k in zip((problem, trace, answer), lengths)]
    if draw(st.integers(0, 19)) == 13:  # a whole argument of the wrong type (not 0: hypothesis favours it)
        args[draw(st.integers(0, 2))] = draw(JUNK)
    return tuple(args)


@pytest.fixture(scope="module")
def estimators(tiny):
    model, tok = tiny
    return {"score": ProgressEstimator(model, tok, mode="score", template="boxed"),
            "sample": ProgressEstimator(model, tok, mode="sample", template="r1")}


def _ids_ok(ids, vocab: int) -> bool:
    return all(not isinstance(t, bool) and 0 <= t < vocab for t in ids)


def _text_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _id_list(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(t, int) for t in value)


# An error about a field may call it by these words.
WORDS = {"problem": ("problem", "prompt"), "trace": ("trace",), "answer": ("answer",)}


def item_faults(problem, trace, answer, *, mode: str, vocab: int) -> tuple[set, set]:
    """(fields that are surely bad, fields that may be bad) of one item. "May": an answer that
    may not round-trip through the tokenizer (score mode)."""
    sure, maybe = set(), set()
    if isinstance(problem, str):
        if not _text_ok(problem):
            sure.add("problem")
    elif not (_id_list(problem) and _ids_ok(problem, vocab)):
        sure.add("problem")
    if isinstance(trace, str):
        if not _text_ok(trace):
            sure.add("trace")
    elif not (_id_list(trace) and _ids_ok(trace, vocab)):
        sure.add("trace")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        forms = [str(answer)]
    elif isinstance(answer, str):
        forms = [answer]
    elif isinstance(answer, (list, tuple)) and answer and all(isinstance(f, str) for f in answer):
        forms = list(answer)
    else:  # None, bool, bytes, dict, an empty list, a list holding a non-str
        forms = []
        sure.add("answer")
    if any(not f.strip() or not _text_ok(f) for f in forms):
        sure.add("answer")
    elif mode == "score":
        maybe.add("answer")
    return sure, maybe - sure


def check_refusal(message: str, args, mode: str, vocab: int) -> None:
    """A refusal of ``args`` names what the property promises (see the module docstring)."""
    names = [n for n, a in zip(("problems", "traces", "answers"), args) if not isinstance(a, (list, tuple))]
    if names:
        assert any(f"{n} must be a list" in message for n in names), f"names none of {names}: {message}"
        return
    if len({len(a) for a in args}) > 1:
        assert "must have one entry per item" in message and "problems (" in message, message
        return
    faults = [item_faults(*item, mode=mode, vocab=vocab) for item in zip(*args)]
    found = re.match(r"item (\d+): ", message)
    assert found, f"names no item: {message}"
    i = int(found[1])
    first_sure = next((k for k, (sure, _) in enumerate(faults) if sure), len(faults))
    assert i <= first_sure, f"item {first_sure} is bad but the error names item {i}: {message}"
    assert i < len(faults), f"no item {i}: {message}"
    sure, maybe = faults[i]
    words = [w for field in sure | maybe for w in WORDS[field]]
    assert words, f"item {i} is good but refused: {message}"
    assert any(w in message for w in words), f"item {i}: names none of {sorted(sure | maybe)}: {message}"


def check_prepared(items, args, mode: str, vocab: int) -> None:
    problems, traces, answers = args
    assert len(items) == len(problems)
    for i, (it, item) in enumerate(zip(items, zip(*args))):
        sure, _ = item_faults(*item, mode=mode, vocab=vocab)
        assert not sure, f"item {i}: a bad {sorted(sure)} accepted: {item}"
        assert it.num_cuts == len(it.episodes) + 1 and it.cut_tokens[0] == 0
        assert it.cut_tokens == sorted(it.cut_tokens) and it.cut_tokens[-1] <= len(it.trace_ids)
        assert "".join(it.episodes) == (it.thinking if it.episodes else "")


def test_fuzz_prepare(estimators, tiny):
    vocab = len(tiny[1])

    def check(args, mode):
        try:
            items = estimators[mode].prepare(*args)
        except (ValueError, TypeError) as exc:  # any other exception fails the test
            check_refusal(str(exc), args, mode, vocab)
            return
        check_prepared(items, args, mode, vocab)

    fuzz("ProgressEstimator.prepare", check, arguments(vocab), st.sampled_from(["score", "sample"]),
         max_examples=900)


def test_fuzz_prepare_mismatched_lengths(estimators):
    def check(n_problems, n_traces, n_answers):
        args = (["What is 2 + 3?"] * n_problems, ["So \\boxed{5}."] * n_traces, ["5"] * n_answers)
        if n_problems == n_traces == n_answers:
            assert len(estimators["score"].prepare(*args)) == n_problems
            return
        with pytest.raises(ValueError, match=f"problems \\({n_problems}\\), traces \\({n_traces}\\) and answers"):
            estimators["score"].prepare(*args)

    sizes = st.integers(0, 6)
    fuzz("prepare: lengths", check, sizes, sizes, sizes, max_examples=150)


OK = ("What is 2 + 3?", "So \\boxed{5}.", "5")  # item 0 of every case below: good


@pytest.mark.parametrize("item,error,message", [
    (("x", [-1], "5"), ValueError, r"item 1: trace token id -1 at position 0 is not in the vocabulary"),
    (("x", [2**63], "5"), ValueError, r"item 1: trace token id 9223372036854775808 at position 0 is not in"),
    (("x", "a", None), TypeError, r"item 1: the reference answer must be a str.*got NoneType"),
    (("x", "a", 5.0), None, None),
    (("x", "a\ud800b", "5"), ValueError, r"item 1: the trace is not valid text"),
    (("x", "a", "\ud800"), ValueError, r"item 1: the reference answer is not valid text"),
    (("x", [10**9], "5"), ValueError, r"item 1: trace token id 1000000000 at position 0 is not in the vocabulary"),
    (([True], "a", "5"), ValueError, r"item 1: prompt token id True at position 0 is not in the vocabulary"),
    (("x", "a", []), ValueError, r"item 1: no reference answer given"),
], ids=["negative-token-id", "huge-token-id", "answer-none", "answer-number", "lone-surrogate",
        "answer-surrogate", "out-of-vocabulary", "bool-prompt-id", "no-answer"])
def test_prepare_names_the_bad_item_and_field(estimators, item, error, message):
    """Regressions of the fuzzer's finds (OverflowError, bare TypeErrors, the tokenizer's
    error, ids outside the vocabulary accepted) and the cases beside them."""
    args = tuple(list(pair) for pair in zip(OK, item))
    if error is None:
        assert len(estimators["score"].prepare(*args)) == 2
        return
    with pytest.raises(error, match=message):
        estimators["score"].prepare(*args)


def test_prepare_names_an_argument_that_is_not_a_list(estimators):
    with pytest.raises(TypeError, match=r"problems must be a list with one entry per item \(got a int\)"):
        estimators["score"].prepare(5, 5, 5)
