"""Fuzz the estimator's input checks: ``ProgressEstimator(tiny).prepare(problems, traces, answers)``.

Property: bad input raises a clear ValueError/TypeError (naming the item, or the lengths),
never another exception; good input gives one ``TraceInputs`` per item whose cuts and
episodes fit the trace. Failures found so far are bugs in mrt_engine/progress/inputs.py:
tolerated in the fuzz run (counted), each with an xfail test of its smallest case below.
"""
import pytest
from hypothesis import strategies as st

from mrt_engine.progress import ProgressEstimator

from test_fuzz_common import KnownBug, fuzz

pytestmark = pytest.mark.slow

OVERFLOW = KnownBug("a token-id trace with an id < 0 or >= 2**63 raises OverflowError from the tokenizer",
                    OverflowError)
NOT_ITERABLE = KnownBug("an answer that is neither str nor list (None, a number) raises a bare "
                        "\"'NoneType' object is not iterable\" TypeError that names no item", TypeError, "not iterable")
SURROGATE = KnownBug("text with a lone surrogate (e.g. '\\ud800') raises the tokenizer's TypeError "
                     "'TextEncodeInput must be Union[...]' that names no item", TypeError, "TextEncodeInput")
NO_LEN = KnownBug("problems/traces/answers that are not sequences raise \"object of type 'int' has no len()\"",
                  TypeError, "has no len()")
OUT_OF_VOCAB = KnownBug("token ids outside the vocabulary (or bools) are accepted by prepare; estimate then "
                        "fails inside the model", AssertionError, "outside the vocabulary accepted")
KNOWN = (OVERFLOW, NOT_ITERABLE, SURROGATE, NO_LEN)

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


def _in_vocab(ids, vocab: int) -> bool:
    return all(not isinstance(t, bool) and 0 <= t < vocab for t in ids)


def check_prepared(items, args, vocab: int) -> None:
    problems, traces, _ = args
    assert len(items) == len(problems)
    for it, problem, trace in zip(items, problems, traces):
        assert it.num_cuts == len(it.episodes) + 1 and it.cut_tokens[0] == 0
        assert it.cut_tokens == sorted(it.cut_tokens) and it.cut_tokens[-1] <= len(it.trace_ids)
        assert "".join(it.episodes) == (it.thinking if it.episodes else "")
        for ids in (trace, problem):
            if isinstance(ids, list) and not _in_vocab(ids, vocab):
                raise AssertionError(f"token ids outside the vocabulary accepted: {ids}")


def test_fuzz_prepare(estimators, tiny):
    vocab = len(tiny[1])

    def check(args, mode):
        try:
            items = estimators[mode].prepare(*args)
        except (ValueError, TypeError, OverflowError) as exc:
            if any(bug.seen(exc, args) for bug in KNOWN):
                return
            assert isinstance(exc, (ValueError, TypeError)), repr(exc)
            message = str(exc)
            assert "item " in message or "must have one entry per item" in message, message
            return
        try:
            check_prepared(items, args, vocab)
        except AssertionError as exc:
            if not OUT_OF_VOCAB.seen(exc, args):
                raise

    fuzz("ProgressEstimator.prepare", check, arguments(vocab), st.sampled_from(["score", "sample"]),
         max_examples=900)
    for bug in (*KNOWN, OUT_OF_VOCAB):
        print(f"  known bug hit {len(bug.hits)} times: {bug.text}")


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


def _xfail_if(bug: KnownBug, fn):
    """Run ``fn``; xfail naming ``bug`` when it shows, else return what ``fn`` gave or raised."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the bug is an exception of the wrong kind
        if bug.seen(exc, None):
            pytest.xfail(f"bug: {bug.text} (mrt_engine/progress/inputs.py)")
        return exc


@pytest.mark.parametrize("bug,args", [
    (OVERFLOW, (["x"], [[-1]], ["5"])),
    (NOT_ITERABLE, (["x"], ["a"], [None])),
    (SURROGATE, (["x"], ["\ud800"], ["5"])),
    (NO_LEN, (5, 5, 5)),
], ids=["negative-token-id", "answer-none", "lone-surrogate", "not-a-list"])
def test_known_prepare_bug(estimators, bug, args):
    got = _xfail_if(bug, lambda: estimators["score"].prepare(*args))
    assert isinstance(got, (ValueError, TypeError)) and "item" in str(got), got  # fixed: a clear error


def test_known_prepare_bug_out_of_vocabulary_ids(estimators, tiny):
    vocab = len(tiny[1])
    args = (["x"], [[vocab + 5]], ["5"])
    got = _xfail_if(OUT_OF_VOCAB, lambda: check_prepared(estimators["score"].prepare(*args), args, vocab))
    assert isinstance(got, ValueError) and "item 0" in str(got), got  # fixed: prepare refuses the ids
