"""Fuzz the data loader (mrt_engine.tasks.load_problems) with damaged JSONL/JSON files.

Property (the loader's promise): a file of valid rows in UTF-8 loads, row for row; a file with
a bad row, a bad line or bytes that are not UTF-8 raises MRTUserError (a ValueError) that
names the file and where: ``<file>:<line>`` for a JSONL line (the first bad one), ``<file>
item <i>`` for an item of a JSON array, and the field ('problem' or 'answer') when a field is
missing, of the wrong type or empty. Any other exception type fails the test. Bugs the fuzzer
found (bare UnicodeDecodeError, gzip.BadGzipFile, RecursionError, the int-digit ValueError,
U+2028 split as a line) are fixed; their smallest cases are regression tests below.
"""
import gzip
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import strategies as st

from mrt_engine.errors import MRTUserError
from mrt_engine.tasks import load_problems

from test_fuzz_common import fuzz

pytestmark = pytest.mark.slow

BIG_MARK = "@@big-int@@"
BIG_DIGITS = "1" + "0" * 4400
SEPARATORS = ["\u2028", "\u2029", "\x85"]
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["2 < 3 & x", "é", "🙂", "\n", "\\boxed{5}", *SEPARATORS]))
ANSWER = st.one_of(st.text(min_size=1, max_size=6).filter(str.strip), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=False, allow_infinity=False))
JUNK = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
                    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=4), c, max_size=3)),
                    max_leaves=6)
GOOD_ROW = st.fixed_dictionaries({"problem": TEXT, "answer": ANSWER},
                                 optional={"id": st.text(max_size=4), "extra": JUNK})


@st.composite
def bad_row(draw):
    row = draw(GOOD_ROW)
    kind = draw(st.sampled_from(["drop", "retype", "empty", "junk", "huge-int"]))
    field = draw(st.sampled_from(["problem", "answer"]))
    if kind == "drop":
        row.pop(field)
    elif kind == "retype":
        row[field] = draw(JUNK)
    elif kind == "empty":
        row[field] = draw(st.sampled_from(["", "  ", None]))
    elif kind == "huge-int":
        row["answer"] = BIG_MARK  # json.dumps cannot write it; data_file puts the digits in
    else:
        return draw(JUNK)
    return row


@dataclass
class Expect:
    """What loading one drawn file must do. ``loads``: True, it loads row for row; False, it
    raises naming the file, then ``where`` (":3" or " item 1", "" where only the file can be
    named) and one of ``fields``; None, either (text the encoding changed but kept readable)."""

    loads: bool | None
    where: str = ""
    fields: tuple[str, ...] = ()


def _bad_fields(row) -> tuple[str, ...] | None:
    """None for a good row; else the fields an error about it may name (() for no field)."""
    if not isinstance(row, dict) or row.get("answer") == BIG_MARK:
        return ()
    bad = []
    if not isinstance(row.get("problem"), str):
        bad.append("problem")
    answer = row.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
        bad.append("answer")
    return tuple(bad) or None


def _first_bad(entries, where) -> Expect:
    """The first entry (line or item) that is bad, or a file that loads."""
    for k, entry in enumerate(entries):
        fields = _bad_fields(entry)
        if fields is not None:
            return Expect(False, where(k), fields)
    return Expect(True)


@st.composite
def data_file(draw):
    """(bytes, suffix, rows, expect) for one file."""
    rows = draw(st.lists(st.one_of(GOOD_ROW, bad_row()) if draw(st.booleans()) else GOOD_ROW, min_size=1, max_size=5))
    suffix = draw(st.sampled_from([".jsonl", ".json", ".jsonl.gz"]))
    if suffix == ".json" and draw(st.booleans()):
        text = json.dumps(rows, ensure_ascii=False)
        # a huge integer makes the whole array unreadable: only the file can be named
        expect = (Expect(False) if any(isinstance(r, dict) and r.get("answer") == BIG_MARK for r in rows)
                  else _first_bad(rows, lambda k: f" item {k}"))
    else:
        lines: list = [json.dumps(r, ensure_ascii=False) for r in rows]
        entries: list = list(rows)
        if draw(st.integers(0, 9)) == 0:  # a damaged or deeply nested line
            depth = draw(st.integers(1, 50_000))
            at = draw(st.integers(0, len(lines)))
            lines.insert(at, draw(st.sampled_from(["{not json", "[" * depth + "]" * depth])))
            entries.insert(at, "damaged")
        expect = _first_bad(entries, lambda k: f":{k + 1}")
        if suffix == ".json" and lines[0].startswith("["):  # read as one JSON array, which it is not
            expect = Expect(False)
        text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n", "\r\n"]))
    text = text.replace(json.dumps(BIG_MARK), BIG_DIGITS)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    if data != text.encode("utf-8", errors="replace"):
        try:
            data.decode("utf-8")
            expect = Expect(None)  # other text, still UTF-8 (latin-1 bytes that happen to be valid)
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1  # the line of the first bad byte
            expect = Expect(False, f":{line}")
    if suffix.endswith(".gz"):
        if draw(st.booleans()):
            data = gzip.compress(data)
        else:
            expect = Expect(False)
    return data, suffix, rows, expect


