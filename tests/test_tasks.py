import json
import re

import pytest

from mrt_engine.grading import CORRECT, extract_boxed, grade
from mrt_engine.tasks.countdown import evaluate_expression, verify_countdown
from mrt_engine.tasks import (
    ALLOWED_CHARS,
    DIFFICULTIES,
    TASKS,
    Problem,
    get_task,
    load_problems,
    make_problems,
    save_problems,
    solution_trace,
    verifier_for,
)

SYNTHETIC = ["chain", "search", "countdown"]
R1_STARTS = ("Wait", "But wait", "Alternatively", "Is there another way to think about this?",
             "But let me double-check", "But hold on")


def r1_episodes(text):
    """The R1 rule of docs/method.md, restated here on purpose (independent of episodes.py):
    a keyword paragraph starts an episode unless the previous boundary is 0-2 paragraphs
    before it. Returns the episodes as lists of paragraphs."""
    paragraphs = text.split("\n\n")
    bounds = [0]
    for i, p in enumerate(paragraphs):
        if i > 0 and p.startswith(R1_STARTS) and i - bounds[-1] >= 3:
            bounds.append(i)
    bounds.append(len(paragraphs))
    return [paragraphs[a:b] for a, b in zip(bounds, bounds[1:])]


# ---------------------------------------------------------------- independent solvers


def solve_chain(meta):
    v = meta["start"]
    for op, k in meta["steps"]:
        if op == "mul":
            v *= k
        elif op == "add":
            v += k
        elif op == "sub":
            v -= k
        elif op == "mod":
            v %= k
        elif op == "digit_sum":
            v = sum(map(int, str(v)))
        else:
            raise AssertionError(op)
        assert v >= 0
    return v


def search_solutions(meta):
    def ok(x, rule):
        kind, a, b = rule
        return {"mod": lambda: x % a == b, "parity": lambda: x % 2 == a, "gt": lambda: x > a,
                "lt": lambda: x < a, "digit_sum": lambda: sum(map(int, str(x))) == a}[kind]()

    return [x for x in range(meta["lo"], meta["hi"] + 1) if all(ok(x, r) for r in meta["rules"])]


@pytest.fixture(scope="module")
def problems():
    return {(t, d): make_problems(t, 40, seed=7, difficulty=d) for t in SYNTHETIC for d in DIFFICULTIES}


# ---------------------------------------------------------------- generation


def test_registry():
    assert set(SYNTHETIC) <= set(TASKS)
    for name in SYNTHETIC:
        assert get_task(name).name == name
    with pytest.raises(KeyError, match="unknown task 'nope'; registered tasks"):
        get_task("nope")


@pytest.mark.parametrize("task", SYNTHETIC)
def test_reproducible_by_seed(task):
    a = make_problems(task, 12, seed=3)
    b = make_problems(task, 12, seed=3)
    c = make_problems(task, 12, seed=4)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.problem for p in a] != [p.problem for p in c]
    # prefix-stable: problem i depends on i, not on n
    assert [p.to_dict() for p in make_problems(task, 5, seed=3)] == [p.to_dict() for p in a[:5]]
    assert len({p.id for p in a}) == 12
    assert solution_trace(a[0], seed=1) == solution_trace(b[0], seed=1)


def test_make_problems_bad_arguments():
    with pytest.raises(ValueError, match="unknown difficulty 'extreme'"):
        make_problems("chain", 2, seed=0, difficulty="extreme")
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        make_problems("chain", -1, seed=0)
    with pytest.raises(KeyError, match="registered tasks"):
        make_problems("countdown-typo", 2, seed=0)
    assert make_problems("chain", 0, seed=0) == []


@pytest.mark.parametrize("task", SYNTHETIC)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_answers_are_right(problems, task, difficulty):
    for p in problems[(task, difficulty)]:
        assert p.task == task and p.meta["difficulty"] == difficulty
        if task == "chain":
            assert p.answer == str(solve_chain(p.meta))
        elif task == "countdown":
            value, used = evaluate_expression(p.answer)
            assert value == p.meta["target"] and sorted(used) == p.meta["numbers"]
            assert str(p.meta["target"]) in p.problem
        else:
            assert search_solutions(p.meta) == [int(p.answer)], p.problem
            # every rule is stated in the problem text
            assert p.problem.count(" = ") + p.problem.count(" is ") + p.problem.count(" > ") \
                + p.problem.count(" < ") >= len(p.meta["rules"])
        assert set(p.problem) <= ALLOWED_CHARS, p.problem
        assert TASKS[task].verifier(p.answer, p.answer)


def test_search_answers_unique_at_scale():
    from mrt_engine.tasks.search import _solutions

    for d in DIFFICULTIES:
        for p in make_problems("search", 500, seed=11, difficulty=d):
            assert _solutions(p.meta["lo"], p.meta["hi"], p.meta["rules"]) == [int(p.answer)]


