"""The CLI speaks in one line: input and config errors print `mrt-engine: error: ...` and
exit 2 (`--debug` shows the traceback); unexpected errors keep theirs. Nothing is silent:
`train --resume` needs a checkpoint, a fresh run refuses a non-empty output directory, and an
unknown field in traces.jsonl is an error."""
import json
import subprocess
import sys

import pytest

from mrt_engine.cli import main
from mrt_engine.errors import MRTUserError, one_line, unknown_fields, user_input

WAIT3 = "Let me compute.\n\n2+3 is 5.\n\nWait, check: 5.\n\nSo 5."


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mrt-engine: error: "), err
    return err[0][len("mrt-engine: error: "):]


def test_console_script_prints_one_line_and_exits_2(tmp_path):
    data = _jsonl(tmp_path / "traces.jsonl", [{"id": "a", "problem": "2+3?", "answer": "5", "trcae": WAIT3}])
    proc = subprocess.run([sys.executable, "-m", "mrt_engine.cli", "progress", "--model", "tiny", "--data", str(data),
                           "--out", str(tmp_path / "o.jsonl")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == (f"mrt-engine: error: {data}:1: unknown field 'trcae' (did you mean 'trace'?); known "
                           "fields: ['answer', 'id', 'problem', 'trace', 'traces']. Fix the name, or pass "
                           "--allow-extra-fields to ignore extra fields\n")
    assert "Traceback" not in proc.stderr


def test_progress_input_errors_name_file_and_line(tmp_path, capsys):
    out = str(tmp_path / "o.jsonl")
    data = _jsonl(tmp_path / "t.jsonl", [{"problem": "p", "answer": "1", "trace": "x"},
                                         {"id": "b", "problem": "p", "answer": " ", "trace": "x"}])
    assert main(["progress", "--model", "tiny", "--data", str(data), "--out", out]) == 2
    assert _error(capsys) == (f"{data}:2: field 'answer' holds an empty answer; give the text that goes inside "
                              "\\boxed{} (an empty answer cannot be scored)")
    assert main(["progress", "--model", "tiny", "--data", str(tmp_path / "none.jsonl"), "--out", out]) == 2
    assert _error(capsys) == f"--data: No such file or directory: {tmp_path / 'none.jsonl'}"
    (tmp_path / "bad.jsonl").write_text('{"problem": "p", "answer": "1"}\n{oops\n')
    assert main(["progress", "--model", "tiny", "--data", str(tmp_path / "bad.jsonl"), "--out", out]) == 2
    assert _error(capsys).startswith(f"{tmp_path / 'bad.jsonl'}:2: not valid JSON")
    with pytest.raises(MRTUserError, match="unknown field 'trcae'"):  # --debug: the exception itself
        main(["--debug", "progress", "--model", "tiny", "--data",
              str(_jsonl(tmp_path / "x.jsonl", [{"problem": "p", "answer": "1", "trcae": "t"}])), "--out", out])


def test_extra_fields_allowed_on_request_and_single_episode_warned(tmp_path, capsys):
    data = _jsonl(tmp_path / "t.jsonl", [{"id": "q7", "problem": "2+3?", "answer": "5", "trace": WAIT3,
                                          "source": "hand"}])
    out = tmp_path / "o.jsonl"
    args = ["progress", "--model", "tiny", "--data", str(data), "--out", str(out), "--template", "boxed"]
    with pytest.warns(Warning) as record:
        assert main([*args, "--allow-extra-fields"]) == 0
    assert json.loads(out.read_text())["num_episodes"] == 1
    msgs = [str(w.message) for w in record if type(w.message).__name__ == "SingleEpisodeWarning"]
    assert len(msgs) == 1 and msgs[0].startswith(f"{data}:1 (id 'q7', trace 0): segment: the trace is one episode "
                                                 "although paragraph 3 (index 2) starts with 'Wait'")


def test_estimator_item_errors_are_mapped_to_file_line_and_id():
    from mrt_engine.commands.progress import _estimate

    class Est:
        def estimate(self, problems, traces, answers):
            raise ValueError("item 1: the reference answer 'x' does not round-trip through the tokenizer")

    flat = [({"where": "d.jsonl:1", "id": "a", "problem": "p", "answer": "1"}, 0, "t"),
            ({"where": "d.jsonl:4", "id": "b", "problem": "p", "answer": "x"}, 1, "t")]
    with pytest.raises(MRTUserError) as e:
        _estimate(Est(), flat)
    assert str(e.value) == "d.jsonl:4 (id 'b', trace 1): the reference answer 'x' does not round-trip through the tokenizer"


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    import mrt_engine.commands.regret as regret

    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(regret, "run", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["regret", "--progress", "x"])


def test_missing_model_is_one_line(capsys):
    assert main(["generate", "--model", "/no/such/model", "--prompt", "hi"]) == 2
    msg = _error(capsys)
    assert msg.startswith("--model /no/such/model: could not load '/no/such/model'") and "never download" in msg
    assert main(["generate", "--model", "tiny"]) == 2
    assert _error(capsys) == "generate: give --prompt TEXT or --prompts-file FILE"


# ---------------------------------------------------------------- train: nothing silent
@pytest.fixture
def config(tmp_path):
    import yaml

    from mrt_engine.config.presets import shipped_config

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(shipped_config("demo")))
    return path


def test_train_resume_needs_a_checkpoint(tmp_path, config, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output-dir", str(out), "--resume"]) == 2
    assert _error(capsys) == (f"--resume: no checkpoint in {out / 'checkpoints'}; check --output-dir, or pass "
                              "--resume=auto to start fresh when there is none")
    from mrt_engine.commands.train import check_output_dir

    check_output_dir(out, resume="auto", overwrite=False)  # auto: no checkpoint is fine
    with pytest.raises(MRTUserError, match="contradict"):
        check_output_dir(out, resume="required", overwrite=True)


def test_train_refuses_a_non_empty_output_dir(tmp_path, config, capsys):
    from mrt_engine.commands.train import check_output_dir

    out = tmp_path / "run"
    (out / "checkpoints" / "step_2").mkdir(parents=True)
    (out / "metrics.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")
    assert main(["train", "--config", str(config), "--output-dir", str(out)]) == 2
    assert _error(capsys) == (f"output_dir {out} is not empty (holds ['checkpoints', 'metrics.jsonl', 'notes.txt']); "
                              "pass --resume to continue that run, --overwrite to replace it, or choose another "
                              "--output-dir")
    check_output_dir(out, resume=None, overwrite=True)  # deletes the run's files, nothing else
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_train_config_errors_are_one_line(tmp_path, config, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--config", str(config), "--output-dir", out, "--set", "stepz=3"]) == 2
    assert _error(capsys).startswith(f"{config}: unknown key(s) ['stepz']; known keys: ['algo',")
    assert main(["train", "--config", str(config), "--set", "steps"]) == 2
    assert _error(capsys) == "--set 'steps': expected KEY=VALUE, e.g. --set algo.alpha=0.5"
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert _error(capsys) == f"{tmp_path / 'nope.yaml'}: No such file or directory: {tmp_path / 'nope.yaml'}"
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert 'line 2, column 1' in _error(capsys)
    assert main(["train", "--config", str(config), "--output-dir", out, "--set", "model.init_checkpoint=/no/w"]) == 2
    assert _error(capsys) == f"{config}: model or data: no weights at /no/w; pass a model.safetensors file or a checkpoint folder"


def test_error_helpers():
    assert one_line("a\n  b\n\nc ") == "a b c"
    with pytest.raises(MRTUserError, match="^f.yaml: missing key 'x'$"):
        with user_input("f.yaml"):
            {}["x"]
    with pytest.raises(ZeroDivisionError):  # not an input error: untouched
        with user_input("f.yaml"):
            1 / 0
    with pytest.raises(MRTUserError, match="^w: boom$"):
        with user_input("w", kinds=(OSError,)):
            raise OSError("boom")
    with pytest.raises(ValueError):
        with user_input("w", kinds=(OSError,)):
            raise ValueError("not an OSError")
    err = unknown_fields({"a": 1, "trcae": 2, "zzz": 3}, ["a", "trace"], where="f:3", fix="Fix it.")
    assert isinstance(err, ValueError)
    assert str(err) == "f:3: unknown field 'trcae' (did you mean 'trace'?), 'zzz'; known fields: ['a', 'trace']. Fix it."
