"""SFT warm start and the demo command (shrunk to seconds)."""
import json

import pytest

from mrt_engine.commands.demo import format_table, run_demo
from mrt_engine.config import SFTConfig
from mrt_engine.config.presets import config_path, shipped_config
from mrt_engine.models import demo_tokenizer, load_demo_model
from mrt_engine.prompts import get_template as build_template
from mrt_engine.trainer.sft import build_examples, run_sft


pytestmark = pytest.mark.usefixtures("one_thread")
DEMO_TEMPLATE = shipped_config("demo")["algo"]["progress"]["template"]


def test_sft_examples_trace_and_meta_prover():
    from mrt_engine.tasks import make_problems, solution_trace

    tok = demo_tokenizer()
    template = build_template(DEMO_TEMPLATE)
    problems = make_problems("chain", 40, seed=3)
    ex = build_examples(problems, tok, seed=0, template=template, termination_fraction=0.25)
    traces, meta = ex[:40], ex[40:]
    assert len(meta) == round(0.25 / 0.75 * 40)  # the requested share
    for p, e in zip(problems, traces):
        assert tok.decode(e.completion_ids, skip_special_tokens=True) == solution_trace(p, seed=problems.index(p))
        assert e.completion_ids[-1] == tok.eos_token_id
    for e in meta:
        context = tok.decode(e.context_ids, skip_special_tokens=True)
        assert context.endswith(template.text)
        # the answer was already stated in the prefix: we never teach a guess
        prefix = context[:-len(template.text)]
        assert e.problem.answer in prefix
        assert tok.decode(e.completion_ids, skip_special_tokens=True) == e.problem.answer + "}"


def test_run_sft_lowers_the_loss_and_writes_weights(tmp_path):
    cfg = SFTConfig(steps=6, batch_size=4, optim={"micro_batch_size": 2, "lr": 3e-3}, output_dir=str(tmp_path / "sft"),
                    data={"task": "chain", "num_train": 16, "num_eval": 2}, eval_every=0, eval_max_tokens=8,
                    template=DEMO_TEMPLATE, termination_fraction=0.2, export=str(tmp_path / "w.safetensors"))
    summary = run_sft(cfg, log=lambda s: None)
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (tmp_path / "w.safetensors").stat().st_size < 4_000_000  # fp16 export: a few MB
    model, _ = load_demo_model(path=tmp_path / "w.safetensors")
    assert "pass@1" in summary and summary["checkpoint"].endswith("step_6")


def test_format_table():
    table = format_table({"before": {"pass@1": 0.25, "tokens": 100.0, "split_half_r": 0.5, "spearman_brown": 0.67},
                          "after grpo": {"pass@1": 0.5, "tokens": 90.0, "split_half_r": 0.6, "spearman_brown": 0.75}})
    head, _, *rows = table.splitlines()
    assert "before" in head and "after grpo" in head
    assert any(r.startswith("pass@1") and "0.250" in r and "0.500" in r for r in rows)
    assert any(r.startswith("progress split-half r") and "0.50" in r for r in rows)
    assert any(r.startswith("progress Spearman-Brown") and "0.67" in r for r in rows)


def test_demo_runs_the_shipped_config(tmp_path, monkeypatch):
    # The recipe reads demo.yaml (no copy of its values in code); each algorithm gets the same
    # config but its arm's keys and its own output folder, and only the first measures the start.
    import mrt_engine.experiments.compare.run as run_mod

    seen = []
    measure = {"pass@1": 0.25, "tokens": 100.0, "episodes": 2.0, "progress": 0.1, "j_empty": 0.05,
               "regret": {"256": 0.6}, "reliability": {"split_half_r": 0.4}, "num_problems": 3}

    def fake_run_one(base, arm, seed, run_dir, spec, measure_start=False):
        seen.append((base, arm, run_dir, measure_start))
        return {"arm": arm, "start": measure if measure_start else None, "final": {**measure, "pass@1": 0.5},
                "train_tokens": 10, "steps": 1}

    monkeypatch.setattr(run_mod, "run_one", fake_run_one)
    report = run_demo(output_dir=str(tmp_path), jobs=1, overrides={"algo.alpha": 0.5})
    expected = shipped_config("demo")
    expected["algo"]["alpha"] = 0.5
    assert [s[0] for s in seen] == [expected, expected]
    assert [(s[1], s[2], s[3]) for s in seen] == [("grpo", str(tmp_path / "grpo"), True),
                                                  ("mrt_dense", str(tmp_path / "mrt_dense"), False)]
    assert report["columns"]["after mrt_dense"]["pass@1"] == 0.5 and report["columns"]["before"]["pass@1"] == 0.25
    assert (tmp_path / "demo.png").stat().st_size > 0


def test_demo_end_to_end_shrunk(tmp_path):
    from mrt_engine.experiments.compare.run import EvalSpec

    small = {"max_train_tokens": 100, "rollout.max_tokens": 24, "prompts_per_step": 2, "data.num_train": 8,
             "data.num_eval": 6, "algo.progress.num_branches": 2, "algo.progress.max_cuts": 2}
    report = run_demo(output_dir=str(tmp_path), jobs=1, overrides=small,
                      eval_spec=EvalSpec(num_samples=2, num_branches=2, budgets=[24], forcing_budget=None))
    assert set(report["columns"]) == {"before", "after grpo", "after mrt_dense"}
    assert all(report["train_tokens"][a] >= 100 for a in ("grpo", "mrt_dense"))
    for algo in ("grpo", "mrt_dense"):  # one folder per algorithm: nothing overwritten
        assert (tmp_path / algo / "result.json").exists() and (tmp_path / algo / "metrics.jsonl").exists()
        final = json.loads((tmp_path / algo / "result.json").read_text())["final"]
        assert "forced_accuracy" not in final and final["num_samples"] == 2  # forcing skipped, the rest measured


def test_repo_configs_are_the_shipped_ones():
    from pathlib import Path

    repo_configs = Path(__file__).resolve().parent.parent / "configs"
    for name in ("demo", "sft_demo", "sft_digit", "compare"):
        assert (repo_configs / f"{name}.yaml").read_text() == config_path(name).read_text()
    with pytest.raises(FileNotFoundError, match="ships"):
        config_path("no_such_recipe")


def test_the_old_presets_path_still_loads_with_a_deprecation_warning():
    import importlib
    import sys

    sys.modules.pop("mrt_engine.configs", None)
    with pytest.warns(DeprecationWarning, match="use mrt_engine.config.presets"):
        old = importlib.import_module("mrt_engine.configs")
    assert old.shipped_config("demo") == shipped_config("demo")