def test_problem_text_examples():
    p = make_problems("chain", 1, seed=0)[0]
    assert p.problem.startswith("Start with ") and p.problem.endswith("What is the result?")
    p = make_problems("search", 1, seed=0)[0]
    assert re.match(r"Find the integer x with \d+ <= x <= \d+ such that ", p.problem)


# ---------------------------------------------------------------- traces


@pytest.mark.parametrize("task", SYNTHETIC)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_traces_grade_correct(problems, task, difficulty):
    verifier = TASKS[task].verifier
    for i, p in enumerate(problems[(task, difficulty)]):
        for num_mistakes in (None, 0, 1, 2):
            trace = solution_trace(p, seed=i, num_mistakes=num_mistakes)
            assert trace.endswith("The final answer is \\boxed{" + p.answer + "}.")
            assert "</think>" not in trace
            assert set(trace) <= ALLOWED_CHARS
            assert grade(trace, p.answer, verifier=verifier).reason == CORRECT
            assert grade(trace, p.answer).reason == CORRECT


@pytest.mark.parametrize("task", SYNTHETIC)
def test_traces_are_multi_episode(problems, task):
    for i, p in enumerate(problems[(task, "easy")]):
        for num_mistakes in (0, 1, 2):
            trace = solution_trace(p, seed=i, num_mistakes=num_mistakes)
            episodes = r1_episodes(trace)
            assert len(episodes) >= 2, trace
            for ep in episodes[1:]:
                assert ep[0].startswith(R1_STARTS)
            # every keyword paragraph is a real boundary: episodes are >= 3 paragraphs
            # apart (the last one may hold only the retry line and the answer)
            starts = sum(par.startswith(R1_STARTS) for par in trace.split("\n\n"))
            assert starts == len(episodes) - 1, trace


def first_commitment(task, trace):
    """The first answer a trace commits to (what a forced stop after it would give)."""
    if task == "chain":
        return re.search(r"So I get (\d+)\.", trace).group(1)
    if task == "search":
        return re.search(r"So x = (\d+) works\.", trace).group(1)
    paragraphs = trace.split("\n\n")
    i = next(i for i, par in enumerate(paragraphs) if par.startswith("That makes "))
    return re.search(r"(?:[Tt]ry|about) (.+?)[.?]$", paragraphs[i - 2]).group(1)


@pytest.mark.parametrize("task", SYNTHETIC)
def test_traces_match_the_episode_segmenter(problems, task):
    """The package's own R1 segmenter cuts our traces where the restated rule does."""
    from mrt_engine.episodes import segment

    for i, p in enumerate(problems[(task, "easy")] + problems[(task, "hard")]):
        trace = solution_trace(p, seed=i)
        episodes = segment(trace, scheme="r1")
        assert "".join(e.text for e in episodes) == trace
        expected = r1_episodes(trace)
        assert len(episodes) == len(expected) >= 2
        for e, paragraphs in zip(episodes[1:], expected[1:]):
            assert e.text.lstrip("\n").startswith(paragraphs[0])


@pytest.mark.parametrize("task", SYNTHETIC)
def test_mistakes_are_caught(problems, task):
    """With a mistake, an early episode commits to a wrong answer and a later check
    catches it; the last commitment is right. This is what makes forced-answer success
    rise across episodes."""
    verifier = TASKS[task].verifier
    found = 0
    for i, p in enumerate(problems[(task, "easy")]):
        clean = solution_trace(p, seed=i, num_mistakes=0)
        one = solution_trace(p, seed=i, num_mistakes=1)
        assert verifier(first_commitment(task, clean), p.answer), clean
        if TASKS[task].max_mistakes(p) == 0:
            assert one == clean
            continue
        if not verifier(first_commitment(task, one), p.answer):
            found += 1
            assert len(r1_episodes(one)) > len(r1_episodes(clean)) or task == "countdown"
            assert grade(one, p.answer, verifier=verifier).reason == CORRECT
    assert found >= 10


def test_countdown_verifier():
    assert verify_countdown("7 * 3 + 1", "3 * 7 + 1")
    assert verify_countdown(r"(7 \times 3) + 1", "3 * 7 + 1")
    assert verify_countdown("1 + 3 * 7 = 22", "3 * 7 + 1")
    assert not verify_countdown("22", "3 * 7 + 1")  # numbers not used
    assert not verify_countdown("3 * 7 + 1 + 0", "3 * 7 + 1")  # extra number
    assert not verify_countdown("3 * 7 - 1", "3 * 7 + 1")  # wrong value
    assert verify_countdown("8 / 2 * 3", "3 * 8 / 2")  # exact fractions
    assert not verify_countdown("8 / 3 * 2", "3 * 8 / 2")
    for bad in ["3 ** 2", "__import__('os')", "x + 1", "1 / 0", "(", "3 7"]:
        with pytest.raises(ValueError):
            verify_countdown(bad, "3 * 7 + 1")
    assert grade(r"\boxed{7 \times 3 + 1}", "3 * 7 + 1", verifier=verify_countdown).reason == CORRECT
    assert grade(r"\boxed{22}", "3 * 7 + 1", verifier=verify_countdown).score == 0.0