def test_fuzz_load_problems():
    folder = Path(tempfile.mkdtemp())

    def check(drawn):
        data, suffix, rows, expect = drawn
        path = folder / f"data{suffix}"
        path.write_bytes(data)
        try:
            problems = load_problems(path, allow_extra=True)  # extra columns are fuzzed too; the rule for them is tested in test_tasks
        except MRTUserError as exc:  # any other exception fails the test
            message = str(exc)
            assert expect.loads is not True, f"a file of valid rows failed to load: {message}"
            want = f"{path}{expect.where}:" if expect.where else str(path)
            assert message.startswith(want), f"want {want!r}...: {message}"
            if expect.fields:
                assert any(f"'{f}'" in message for f in expect.fields), f"names none of {expect.fields}: {message}"
            return
        assert expect.loads is not False, f"loaded a file it must refuse ({expect}): {problems}"
        if expect.loads:  # else the encoding may have replaced characters
            assert [p.problem for p in problems] == [r["problem"] for r in rows]
        assert len(problems) == len(rows) and all(isinstance(p.problem, str) for p in problems)
        assert all(isinstance(p.answer, str) and p.answer.strip() for p in problems)

    fuzz("load_problems", check, data_file(), max_examples=1000)


def _load(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path, load_problems(path)


GOOD = b'{"problem": "x", "answer": "1"}\n'


@pytest.mark.parametrize("name,data,message", [
    ("latin1.jsonl", GOOD + '{"problem": "caf\xe9", "answer": "1"}\n'.encode("latin-1"), r":2: not UTF-8 text \(byte 0xe9\)"),
    ("fake.jsonl.gz", GOOD, r": not a readable gzip file"),
    ("deep.jsonl", GOOD + b"[" * 100_000 + b"]" * 100_000 + b"\n", r":2: JSON that cannot be read \(nested too deeply\)"),
    ("big.jsonl", GOOD + b'{"problem": "x", "answer": 1' + b"0" * 5000 + b"}\n", r":2: JSON that cannot be read \(a number"),
    ("missing.jsonl", GOOD + b'{"problem": "x"}\n', r":2: no field 'answer'"),
    ("item.json", b'[' + GOOD.strip() + b', {"problem": 5, "answer": "1"}]', r" item 1: field 'problem' must be text"),
], ids=["non-utf8", "not-gzip", "deep", "big-int", "missing-field", "array-item"])
def test_a_damaged_file_is_refused_naming_the_file_line_and_field(tmp_path, name, data, message):
    """Regressions of the fuzzer's finds (bare UnicodeDecodeError, gzip.BadGzipFile,
    RecursionError, the int-digit ValueError) and the plain cases beside them."""
    with pytest.raises(MRTUserError) as info:
        _load(tmp_path, name, data)
    assert re.match(re.escape(str(tmp_path / name)) + message, str(info.value)), str(info.value)


@pytest.mark.parametrize("sep", SEPARATORS, ids=["u2028", "u2029", "u0085"])
def test_a_line_separator_inside_a_string_is_text_not_a_line_break(tmp_path, sep):
    row = {"problem": f"one{sep}two", "answer": "1"}
    _, problems = _load(tmp_path, "sep.jsonl", (json.dumps(row, ensure_ascii=False) + "\n").encode())
    assert [p.problem for p in problems] == [row["problem"]]
