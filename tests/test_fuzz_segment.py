"""Fuzz the segmenter (mrt_engine.episodes): every scheme, any text, episodes join back exactly."""

import pytest
from hypothesis import strategies as st

from mrt_engine.episodes import R1_KEYWORDS, segment, segment_ids

from test_fuzz_common import fuzz

# Fuzzed text is often one episode with a keyword too early to cut: SingleEpisodeWarning is
# right there, and tested in test_episodes.py.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::mrt_engine.episodes.SingleEpisodeWarning")]

# The segmenter's common options (their old names max_steps / group_size still load, deprecated).
MAX_CUTS, MERGE = "max_cuts", "merge_episodes"

PIECES = st.sampled_from([*R1_KEYWORDS, "wait", "Wait,", "\n\n", "\n", "\n\n\n", "\r\n", " ", "x", "2 < 3 & 4",
                          "é", "🙂", "\u2028", "\x00", "\ufeff", "Backtrack to Line 3\n", "Backtrack to beginning",
                          "Node #1: ", "Step 2"])
PARAGRAPHS = st.lists(st.one_of(PIECES, st.text(max_size=6)), max_size=12).map("\n\n".join)
KEYWORDS_ONLY = st.lists(st.sampled_from(R1_KEYWORDS), max_size=12).map("\n\n".join)
HUGE = st.builds(lambda kw, n, k: "\n\n".join([kw + " " + "x" * n] * k), st.sampled_from(R1_KEYWORDS),
                 st.integers(10_000, 200_000), st.integers(1, 5))
TEXTS = st.one_of(st.just(""), st.text(), st.lists(PIECES).map("".join), PARAGRAPHS, KEYWORDS_ONLY)
SCHEMES = {"r1": {}, "backtrack": {}, "regex": {"pattern": r"(?m)^Step \d+|\n"}, "tokens": {"window": 3}}


def check_episodes(text, episodes, *, with_tokens=False, num_tokens=None):
    assert "".join(e.text for e in episodes) == text
    assert episodes[0].char_start == 0 and episodes[-1].char_end == len(text)
    for a, b in zip(episodes, episodes[1:]):
        assert a.char_end == b.char_start and b.text  # no empty episode after the first
    if with_tokens:
        assert episodes[0].token_start == 0 and episodes[-1].token_end == num_tokens
        assert all(a.token_end == b.token_start for a, b in zip(episodes, episodes[1:]))


def test_fuzz_every_scheme_joins_back(tokenizer):
    def check(text, scheme, max_cuts, merge):
        opts = dict(SCHEMES[scheme], **{MAX_CUTS: max_cuts, MERGE: merge})
        episodes = segment(text, scheme, tokenizer=tokenizer if scheme == "tokens" else None, **opts)
        check_episodes(text, episodes)
        if max_cuts is not None:
            assert len(episodes) <= max_cuts // merge + 1
        base = segment(text, scheme, tokenizer=tokenizer if scheme == "tokens" else None, **SCHEMES[scheme])
        if max_cuts is None:
            assert len(episodes) == (len(base) - 1) // merge + 1  # merging keeps every merge-th cut
        if scheme == "r1":
            assert all(e.text.startswith(R1_KEYWORDS) for e in base[1:])
            assert all(a.text.endswith("\n\n") for a in base[:-1])
        if scheme == "backtrack":
            assert all(e.text.startswith("Backtrack to ") for e in base[1:])

    fuzz("segment: every scheme", check, TEXTS, st.sampled_from(sorted(SCHEMES)),
         st.one_of(st.none(), st.integers(0, 6)), st.integers(1, 4), max_examples=3000)


def test_fuzz_token_spans_cover_the_trace(tokenizer):
    def check(text):
        episodes = segment(text, "r1", tokenizer=tokenizer)
        num_tokens = len(tokenizer(text, add_special_tokens=False).input_ids)
        check_episodes(text, episodes, with_tokens=True, num_tokens=num_tokens)

    fuzz("segment: token spans", check, TEXTS, max_examples=800)


def test_fuzz_segment_ids_joins_back_to_the_decoded_ids(tokenizer):
    def check(text):
        ids = tokenizer(text, add_special_tokens=False).input_ids[:64]
        decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        check_episodes(decoded, segment_ids(tokenizer, ids, "r1"), with_tokens=True, num_tokens=len(ids))

    fuzz("segment_ids", check, st.one_of(PARAGRAPHS, st.text(max_size=40)), max_examples=400)


def test_fuzz_huge_paragraphs():
    def check(text):
        episodes = segment(text, "r1")
        check_episodes(text, episodes)
        # Keyword paragraphs at indices 0..k-1: only index 3 (and 6, ...) can start an episode.
        assert len(episodes) == 1 + (text.count("\n\n") // 3)

    fuzz("segment: huge paragraphs", check, HUGE, max_examples=150)


def test_fuzz_bad_options_raise_clearly():
    def check(text, max_cuts, merge):
        with pytest.raises((ValueError, TypeError), match=f"{MAX_CUTS}|{MERGE}"):
            segment(text, "r1", **{MAX_CUTS: max_cuts, MERGE: merge})

    bad_cuts = st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=2), st.booleans())
    bad_merge = st.one_of(st.integers(max_value=0), st.floats(), st.none(), st.booleans())
    fuzz("segment: bad options", check, TEXTS, bad_cuts, st.integers(1, 3), max_examples=150)
    fuzz("segment: bad merge", check, TEXTS, st.none(), bad_merge, max_examples=150)