def test_mistakes_capped_and_checked():
    p = make_problems("chain", 1, seed=0)[0]
    cap = TASKS["chain"].max_mistakes(p)
    assert solution_trace(p, seed=0, num_mistakes=99) == solution_trace(p, seed=0, num_mistakes=cap)
    with pytest.raises(ValueError, match="num_mistakes"):
        solution_trace(p, seed=0, num_mistakes=-1)


def test_trace_lengths_at_easy(problems):
    for task in SYNTHETIC:
        lengths = [len(solution_trace(p, seed=i)) for i, p in enumerate(problems[(task, "easy")])]
        assert 100 <= min(lengths) and sum(lengths) / len(lengths) <= 450, (task, lengths)
        assert max(len(p.problem) for p in problems[(task, "easy")]) <= 120


def test_trace_refuses_edited_problem():
    p = make_problems("chain", 1, seed=0)[0]
    bad = Problem(p.id, p.problem, str(int(p.answer) + 1), p.task, p.meta)
    with pytest.raises(RuntimeError, match="does not end in its reference answer"):
        solution_trace(bad)
    with pytest.raises(KeyError, match="unknown task 'gsm8k'"):
        solution_trace(Problem("a", "b", "1", "gsm8k", {}))


def test_verifier_for():
    p = make_problems("countdown", 1, seed=0)[0]
    assert verifier_for(p) is verify_countdown
    assert verifier_for(Problem("a", "b", "1", "gsm8k", {})) is None


def test_problem_type_checks():
    with pytest.raises(TypeError, match="Problem.answer must be a str"):
        Problem("a", "b", 3, "t", {})


# ---------------------------------------------------------------- loaders

ROWS = [
    {"question": "What is 1+1?", "final": 2, "uid": "q0", "source": "toy"},
    {"question": "What is 1/2 as a decimal?", "final": "0.5", "uid": "q1", "source": "toy"},
    {"question": "Name a prime.", "final": "7", "uid": "q2", "source": "toy"},
]


def _check_loaded(problems, task):
    assert [p.problem for p in problems] == [r["question"] for r in ROWS]
    assert [p.answer for p in problems] == ["2", "0.5", "7"]
    assert [p.id for p in problems] == ["q0", "q1", "q2"]
    assert all(p.task == task and p.meta == {"source": "toy"} for p in problems)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    return path


def test_load_jsonl(tmp_path):
    path = _write_jsonl(tmp_path / "toy.jsonl", ROWS)
    problems = load_problems(path, problem_field="question", answer_field="final", id_field="uid", allow_extra=True)
    _check_loaded(problems, "toy")
    kw = dict(problem_field="question", answer_field="final", allow_extra=True)
    assert len(load_problems(path, limit=2, **kw)) == 2
    assert load_problems(path, **kw)[1].id == "toy-1"


def test_unknown_fields_are_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "toy.jsonl", ROWS)
    with pytest.raises(ValueError) as e:
        load_problems(path, problem_field="question", answer_field="final", id_field="uid")
    msg = str(e.value)
    assert msg.startswith(f"{path}:1: unknown field 'source';")
    assert "known fields: ['final', 'id', 'meta', 'question', 'task', 'uid']" in msg and "allow_extra=True" in msg
    typo = _write_jsonl(tmp_path / "typo.jsonl", [{"problem": "a", "answer": "1"}, {"problem": "b", "answr": "2"}])
    with pytest.raises(ValueError, match=r"typo.jsonl:2: no field 'answer'"):
        load_problems(typo)
    typo.write_text(json.dumps({"problem": "a", "answer": "1", "anwser": "2"}) + "\n")
    with pytest.raises(ValueError, match=r"typo.jsonl:1: unknown field 'anwser' \(did you mean 'answer'\?\)"):
        load_problems(typo)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"problem": "x", "answer": "1", "level": 3}]), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t.parquet: unknown field 'level'"):
        load_problems(tmp_path / "t.parquet")
    assert load_problems(tmp_path / "t.parquet", allow_extra=True)[0].meta == {"level": 3}


