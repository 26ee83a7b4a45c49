"""The trace viewer (`mrt-engine report`): records in, one self-contained HTML page out."""
import json
import re
from html.parser import HTMLParser

import pytest

from mrt_engine import metrics
from mrt_engine.cli import main
from mrt_engine.progress import ProgressResult, token_curve
from mrt_engine.progress.result import progress_from_j
from mrt_engine.report import (PAPER_BUDGETS, ReportInputError, build_report, choose_budgets, parse_budgets,
                               read_progress, write_report)

NASTY = "Check 2 < 3 & 3 > 2.\n\n<script>alert('x')</script> &amp; \"quoted\"\n\n"


def make_result(episodes, j, tokens, *, outcome=1.0):
    """A ProgressResult as the estimator would return it (one cut per episode end)."""
    ends = [0]
    for e in episodes:
        ends.append(ends[-1] + len(e))
    return ProgressResult(episodes=list(episodes), cut_chars=ends, cut_tokens=[c // 4 for c in ends], j=list(j),
                          j_stderr=[0.0] * len(j), progress=progress_from_j(list(j)),
                          tokens_at_cut=[float(t) for t in tokens], outcome=outcome,
                          natural_end_included=bool(episodes))


def sample_results():
    return [
        make_result(["First try.\n\n", NASTY, "So \\boxed{5}."], [0.1, 0.4, 0.3, 0.9], [50, 120, 300, 290]),
        make_result(["One shot: \\boxed{7}."], [0.2, 0.6], [40, 80], outcome=0.0),
        make_result([], [0.05], [30], outcome=None),
    ]


def write_progress(path, results, *, problem="What is 2 + 3? (a < b & c)"):
    rows = [{"id": f"q{k}<&>", "trace_index": 0, "problem": problem, "answer": ["5", "\\frac{10}{2}"],
             "generated": False, **r.to_json()} for k, r in enumerate(results)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class Elements(HTMLParser):
    """Attributes of every element, and the text inside each ``.episode .text``."""

    def __init__(self):
        super().__init__()
        self.elements, self.episode_texts, self._in_text, self._buf = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if self._in_text:
            self._in_text += 1
        elif attrs.get("class") == "text" and tag == "div":
            self._in_text, self._buf = 1, []

    def handle_endtag(self, tag):
        if self._in_text:
            self._in_text -= 1
            if not self._in_text:
                self.episode_texts.append("".join(self._buf))

    def handle_data(self, data):
        if self._in_text:
            self._buf.append(data)

    def with_class(self, name):
        return [a for _, a in self.elements if name in (a.get("class") or "").split()]


def parse(html):
    p = Elements()
    p.feed(html)
    return p


def test_page_has_every_episode_with_its_j_and_the_regret(tmp_path):
    results = sample_results()
    src = write_progress(tmp_path / "progress.jsonl", results)
    report = write_report(str(src), str(tmp_path / "r.html"), budgets=[100, 400])
    page = parse((tmp_path / "r.html").read_text(encoding="utf-8"))
    episodes = page.with_class("episode")
    assert len(episodes) == sum(r.num_episodes for r in results) == report.num_episodes == 4
    want_j = [j for r in results for j in r.j[1:]]
    assert [float(e["data-j"]) for e in episodes] == want_j
    assert [float(e["data-progress"]) for e in episodes] == pytest.approx([p for r in results for p in r.progress])
    # The episode texts come back exactly (escaped in the file, unescaped by the parser).
    assert page.episode_texts == [e for r in results for e in r.episodes]
    means = metrics.mean_normalized_regret([token_curve(r) for r in results], [100.0, 400.0])
    assert report.mean_regret == pytest.approx(means)
    sections = [a for t, a in page.elements if t == "section"]
    assert [int(s["data-num-episodes"]) for s in sections] == [3, 1, 0]


def test_index_cells_carry_the_regret_per_trace(tmp_path):
    results = sample_results()
    report = build_report(read_progress(str(write_progress(tmp_path / "p.jsonl", results))), budgets=[100.0])
    html = report.html
    head, body = html.split('<table id="index"', 1)[1].split("<tbody>", 1)
    assert 'data-sort="regret_100"' in head
    col = [k for k, th in enumerate(re.split(r"<th[\s>]", head)[1:]) if 'data-sort="regret_100"' in th][0]
    for k, r in enumerate(results):
        row = body.split(f'data-trace="{k}">', 1)[1].split("</tr>", 1)[0]
        cell = row.split("<td")[1:][col]
        value = float(cell.split('data-v="', 1)[1].split('"', 1)[0])
        assert value == pytest.approx(metrics.normalized_regret(*token_curve(r), 100.0))


def test_text_is_escaped_and_page_is_self_contained(tmp_path):
    src = write_progress(tmp_path / "p.jsonl", sample_results())
    html = build_report(read_progress(str(src))).html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "2 &lt; 3 &amp; 3 &gt; 2" in html and "&amp;amp;" in html
    assert "q0&lt;&amp;&gt;" in html and "(a &lt; b &amp; c)" in html
    assert html.count("<script>") == 2  # the error hook and the main script, both ours
    for external in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert external not in html, external
    assert html.count("<svg") == 2 * 3  # two charts per trace


def test_lone_surrogate_is_written_as_text(tmp_path):
    src = write_progress(tmp_path / "p.jsonl", [make_result(["bad \ud800 byte"], [0.1, 0.2], [10, 20])])
    write_report(str(src), str(tmp_path / "r.html"))
    assert "bad \\ud800 byte" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_budgets_follow_the_trace_lengths():
    short = read_like([make_result(["a"], [0.1, 0.5], [100, 237])])
    assert choose_budgets(short) == [60.0, 120.0, 180.0, 240.0]
    long = read_like([make_result(["a"], [0.1, 0.5], [100, 5000])])
    assert choose_budgets(long) == list(PAPER_BUDGETS)
    assert parse_budgets("8192, 4096,4096") == [4096.0, 8192.0]
    for bad in ("4k", "0", "-5", "nan", ""):
        with pytest.raises(ValueError, match="--budgets"):
            parse_budgets(bad)


def read_like(results):
    from mrt_engine.report.load import _record

    return [_record(r.to_json(), k + 1) for k, r in enumerate(results)]


GOOD = json.dumps(make_result(["a"], [0.1, 0.5], [10, 20]).to_json())
BAD_FILES = [
    (GOOD + "\n{not json\n", ":2: not valid JSON"),
    (GOOD + "\n\n" + json.dumps({"j": [0.5]}) + "\n", ":3: record lacks fields"),
    ("[1, 2]\n", ":1: expected a JSON object"),
    (GOOD.replace('"j": [0.1, 0.5]', '"j": [0.1, "x"]') + "\n", ":1: field 'j'[1] must be a finite number"),
    (GOOD.replace('"j": [0.1, 0.5]', '"j": [0.1, 0.5, 0.7]') + "\n", ":1: field 'cut_chars' has 2 values"),
    (GOOD.replace('"j": [0.1, 0.5]', '"j": [0.1, 1.5]') + "\n", ":1: field 'j' holds 1.5, outside"),
    (GOOD.replace('"episodes": ["a"]', '"episodes": "a"') + "\n", ":1: field 'episodes' must be a list"),
    (GOOD.replace('"outcome": 1.0', '"outcome": "yes"') + "\n", ":1: field 'outcome'"),
    (GOOD.replace('"progress": [0.4]', '"progress": [0.4, 0.1]') + "\n", ":1: field 'progress' has 2 values"),
    ("\n  \n", ": no progress records"),
]


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_bad_records_get_one_line_naming_file_and_line(tmp_path, capsys, text, message):
    src = tmp_path / "p.jsonl"
    src.write_text(text, encoding="utf-8")
    with pytest.raises(ReportInputError, match=re.escape(f"{src}{message}")):
        read_progress(str(src))
    assert main(["report", "--progress", str(src), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{src}{message}" in err
    assert not (tmp_path / "r.html").exists()


def test_missing_file_and_bad_encoding(tmp_path, capsys):
    assert main(["report", "--progress", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.jsonl: cannot read" in err
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(GOOD.encode() + b"\n" + '{"id": "caf\xe9"}'.encode("latin-1") + b"\n")
    assert main(["report", "--progress", str(src), "--out", str(tmp_path / "r.html")]) == 2
    assert f"{src}:2: not UTF-8 text" in capsys.readouterr().err
    assert main(["report", "--progress", str(src), "--out", str(tmp_path / "r.html"), "--budgets", "x"]) == 2
    assert "--budgets: 'x' is not a number" in capsys.readouterr().err


def test_progress_then_report_on_the_tiny_model(tmp_path, capsys):
    data = tmp_path / "traces.jsonl"
    trace = ("Add 2 & 3.\n\n2 + 3 = 5.\n\nSo 5.\n\nWait, is 5 < 6?\n\nYes.\n\nFine.\n\nThe answer is \\boxed{5}.")
    data.write_text(json.dumps({"id": "a<b", "problem": "What is 2 + 3?", "answer": "5", "traces": [trace, ""]})
                    + "\n")
    prog = tmp_path / "progress.jsonl"
    assert main(["progress", "--model", "tiny", "--data", str(data), "--out", str(prog), "--template", "boxed"]) == 0
    out = tmp_path / "report.html"
    assert main(["report", "--progress", str(prog), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    rows = [json.loads(line) for line in prog.read_text().splitlines()]
    page = parse(out.read_text(encoding="utf-8"))
    assert [float(e["data-j"]) for e in page.with_class("episode")] == [j for r in rows for j in r["j"][1:]]
    assert len(page.with_class("episode")) == sum(r["num_episodes"] for r in rows) == 2
