"""`mrt-engine progress` and `mrt-engine regret` end to end on the tiny model."""
import json
import re

import pytest

from mrt_engine.cli import main

from test_progress import MANY, ONE


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_progress_then_regret(tmp_path, capsys):
    data = tmp_path / "traces.jsonl"
    _write(data, [{"id": "a", "problem": "What is 2 + 3?", "answer": "5", "trace": MANY},
                  {"id": "b", "problem": "What is 2 + 3?", "answer": ["5", "five"], "traces": [ONE, ""]}])
    out = tmp_path / "progress.jsonl"
    assert main(["progress", "--model", "tiny", "--data", str(data), "--out", str(out), "--template", "boxed"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["trace_index"]) for r in rows] == [("a", 0), ("b", 0), ("b", 1)]
    assert [r["num_episodes"] for r in rows] == [3, 1, 0]
    assert all(len(r["j"]) == r["num_episodes"] + 1 for r in rows)
    assert "progress reliability (score mode, exact): r 1.000" in capsys.readouterr().err
    png, summary = tmp_path / "regret.png", tmp_path / "summary.json"
    assert main(["regret", "--progress", str(out), "--plot", str(png), "--budgets", "100,400",
                 "--out", str(summary)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    s = json.loads(summary.read_text())
    assert s["num_traces"] == 3 and set(s["normalized_regret"]) == {"100", "400"}
    assert all(0 <= v <= 1 for v in s["normalized_regret"].values())


def test_bad_input_files(tmp_path, capsys):
    # input errors: one line naming file:line, exit 2 (tests/test_cli.py has the rest)
    data = tmp_path / "bad.jsonl"
    _write(data, [{"problem": "x", "trace": "y"}])
    assert main(["progress", "--model", "tiny", "--data", str(data), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "bad.jsonl:1: missing field 'answer'" in capsys.readouterr().err
    prog = tmp_path / "p.jsonl"
    _write(prog, [{"j": [0.5]}])
    assert main(["regret", "--progress", str(prog)]) == 2
    assert re.search(r"mrt-engine: error: .*p.jsonl:1: .*lacks fields", capsys.readouterr().err)


def test_regret_envelope_from_sample_records(tmp_path):
    # A hand-made sample-mode record: J falls from 0.75 to 0.25 while maj@k from the first
    # cut stays high, so the envelope regret is positive.
    rec = {"episodes": ["a", "b"], "cut_chars": [0, 1, 2], "cut_tokens": [0, 1, 2], "j": [0.75, 0.5, 0.25],
           "j_stderr": [0.2, 0.2, 0.2], "progress": [-0.25, -0.25], "tokens_at_cut": [10, 20, 30],
           "answer_tokens": [2, 2, 2], "outcome": 0.0, "natural_end_included": True, "mode": "sample",
           "scores": [[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]],
           "answers": [["5", "5", "5", "4"], ["5", "5", "4", "4"], ["5", "4", "4", "3"]]}
    prog = tmp_path / "p.jsonl"
    _write(prog, [rec])
    out = tmp_path / "s.json"
    assert main(["regret", "--progress", str(prog), "--budgets", "30", "--out", str(out)]) == 0
    s = json.loads(out.read_text())
    assert 0 < s["envelope_regret_vs_maj"] < 1
    assert s["mean_progress"] == pytest.approx(-0.25)


def test_sample_mode_prints_split_half_reliability(tmp_path, capsys):
    data = tmp_path / "traces.jsonl"
    _write(data, [{"problem": "What is 2 + 3?", "answer": "5", "traces": [MANY, MANY]}])
    out = tmp_path / "progress.jsonl"
    args = ["progress", "--model", "tiny", "--data", str(data), "--out", str(out), "--template", "boxed",
            "--mode", "sample", "--num-branches", "2", "--max-answer-tokens", "2", "--method", "naive"]
    assert main(args) == 0
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("progress reliability") and "6 episodes" in err
    assert main(args[:-6] + ["--num-branches", "1", "--method", "naive"]) == 0
    assert "needs --num-branches >= 2" in capsys.readouterr().err
