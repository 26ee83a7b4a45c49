"""Fuzz the trace viewer: damaged progress files give one-line errors; any text is escaped."""
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st

from mrt_engine.report import ReportInputError, build_report, parse_budgets, read_progress

from test_fuzz_common import fuzz
from test_report import make_result, parse

pytestmark = pytest.mark.slow

NASTY = st.one_of(st.text(max_size=30), st.sampled_from(["<", "&", "</script>", "<!--", "\"'", "&amp;", "]]>",
                                                           "<svg onload=x>", "\x00", "\u2028", "🙂",
                                                           "\ud800"]))
JUNK = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
                    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=3), c, max_size=2)),
                    max_leaves=4)
FIELDS = ["episodes", "cut_chars", "cut_tokens", "j", "j_stderr", "progress", "tokens_at_cut", "outcome", "id",
          "problem", "answer", "trace_index"]


@st.composite
def record(draw):
    """A valid progress record (text full of markup), sometimes with one field damaged."""
    episodes = draw(st.lists(NASTY, max_size=4))
    j = draw(st.lists(st.floats(0, 1), min_size=len(episodes) + 1, max_size=len(episodes) + 1))
    tokens = sorted(draw(st.lists(st.integers(0, 20_000), min_size=len(j), max_size=len(j))))
    rec = {"id": draw(NASTY), "trace_index": draw(st.integers(0, 3)), "problem": draw(NASTY),
           "answer": draw(st.one_of(NASTY, st.lists(NASTY, max_size=2))),
           **make_result(episodes, j, tokens, outcome=draw(st.one_of(st.none(), st.floats(0, 1)))).to_json()}
    if draw(st.integers(0, 2)) == 0:
        field = draw(st.sampled_from(FIELDS))
        if draw(st.booleans()):
            rec.pop(field)
        else:
            rec[field] = draw(JUNK)
    return rec


LINE = st.one_of(record().map(json.dumps), record().map(json.dumps), st.sampled_from(["", "{", "[]", "null", "\"x\""]))


def test_fuzz_read_and_render():
    folder = Path(tempfile.mkdtemp())

    def check(lines):
        path = folder / "progress.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8")
        try:
            records = read_progress(str(path))
        except ReportInputError as exc:
            assert "\n" not in str(exc) and re.match(re.escape(str(path)) + r"(:\d+)?: \S", str(exc)), str(exc)
            return
        html = build_report(records).html
        page = parse(html)
        assert page.episode_texts == [e if e else "(empty)" for r in records for e in r.result.episodes]
        assert html.count("<script>") == 2 and html.count("</script>") == 2
        assert len(page.with_class("episode")) == sum(r.result.num_episodes for r in records)

    fuzz("report: read and render", check, st.lists(LINE, min_size=1, max_size=4), max_examples=500)


def test_fuzz_budgets():
    def check(text):
        try:
            budgets = parse_budgets(text)
        except ValueError as exc:
            assert str(exc).startswith("--budgets: ")
            return
        assert budgets == sorted(set(budgets)) and all(b > 0 for b in budgets)

    items = st.one_of(st.integers(-5, 20_000).map(str), st.floats().map(str), st.text(max_size=4))
    fuzz("report: budgets", check, st.lists(items, min_size=1, max_size=4).map(",".join), max_examples=300)
