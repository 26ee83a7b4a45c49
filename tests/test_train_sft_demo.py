"""SFT warm start and the demo command (shrunk to seconds)."""
import json

import pytest

from mrt_engine.commands.demo import format_table, run_demo
from mrt_engine.config import SFTConfig
from mrt_engine.configs import config_path, shipped_config
from mrt_engine.models import demo_tokenizer, load_demo_model
from mrt_engine.prompts import get_template as build_template
from mrt_engine.rl.sft import build_examples, run_sft


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
    table = format_table({"pass@1": 0.25, "tokens": 100.0, "progress": 0.1, "regret": 0.6},
                         {"pass@1": 0.5, "tokens": 90.0, "progress": 0.2, "regret": 0.5})
    assert "pass@1 (greedy)" in table and "+0.250" in table and "-10.000" in table


def test_demo_runs_the_shipped_config(tmp_path, monkeypatch):
    # The recipe reads demo.yaml (no copy of its values in code); only the output folder and
    # the asked-for changes differ from the file.
    import mrt_engine.train
    from mrt_engine.train import TrainResult

    seen = []

    def fake_train(config):
        seen.append(config)
        return TrainResult(output_dir=config.output_dir, steps=config.steps, checkpoint=None, history=[{"step": 1, "reward": 0.5}],
                           eval_before={"pass@1": 0.25}, eval_after={"pass@1": 0.5})

    monkeypatch.setattr(mrt_engine.train, "train", fake_train)
    report = run_demo(output_dir=str(tmp_path), steps=3, overrides={"algo.alpha": 0.5})
    expected = shipped_config("demo")
    expected.update(output_dir=str(tmp_path / "mrt"), steps=3)
    expected["algo"]["alpha"] = 0.5
    assert seen[0] == mrt_engine.train.TrainConfig.from_dict(expected)
    assert report["after"]["pass@1"] == 0.5 and (tmp_path / "demo.png").stat().st_size > 0


def test_repo_configs_are_the_shipped_ones():
    from pathlib import Path

    repo_configs = Path(__file__).resolve().parent.parent / "configs"
    for name in ("demo", "sft_demo"):
        assert (repo_configs / f"{name}.yaml").read_text() == config_path(name).read_text()
    with pytest.raises(FileNotFoundError, match="ships"):
        config_path("no_such_recipe")
