"""Fuzz the data loader (mrt_engine.tasks.load_problems) with damaged JSONL/JSON files.

Property: a file of valid rows in UTF-8 loads, row for row; any other file either loads or
raises ValueError/TypeError/KeyError whose message names the file (and the line or field).
Failures of this property found so far are bugs in mrt_engine/tasks/loaders.py: they are
tolerated in the fuzz run (counted) and each has an xfail test of its smallest case below.
"""
import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st

from mrt_engine.tasks import load_problems

from test_fuzz_common import KnownBug, fuzz

pytestmark = pytest.mark.slow

NON_UTF8 = KnownBug("a file that is not UTF-8 raises a bare UnicodeDecodeError without the file or line",
                    UnicodeDecodeError)
NOT_GZIP = KnownBug("a .gz file that is not gzip raises gzip.BadGzipFile (an OSError) without the file",
                    gzip.BadGzipFile)
DEEP = KnownBug("a deeply nested JSON line raises RecursionError", RecursionError)
BIG_INT = KnownBug("an integer of more than 4300 digits raises a ValueError without the file or line",
                   ValueError, "Exceeds the limit")
LINE_SEP = KnownBug("a JSON string holding U+2028, U+2029 or U+0085 (valid JSON, written raw by "
                    "json.dumps(ensure_ascii=False)) is split as a line break and rejected: str.splitlines",
                    ValueError, "not valid JSON")
KNOWN = (NON_UTF8, NOT_GZIP, DEEP, BIG_INT)

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


@st.composite
def data_file(draw):
    """(bytes, suffix, rows, all_good) for one file."""
    rows = draw(st.lists(st.one_of(GOOD_ROW, bad_row()) if draw(st.booleans()) else GOOD_ROW, min_size=1, max_size=5))
    all_good = all(isinstance(r, dict) and _good(r) for r in rows)
    suffix = draw(st.sampled_from([".jsonl", ".json", ".jsonl.gz"]))
    if suffix == ".json" and draw(st.booleans()):
        text = json.dumps(rows, ensure_ascii=False)
    else:
        lines = [json.dumps(r, ensure_ascii=False) for r in rows]
        if draw(st.integers(0, 9)) == 0:  # a damaged or deeply nested line
            all_good = False
            depth = draw(st.integers(1, 50_000))
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["{not json", "[" * depth + "]" * depth])))
        text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n", "\r\n"]))
    text = text.replace(json.dumps(BIG_MARK), BIG_DIGITS)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    if encoding != "utf-8" and data != text.encode("utf-8", errors="replace"):
        all_good = False
    if suffix.endswith(".gz"):
        if draw(st.booleans()):
            data = gzip.compress(data)
        else:
            all_good = False
    return data, suffix, rows, all_good


def _good(row: dict) -> bool:
    answer = row.get("answer")
    return (isinstance(row.get("problem"), str) and not isinstance(answer, bool) and answer != BIG_MARK
            and isinstance(answer, (str, int, float)) and bool(str(answer).strip()))


def test_fuzz_load_problems():
    folder = Path(tempfile.mkdtemp())

    def check(drawn):
        data, suffix, rows, all_good = drawn
        path = folder / f"data{suffix}"
        path.write_bytes(data)
        try:
            problems = load_problems(path, allow_extra=True)  # extra columns are fuzzed too; the rule for them is tested in test_tasks
        except (ValueError, TypeError, KeyError, RecursionError, OSError) as exc:
            has_sep = any(s in json.dumps(rows, ensure_ascii=False) for s in SEPARATORS)
            if any(bug.seen(exc, drawn) for bug in KNOWN) or (has_sep and LINE_SEP.seen(exc, drawn)):
                return
            assert isinstance(exc, (ValueError, TypeError, KeyError)), repr(exc)
            assert str(path) in str(exc), f"error does not name the file: {exc}"
            assert not all_good, f"a file of valid rows failed to load: {exc}"
            return
        if all_good:  # else the encoding may have replaced characters
            assert [p.problem for p in problems] == [r["problem"] for r in rows]
        assert len(problems) == len(rows) and all(isinstance(p.problem, str) for p in problems)
        assert all(isinstance(p.answer, str) and p.answer.strip() for p in problems)

    fuzz("load_problems", check, data_file(), max_examples=1000)
    for bug in (*KNOWN, LINE_SEP):
        print(f"  known bug hit {len(bug.hits)} times: {bug.text}")


def _load(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path, load_problems(path)


@pytest.mark.parametrize("bug,name,data", [
    (NON_UTF8, "latin1.jsonl", '{"problem": "caf\xe9", "answer": "1"}\n'.encode("latin-1")),
    (NOT_GZIP, "fake.jsonl.gz", b'{"problem": "x", "answer": "1"}\n'),
    (DEEP, "deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n"),
    (BIG_INT, "big.jsonl", b'{"problem": "x", "answer": 1' + b"0" * 5000 + b"}\n"),
], ids=["non-utf8", "not-gzip", "deep", "big-int"])
def test_known_loader_bug(tmp_path, bug, name, data):
    try:
        _load(tmp_path, name, data)
    except (ValueError, TypeError, KeyError) as exc:
        if bug.seen(exc, name):
            pytest.xfail(f"bug: {bug.text} (mrt_engine/tasks/loaders.py)")
        assert name in str(exc)  # fixed: a clear error naming the file
    except Exception as exc:  # noqa: BLE001 - the bug is exactly an exception of another type
        assert bug.seen(exc, name), repr(exc)
        pytest.xfail(f"bug: {bug.text} (mrt_engine/tasks/loaders.py)")


def test_known_loader_bug_line_separator_in_a_string(tmp_path):
    row = {"problem": "one\u2028two", "answer": "1"}
    try:
        _, problems = _load(tmp_path, "sep.jsonl", (json.dumps(row, ensure_ascii=False) + "\n").encode())
    except ValueError as exc:
        assert LINE_SEP.seen(exc, row)
        pytest.xfail(f"bug: {LINE_SEP.text} (mrt_engine/tasks/loaders.py)")
    assert problems[0].problem == row["problem"]
