"""Live progress of runs in other processes (mrt_engine/experiments/live.py): read from each run's
metrics.jsonl, drawn on stderr, never on stdout (the demo's table is the same with or without)."""
import io
import json
import os
import re
import time

from mrt_engine.experiments.live import RunBars, WatchedRun, eta, last_train_row


def write_rows(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.jsonl", "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def train_row(step, tokens):
    return {"step": step, "reward": 0.5, "train_tokens_total": tokens}


def test_last_train_row_skips_eval_rows_half_lines_and_old_files(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert last_train_row(path, since=0) is None  # no file yet
    write_rows(tmp_path, [train_row(1, 100), train_row(2, 210), {"step": 2, "eval/pass@1": 0.5}])
    with open(path, "a") as f:
        f.write('{"step": 3, "rew')  # being written
    row, mtime = last_train_row(path, since=0)
    assert row["step"] == 2 and row["train_tokens_total"] == 210
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert last_train_row(path, since=time.time() - 60) is None  # left by an earlier invocation


def test_eta():
    assert eta(300, 100, 10) == "0:30" and eta(100, 1, 100) == "2:46:40"
    assert eta(100, 0, 10) == "?" and eta(100, 5, 0) == "?"


def test_one_line_per_run_with_step_phase_and_eta(tmp_path):
    runs = [WatchedRun("grpo", tmp_path / "grpo", steps=10, max_train_tokens=1000),
            WatchedRun("mrt_dense", tmp_path / "mrt_dense", steps=4, max_train_tokens=None)]
    err = io.StringIO()
    with RunBars(runs, enabled=True, file=err, interval_s=3600) as bars:  # drawn by refresh() here, not the thread
        assert "starting" in err.getvalue()
        write_rows(runs[0].run_dir, [train_row(1, 100)])
        bars.refresh()
        write_rows(runs[0].run_dir, [train_row(2, 400)])
        write_rows(runs[1].run_dir, [train_row(4, 50)])  # its last step: now measuring
        bars.refresh()
        screen = err.getvalue()
        assert re.search(r"grpo\s+40%.*400/1000.*step 2/10, ETA \d+:\d\d", screen), screen
        assert re.search(r"mrt_dense 100%.*4/4.*step 4/4, measuring", screen), screen
        bars.done(0)
        bars.done(1, "reused")
    screen = err.getvalue()
    assert re.search(r"grpo\s+100%.*1000/1000.*done\]", screen) and "reused]" in screen, screen


def test_one_combined_line(tmp_path):
    runs = [WatchedRun(f"grpo s{k}", tmp_path / f"s{k}", steps=8, max_train_tokens=800) for k in range(3)]
    err = io.StringIO()
    with RunBars(runs, combined=True, enabled=True, file=err, interval_s=3600) as bars:
        write_rows(runs[1].run_dir, [train_row(3, 300)])
        bars.done(0)
        screen = err.getvalue().split("\r")[-1]
        assert re.search(r"3 runs\s+46%.*1100/2400.*1/3 done, ETA \d+:\d\d; grpo s1 step 3/8", screen), screen


def test_disabled_off_a_terminal_and_writes_nothing(tmp_path):
    err = io.StringIO()  # not a tty
    with RunBars([WatchedRun("grpo", tmp_path, steps=2, max_train_tokens=None)], file=err) as bars:
        assert not bars.enabled
        bars.done(0)
        with bars.paused():
            pass
    assert err.getvalue() == ""


def test_the_demo_table_on_stdout_is_the_same_with_progress(tmp_path, monkeypatch, capsys):
    import mrt_engine.experiments.compare.run as run_mod
    from mrt_engine.commands.demo import run_demo

    measure = {"pass@1": 0.25, "tokens": 100.0, "episodes": 2.0, "progress": 0.1, "j_empty": 0.05,
               "regret": {"256": 0.6}, "reliability": {"split_half_r": 0.4}, "num_problems": 3}

    def fake_run_one(base, arm, seed, run_dir, spec, measure_start=False):
        from pathlib import Path

        write_rows(Path(run_dir), [train_row(1, 30_000), train_row(2, 60_000)])
        return {"arm": arm, "start": measure if measure_start else None, "final": {**measure, "pass@1": 0.5},
                "train_tokens": 60_000, "steps": 2}

    monkeypatch.setattr(run_mod, "run_one", fake_run_one)
    outputs = {}
    for progress in (False, True):
        run_demo(output_dir=str(tmp_path / str(progress)), jobs=1, progress=progress)
        out, err = capsys.readouterr()
        outputs[progress] = re.sub(r"\(\d+ s\)", "(N s)", out.replace(str(tmp_path / str(progress)), "OUT"))
        assert ("grpo" in err and "done]" in err) == progress, err
    assert outputs[True] == outputs[False]
    assert "after grpo" in outputs[True] and "\r" not in outputs[True]


def test_run_all_yields_in_order_and_reports_each_run(monkeypatch):
    import mrt_engine.experiments.compare.run as run_mod

    monkeypatch.setattr(run_mod, "run_one", lambda arm, reused: {"arm": arm, **({"reused": True} if reused else {})})
    seen = []
    recs = list(run_mod.run_all([("a", False), ("b", True)], jobs=1, on_done=lambda i, note: seen.append((i, note))))
    assert [r["arm"] for r in recs] == ["a", "b"] and seen == [(0, "done"), (1, "reused")]

    def boom(*a):
        raise RuntimeError("x")

    monkeypatch.setattr(run_mod, "run_one", boom)
    seen.clear()
    try:
        list(run_mod.run_all([("a", False)], jobs=1, on_done=lambda i, note: seen.append((i, note))))
    except RuntimeError:
        pass
    assert seen == [(0, "failed")]
