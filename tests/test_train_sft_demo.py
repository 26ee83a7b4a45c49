"""SFT warm start and the demo command (shrunk to seconds)."""
import json

import pytest

from mrt_engine.rl.demo import DEMO_TEMPLATE, format_table
from mrt_engine.rl.demo_model import demo_tokenizer
from mrt_engine.prompts import get_template as build_template
from mrt_engine.rl.sft import SFTConfig, build_examples, run_sft


pytestmark = pytest.mark.usefixtures("one_thread")


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
    cfg = SFTConfig(steps=6, batch_size=4, micro_batch_size=2, lr=3e-3, output_dir=str(tmp_path / "sft"),
                    data={"task": "chain", "num_train": 16, "num_eval": 2}, eval_every=0, eval_max_tokens=8,
                    template=DEMO_TEMPLATE, termination_fraction=0.2, export=str(tmp_path / "w.safetensors"))
    summary = run_sft(cfg, log=lambda s: None)
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (tmp_path / "w.safetensors").stat().st_size < 4_000_000  # fp16 export: a few MB
    from mrt_engine.rl.demo_model import load_demo_model

    model, _ = load_demo_model(path=tmp_path / "w.safetensors")
    assert "pass@1" in summary and summary["checkpoint"].endswith("step_6")


def test_format_table():
    table = format_table({"pass@1": 0.25, "tokens": 100.0, "progress": 0.1, "regret": 0.6},
                         {"pass@1": 0.5, "tokens": 90.0, "progress": 0.2, "regret": 0.5})
    assert "pass@1 (greedy)" in table and "+0.250" in table and "-10.000" in table
