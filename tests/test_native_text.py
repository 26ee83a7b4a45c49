"""The C++ text helpers (mrt_engine._C) and their Python twins agree exactly."""
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrt_engine import _native, episodes
from mrt_engine.episodes import R1_KEYWORDS, _char_to_token_offsets_py, _r1_cuts_py, _utf8

native = _native.native
needs_native = pytest.mark.native  # skipped where mrt_engine._C is missing, failed in CI (conftest.py)

PIECES = st.sampled_from(
    list(R1_KEYWORDS) + ["\n\n", "\n", "x", " ", "é", "😀", "日本", "\u0301", "Wai", "But", "Waiting", "\n\n\n"]
)
TEXT = st.one_of(
    st.lists(PIECES, max_size=40).map("".join),
    st.text(max_size=80),  # any code points (hypothesis leaves out surrogates)
)


def native_r1(text, keywords=R1_KEYWORDS, min_paragraphs=3):
    return list(native.r1_cuts(_utf8(text), [_utf8(k) for k in keywords], min_paragraphs))


@needs_native
@settings(max_examples=1000, deadline=None)
@given(text=TEXT, min_paragraphs=st.integers(1, 4))
def test_r1_cuts_agree(text, min_paragraphs):
    expected = _r1_cuts_py(text, R1_KEYWORDS, min_paragraphs)
    assert native_r1(text, R1_KEYWORDS, min_paragraphs) == expected
    for c in expected:  # offsets are code points: they index the Python str
        assert text[c:].startswith(R1_KEYWORDS)


@needs_native
@settings(max_examples=300, deadline=None)
@given(text=TEXT, keywords=st.lists(st.sampled_from(["é", "😀x", "\n", "日", "a"]), min_size=1, max_size=3))
def test_r1_cuts_agree_on_unicode_keywords(text, keywords):
    assert native_r1(text, keywords, 1) == _r1_cuts_py(text, tuple(keywords), 1)


@needs_native
def test_r1_cuts_lone_surrogates_and_edges():
    for text in ["\ud800\n\nA\n\nB\n\nWait", "", "Wait", "\n\n\n\n\n\nWait", "é\n\n😀\n\n\ud83d\n\nBut wait"]:
        assert native_r1(text) == _r1_cuts_py(text, R1_KEYWORDS, 3)
    assert native_r1("\ud800\n\nA\n\nB\n\nWait") == [9]
    with pytest.raises(ValueError, match="non-empty"):
        native.r1_cuts(b"x", [b""], 3)
    with pytest.raises(ValueError, match="min_paragraphs"):
        native.r1_cuts(b"x", [b"x"], 0)


@st.composite
def offset_mappings(draw):
    """Offset mappings like a tokenizer's: ends non-decreasing, some empty or overlapping spans."""
    spans, end = [], 0
    for gap, back in draw(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), max_size=30)):
        end += gap
        spans.append((max(0, end - back), end))
    offsets = draw(st.lists(st.integers(0, end + 3), max_size=10))
    return offsets, spans


@needs_native
@settings(max_examples=500, deadline=None)
@given(case=offset_mappings())
def test_char_to_token_offsets_agree(case):
    offsets, spans = case
    expected = _char_to_token_offsets_py(offsets, spans)
    assert list(native.char_to_token_offsets(offsets, spans)) == expected
    for c, t in zip(offsets, expected):  # the documented rule, checked directly
        assert all(end <= c for _, end in spans[:t]) and (t == len(spans) or spans[t][1] > c)


@needs_native
def test_char_to_token_offsets_errors_match():
    for bad in ([(0, 3), (1, 2)], [(2, 1)], [(-1, 0)]):
        with pytest.raises(ValueError) as py_err:
            _char_to_token_offsets_py([0], bad)
        with pytest.raises(ValueError) as cpp_err:
            native.char_to_token_offsets([0], bad)
        assert str(py_err.value) == str(cpp_err.value)
    with pytest.raises(ValueError, match=">= 0"):
        native.char_to_token_offsets([-1], [(0, 1)])


@needs_native
def test_segment_uses_native_when_built():
    assert episodes._USE_NATIVE


def test_env_var_forces_the_python_fallback():
    code = "from mrt_engine import episodes, _native; print(_native.native is None, episodes._USE_NATIVE)"
    env = dict(os.environ, MRT_ENGINE_NO_NATIVE="1", PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