def test_load_json_array_and_gzip(tmp_path):
    import gzip

    (tmp_path / "toy.json").write_text(json.dumps(ROWS, indent=2))
    _check_loaded(load_problems(tmp_path / "toy.json", problem_field="question", answer_field="final",
                                id_field="uid", allow_extra=True), "toy")
    with gzip.open(tmp_path / "toy.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in ROWS))
    _check_loaded(load_problems(tmp_path / "toy.jsonl.gz", problem_field="question", answer_field="final",
                                id_field="uid", allow_extra=True), "toy")
    (tmp_path / "bad.json").write_text('[{"problem": "a", "answer": "1"}, 3]')
    with pytest.raises(ValueError, match="bad.json item 1: expected a JSON object"):
        load_problems(tmp_path / "bad.json")


def test_load_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{**r, "final": str(r["final"])} for r in ROWS])
    pq.write_table(table, tmp_path / "toy.parquet")
    problems = load_problems(tmp_path / "toy.parquet", problem_field="question",
                             answer_field="final", id_field="uid", task="arith", allow_extra=True)
    _check_loaded(problems, "arith")


def test_load_hf_dataset_dir(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = {k: [r[k] if k != "final" else str(r[k]) for r in ROWS] for k in ROWS[0]}
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "toyds"))
    problems = load_problems(tmp_path / "toyds", problem_field="question", answer_field="final",
                             id_field="uid", task="toy", allow_extra=True)
    _check_loaded(problems, "toy")
    DatasetDict({"train": Dataset.from_dict(rows), "test": Dataset.from_dict(rows)}).save_to_disk(
        str(tmp_path / "splits"))
    with pytest.raises(ValueError, match=r"splits \['test', 'train'\]; pass split="):
        load_problems(tmp_path / "splits", problem_field="question", answer_field="final")
    got = load_problems(tmp_path / "splits", problem_field="question", answer_field="final", split="test",
                        allow_extra=True)
    assert len(got) == 3
    with pytest.raises(ValueError, match="no split 'dev'"):
        load_problems(tmp_path / "splits", problem_field="question", answer_field="final", split="dev")


def test_load_missing_field_errors(tmp_path):
    path = _write_jsonl(tmp_path / "toy.jsonl", ROWS)
    with pytest.raises(ValueError) as e:
        load_problems(path)  # default field "problem" is not there
    msg = str(e.value)
    assert "'problem'" in msg and "fields present: ['final', 'question', 'source', 'uid']" in msg
    assert "problem_field=" in msg and "toy.jsonl:1" in msg
    with pytest.raises(ValueError, match="no field 'answer'.*answer_field="):
        load_problems(path, problem_field="question")
    with pytest.raises(ValueError, match="no field 'id'.*id_field="):
        load_problems(path, problem_field="question", answer_field="final", id_field="id")

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"q": "x", "a": "1"}]), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"no field 'problem'.*fields present: \['a', 'q'\]"):
        load_problems(tmp_path / "t.parquet")


def test_load_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data set at"):
        load_problems(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\n{not json}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        load_problems(bad)
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_problems(tmp_path / "list.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unknown format '.csv'"):
        load_problems(tmp_path / "x.csv")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a datasets `save_to_disk` folder"):
        load_problems(tmp_path / "plain")
    (tmp_path / "obj.jsonl").write_text('{"problem": "a", "answer": {"x": 1}}\n')
    with pytest.raises(ValueError, match="'answer' must be text or a number"):
        load_problems(tmp_path / "obj.jsonl")
    (tmp_path / "empty.jsonl").write_text('{"problem": "a", "answer": " "}\n')
    with pytest.raises(ValueError, match="empty.jsonl:1: field 'answer' is empty"):
        load_problems(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match="limit must be"):
        load_problems(bad, limit=-2)
    for name, text in (("none.jsonl", ""), ("blank.jsonl", "\n\n"), ("none.json", "[]")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{name}: no problems in it"):
            load_problems(tmp_path / name)


def test_save_and_load_round_trip(tmp_path):
    problems = make_problems("search", 4, seed=2) + make_problems("chain", 3, seed=2)
    path = save_problems(problems, tmp_path / "mix.jsonl")
    back = load_problems(path, id_field="id")
    assert [p.to_dict() for p in back] == [p.to_dict() for p in problems]
    assert solution_trace(back[0], seed=5) == solution_trace(problems[0], seed=5)


def test_fixture_file_loads():
    from pathlib import Path

    path = Path(__file__).parent / "data" / "tasks_easy.jsonl"
    problems = load_problems(path, id_field="id")
    assert len(problems) == 8
    assert {p.task for p in problems} == {"chain", "search"}
    # the fixture is what make_problems gives today: generation has not drifted
    expected = make_problems("chain", 4, seed=0) + make_problems("search", 4, seed=0)
    assert [p.to_dict() for p in problems] == [p.to_dict() for p in expected]
    for p in problems:
        assert extract_boxed(solution_trace(p, seed=0)) == p.answer
